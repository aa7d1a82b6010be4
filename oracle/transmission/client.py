"""Typed, validated chain calls over the RPC pool: every answer is checked before use."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from eth_abi.abi import encode
from eth_utils.crypto import keccak

from oracle.transmission.config import TxManagerConfig
from oracle.transmission.errors import JsonRpcError
from oracle.transmission.revert import RevertDecoder, revert_of
from oracle.transmission.rpc import Invalid, RpcPool, parse_data, parse_quantity

GAS_PRICE_ORACLE = "0x420000000000000000000000000000000000000F"
_GET_L1_FEE = keccak(text="getL1Fee(bytes)")[:4]


@dataclass(frozen=True, slots=True)
class Receipt:
    tx_hash: bytes
    block_number: int
    block_hash: bytes
    status: int
    gas_used: int
    effective_gas_price: int
    l1_fee: int | None  # OP Stack receipts carry it


@dataclass(frozen=True, slots=True)
class Call:
    sender: str
    to: str
    data: bytes
    value: int

    def params(self) -> dict[str, str]:
        return {
            "from": self.sender,
            "to": self.to,
            "data": "0x" + self.data.hex(),
            "value": hex(self.value),
        }


class Sent(Enum):
    """What a node said to eth_sendRawTransaction."""

    ACCEPTED = "accepted"
    KNOWN = "known"  # it has this exact transaction already
    NONCE_TOO_LOW = "nonce-too-low"  # the nonce is used: by us (included) or from outside
    UNDERPRICED = "underpriced"  # a replacement must pay more, or below the base fee
    NO_FUNDS = "no-funds"
    REJECTED = "rejected"  # anything else


_KNOWN = ("already known", "already imported", "known transaction", "alreadyknown")
_NONCE_LOW = ("nonce too low", "nonce is too low", "oldnonce")
_UNDERPRICED = ("underpriced", "fee too low", "less than block base fee", "feecap", "tip too low")
_NO_FUNDS = ("insufficient funds", "insufficient balance")


def classify_send_error(message: str) -> Sent:
    text = message.lower()
    for needles, outcome in (
        (_KNOWN, Sent.KNOWN),
        (_NONCE_LOW, Sent.NONCE_TOO_LOW),
        (_UNDERPRICED, Sent.UNDERPRICED),
        (_NO_FUNDS, Sent.NO_FUNDS),
    ):
        if any(n in text for n in needles):
            return outcome
    return Sent.REJECTED


class ChainClient:
    def __init__(self, pool: RpcPool, config: TxManagerConfig, decoder: RevertDecoder) -> None:
        self.pool = pool
        self.config = config
        self.decoder = decoder

    async def head(self) -> int:
        return await self.pool.request("eth_blockNumber", [], lambda r: parse_quantity(r, "head"))

    async def nonce(self, address: str, tag: str) -> int:
        def check(result: Any) -> int:
            value = parse_quantity(result, f"nonce ({tag})")
            if value >= 2**64 - 1:
                raise Invalid("absurd-nonce", f"nonce {value} ({tag}) is out of range")
            return value

        return await self.pool.request("eth_getTransactionCount", [address, tag], check)

    async def balance(self, address: str) -> int:
        return await self.pool.request(
            "eth_getBalance", [address, "latest"], lambda r: parse_quantity(r, "balance")
        )

    async def simulate(self, call: Call) -> str | None:
        """None if ``call`` succeeds in eth_call at the latest block; else the revert reason."""
        try:
            await self.pool.request(
                "eth_call", [call.params(), "latest"], lambda r: parse_data(r, "eth_call result")
            )
        except JsonRpcError as exc:
            data = revert_of(exc)
            if data is None:
                raise
            return self.decoder.describe(data) if data else f"reverted: {exc.message}"
        return None

    async def estimate_gas(self, call: Call) -> int:
        def check(result: Any) -> int:
            gas = parse_quantity(result, "gas estimate")
            if not 21_000 <= gas <= self.config.max_gas_limit:
                raise Invalid("absurd-gas", f"gas estimate {gas} outside [21000, max_gas_limit]")
            return gas

        gas = await self.pool.request("eth_estimateGas", [call.params()], check)
        return min(
            gas + gas * self.config.gas_limit_margin_percent // 100, self.config.max_gas_limit
        )

    async def fee_history(self) -> tuple[int, list[int]]:
        """(next block's base fee, recent priority-fee rewards at the configured percentile)."""
        blocks = self.config.fee_history_blocks
        absurd = self.config.absurd_fee_wei

        def check(result: Any) -> tuple[int, list[int]]:
            if not isinstance(result, dict):
                raise Invalid("malformed-result", "eth_feeHistory result is not an object")
            bases = result.get("baseFeePerGas")
            rewards = result.get("reward", [])
            if not isinstance(bases, list) or not bases or len(bases) > blocks + 1:
                raise Invalid("malformed-result", "eth_feeHistory baseFeePerGas has a bad length")
            if not isinstance(rewards, list) or len(rewards) != len(bases) - 1:
                raise Invalid("malformed-result", "eth_feeHistory reward does not match blocks")
            base_fees = [parse_quantity(b, "baseFeePerGas") for b in bases]
            tips: list[int] = []
            for row in rewards:
                if not isinstance(row, list) or len(row) != 1:
                    raise Invalid("malformed-result", "eth_feeHistory reward row is malformed")
                tips.append(parse_quantity(row[0], "reward"))
            for what, values in (("base fee", base_fees), ("priority fee", tips)):
                worst = max(values, default=0)
                if worst > absurd:
                    raise Invalid("absurd-fee", f"{what} {worst} wei/gas above {absurd}")
            return base_fees[-1], tips

        return await self.pool.request(
            "eth_feeHistory",
            [hex(blocks), "latest", [self.config.priority_fee_percentile]],
            check,
        )

    async def send_raw(self, raw: bytes, tx_hash: bytes) -> tuple[Sent, str]:
        def check(result: Any) -> bytes:
            got = parse_data(result, "transaction hash", 32)
            if got != tx_hash:
                raise Invalid("wrong-tx-hash", f"returned {got.hex()} for tx {tx_hash.hex()}")
            return got

        try:
            await self.pool.request("eth_sendRawTransaction", ["0x" + raw.hex()], check)
        except JsonRpcError as exc:
            return classify_send_error(exc.message), exc.message
        return Sent.ACCEPTED, ""

    def _receipt_check(self, tx_hash: bytes, sender: str) -> Any:
        absurd = self.config.absurd_fee_wei

        def check(result: Any) -> Receipt | None:
            if result is None:
                return None
            if not isinstance(result, dict):
                raise Invalid("malformed-result", "receipt is not an object")
            got = parse_data(result.get("transactionHash"), "receipt transactionHash", 32)
            if got != tx_hash:
                raise Invalid("wrong-receipt", f"asked for {tx_hash.hex()}, got {got.hex()}")
            frm = result.get("from")
            if not isinstance(frm, str) or frm.lower() != sender.lower():
                raise Invalid("wrong-receipt", f"receipt of {tx_hash.hex()} is from {frm!r:.50}")
            status = parse_quantity(result.get("status"), "receipt status")
            if status not in (0, 1):
                raise Invalid("malformed-result", f"receipt status {status}")
            price = parse_quantity(result.get("effectiveGasPrice"), "effectiveGasPrice")
            if price > absurd:
                raise Invalid("absurd-fee", f"effectiveGasPrice {price} above {absurd}")
            gas_used = parse_quantity(result.get("gasUsed"), "gasUsed")
            if gas_used > self.config.max_gas_limit:
                raise Invalid("malformed-result", f"gasUsed {gas_used} above max_gas_limit")
            l1 = result.get("l1Fee")
            return Receipt(
                tx_hash=got,
                block_number=parse_quantity(result.get("blockNumber"), "blockNumber"),
                block_hash=parse_data(result.get("blockHash"), "blockHash", 32),
                status=status,
                gas_used=gas_used,
                effective_gas_price=price,
                l1_fee=None if l1 is None else parse_quantity(l1, "l1Fee"),
            )

        return check

    async def receipt(self, tx_hash: bytes, sender: str) -> Receipt | None:
        return await self.pool.request(
            "eth_getTransactionReceipt",
            ["0x" + tx_hash.hex()],
            self._receipt_check(tx_hash, sender),
        )

    async def receipt_anywhere(self, tx_hash: bytes, sender: str) -> Receipt | None:
        """Ask every live endpoint: one that hides a receipt cannot make us resend."""
        answers = await self.pool.request_each(
            "eth_getTransactionReceipt",
            ["0x" + tx_hash.hex()],
            self._receipt_check(tx_hash, sender),
        )
        return next((r for r in answers if r is not None), None)

    async def block_hash(self, number: int) -> bytes | None:
        def check(result: Any) -> bytes | None:
            if result is None:
                return None
            if not isinstance(result, dict):
                raise Invalid("malformed-result", "block is not an object")
            got = parse_quantity(result.get("number"), "block number")
            if got != number:
                raise Invalid("wrong-block", f"asked for block {number}, got {got}")
            return parse_data(result.get("hash"), "block hash", 32)

        return await self.pool.request("eth_getBlockByNumber", [hex(number), False], check)

    async def has_code(self, address: str) -> bool:
        code = await self.pool.request(
            "eth_getCode", [address, "latest"], lambda r: parse_data(r, "code")
        )
        return len(code) > 0

    async def l1_fee(self, raw_tx: bytes) -> int:
        """The OP Stack L1 data fee for ``raw_tx``, from the GasPriceOracle predeploy."""
        absurd = self.config.absurd_l1_fee_wei

        def check(result: Any) -> int:
            data = parse_data(result, "getL1Fee result", 32)
            fee = int.from_bytes(data, "big")
            if fee > absurd:
                raise Invalid("absurd-fee", f"L1 fee {fee} wei above {absurd}")
            return fee

        call = {
            "to": GAS_PRICE_ORACLE,
            "data": "0x" + (_GET_L1_FEE + encode(["bytes"], [raw_tx])).hex(),
        }
        return await self.pool.request("eth_call", [call, "latest"], check)
