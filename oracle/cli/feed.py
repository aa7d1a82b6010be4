"""``mira feed``: the oracle's feeds and the contracts subscribed to them.

``list``           every registered feed: id, description, decimals, proxy, latest value,
                   round, age, subscribers
``subscribe``      subscribe a consumer contract to feeds (callback gas limit, ETH deposit)
``unsubscribe``    stop a consumer's callbacks on feeds
``deposit``        top up a consumer's deposit (anyone may)
``withdraw``       take ETH out of a consumer's deposit (its subscription's owner)
``subscriptions``  a consumer's subscription: owner, gas limit, deposit, feeds
``reimbursement``  what a transmitter has earned from callbacks; ``--withdraw`` takes it
``watch``          follow a node's stream of landed reports, each verified against the
                   oracle's on-chain group key before it is printed

Each reads the oracle from a deployment manifest (``--manifest``, whose feed names it then
knows) or from ``--rpc-url`` and ``--oracle``; each prints one JSON object with ``--json``.
A transaction is simulated before it is signed: a refusal by the contract (its custom
error) becomes one line saying what to change, and nothing is sent. Exit status: 2 for
input to change (an unknown feed, a bad amount, a refusal by the contract), 1 for a failure
(the RPC, the key, a transaction that reverted anyway).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, Web3Exception
from web3.logs import DISCARD

from oracle import artifacts
from oracle.chain.system import Manifest, Sender
from oracle.cli.options import (
    ADDRESS,
    chain_target_options,
    emit,
    operator_sender,
    signer_options,
)
from oracle.config.feeds import decimal_text, feed_id_bytes32
from oracle.errors import ChainError
from oracle.transmission.revert import RevertDecoder

_UINT32_MAX = (1 << 32) - 1


class InputError(click.ClickException):
    """Input to change: one line, exit status 2 (click's usage-error status), no usage dump."""

    exit_code = 2


@dataclass
class Target:
    """The oracle a command talks to, and the feed names it knows (from a manifest)."""

    w3: Web3
    oracle: Contract
    names: dict[bytes, str]  # feed id → name

    def name_of(self, feed_id: bytes) -> str:
        return self.names.get(feed_id, "0x" + feed_id.hex())

    def feed_id(self, given: str) -> bytes:
        """A feed named on the command line: a manifest name, a 0x bytes32 id, or any feed's
        string id (its on-chain id is keccak256 of it); InputError if not registered."""
        if given.startswith("0x") and len(given) == 66:
            try:
                feed_id = bytes.fromhex(given[2:])
            except ValueError:
                raise InputError(f"--feed {given}: not a 0x-prefixed 32-byte hex id") from None
        else:
            by_name = {n: f for f, n in self.names.items()}
            feed_id = by_name.get(given, feed_id_bytes32(given))
        if not self.oracle.functions.isRegistered(feed_id).call():
            raise InputError(
                f"--feed {given}: no such feed on oracle {self.oracle.address}; "
                "`mira feed list` shows the registered ones"
            )
        return feed_id


def _wei(value: str, option: str, *, allow_zero: bool = False) -> int:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise InputError(f"{option} {value!r}: expected an amount of ETH, e.g. 0.05") from None
    if not amount.is_finite() or amount < 0 or (amount == 0 and not allow_zero):
        raise InputError(f"{option} {value}: expected a positive amount of ETH")
    wei = amount * 10**18
    if wei != wei.to_integral_value():
        raise InputError(f"{option} {value}: more than 18 decimals (below one wei)")
    return int(wei)


def _eth(wei: int) -> str:
    text = format(Decimal(wei) / Decimal(10**18), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _target(manifest: Path | None, rpc_url: str | None, oracle: str | None) -> Target:
    names: dict[bytes, str] = {}
    if manifest is not None:
        m = Manifest.read(manifest)
        rpc_url, oracle = rpc_url or m.rpc_url, oracle or m.oracle
        names = {bytes.fromhex(f["feed_id"][2:]): name for name, f in m.feeds.items()}
    if rpc_url is None or oracle is None:
        raise InputError("pass --manifest, or both --rpc-url and --oracle")
    address = Web3.to_checksum_address(oracle)
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    if not w3.is_connected():
        raise ChainError(f"no JSON-RPC answer from {rpc_url}")
    if not w3.eth.get_code(address):
        raise InputError(f"--oracle {address}: no contract there on the chain {rpc_url} serves")
    contract = w3.eth.contract(address=address, abi=artifacts.load("MiraOracle").abi)
    return Target(w3, contract, names)


_target_options = chain_target_options(
    "--oracle",
    "MiraOracle address (else the manifest's).",
    "Deployment manifest (mira deploy, mira devnet up): RPC URL, oracle, feed names.",
)


# -- the contract's refusals, as what to change ------------------------------------------


def _refusal(target: Target, name: str, args: dict[str, Any]) -> str | None:
    """One line naming what to change for a custom error about the caller's input."""
    args = {k: Web3.to_checksum_address(v) if Web3.is_address(v) else v for k, v in args.items()}
    feed = target.name_of(bytes(args["feedId"])) if "feedId" in args else ""
    consumer = args.get("consumer", "")
    messages: dict[str, Callable[[], str]] = {
        "FeedNotRegistered": lambda: f"feed {feed} is not registered; see `mira feed list`",
        "ConsumerNotContract": lambda: (
            f"--consumer {consumer} has no code: pass a deployed contract implementing "
            "IMiraConsumer (e.g. one inheriting MiraConsumer)"
        ),
        "InvalidCallbackGasLimit": lambda: (
            f"--gas-limit {args['gasLimit']} is out of range: pass 1 to {args['maxGasLimit']}"
        ),
        "DepositTooSmall": lambda: (
            f"the deposit would be {_eth(args['deposit'])} ETH, below one callback's worst "
            f"case at the current gas price, {_eth(args['minimum'])} ETH: raise --deposit by "
            f"at least {_eth(args['minimum'] - args['deposit'])} ETH"
        ),
        "NotSubscriptionOwner": lambda: (
            f"{args['caller']} does not own the subscription of {consumer}: sign with the key "
            f"of its owner, {target.oracle.functions.subscriptionOf(consumer).call()[0]}"
        ),
        "SubscriptionNotConsented": lambda: (
            f"{args['caller']} may not subscribe {consumer}: sign with the key of the address "
            "its miraSubscriptionManager() returns (a MiraConsumer's deployer), or subscribe "
            "from the consumer contract itself"
        ),
        "CallbackGasBudgetExceeded": lambda: (
            f"the oracle's callback gas budget of {args['budget']} would be exceeded "
            f"({args['committed']} committed): lower --gas-limit or drop a --feed, or ask the "
            "oracle's owner to raise the budget (setCallbackGasBudget)"
        ),
        "NoSubscription": lambda: (
            f"--consumer {consumer} has no subscription: create one with `mira feed subscribe`"
        ),
        "TooManySubscribers": lambda: (
            f"feed {feed} has its maximum of {args['maxSubscribers']} subscribers: drop that "
            "--feed, or ask the oracle's owner to raise the cap (setMaxSubscribers)"
        ),
        "AlreadySubscribed": lambda: (
            f"{consumer} is subscribed to {feed} already: drop that --feed"
        ),
        "NotSubscribed": lambda: (
            f"{consumer} is not subscribed to {feed}: drop that --feed "
            f"(`mira feed subscriptions --consumer {consumer}` lists its feeds)"
        ),
        "NoFeeds": lambda: "pass at least one --feed",
        "InsufficientDeposit": lambda: (
            f"--amount {_eth(args['requested'])} ETH is more than the deposit of {consumer}, "
            f"{_eth(args['balance'])} ETH: withdraw at most {_eth(args['balance'])} ETH"
        ),
        "NothingToWithdraw": lambda: f"{args['transmitter']} has no reimbursement to withdraw",
    }
    make = messages.get(name)
    return None if make is None else make()


def _transact(
    target: Target, sender: Sender, call: Any, what: str, *, value: int = 0
) -> dict[str, Any]:  # the receipt
    """Simulate ``call`` from the sender, then send it: a custom error about the input is an
    InputError saying what to change; nothing is signed unless the simulation passes."""
    decoder = RevertDecoder([target.oracle.abi])
    # simulated at the gas price the transaction will pay: a deposit's minimum depends on it
    priority = int(target.w3.eth.max_priority_fee)
    base = int(target.w3.eth.get_block("latest").get("baseFeePerGas", 0))
    simulated = {
        "from": sender.account.address,
        "value": value,
        "maxFeePerGas": 2 * base + priority,  # as Sender sends it
        "maxPriorityFeePerGas": priority,
    }
    try:
        call.call(simulated)
    except ContractLogicError as exc:  # ContractCustomError included
        data = exc.data if isinstance(exc.data, str) else ""
        raw = bytes.fromhex(data[2:]) if data.startswith("0x") else b""
        decoded = decoder.decode(raw)
        message = None if decoded is None else _refusal(target, *decoded)
        if message is not None:
            raise InputError(message) from None
        raise ChainError(f"{what} would revert: {decoder.describe(raw)}") from None
    return sender.send(call, what, value=value)


def _tx(receipt: dict[str, Any]) -> dict[str, Any]:
    return {"tx_hash": "0x" + bytes(receipt["transactionHash"]).hex()}


# -- commands -------------------------------------------------------------------------------


class _ChainFailures(click.Group):
    """A failure of the RPC or of web3 (a timeout, a refused connection, an answer that
    makes no sense) is one line and exit 1, like any ChainError: never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (Web3Exception, OSError) as exc:  # requests' errors are OSErrors
            detail = str(exc).splitlines()[0][:300] if str(exc) else ""
            raise ChainError(f"{type(exc).__name__}: {detail}") from None


@click.group(cls=_ChainFailures)
def feed() -> None:
    """The oracle's feeds, and contracts subscribed to them."""


@feed.command("list")
@_target_options
def list_(as_json: bool, manifest: Path | None, rpc_url: str | None, oracle: str | None) -> None:
    """Every registered feed: value, round, age and subscribers."""
    target = _target(manifest, rpc_url, oracle)
    fns = target.oracle.functions
    now = int(target.w3.eth.get_block("latest")["timestamp"])
    rows = []
    for i in range(int(fns.feedCount().call())):
        fid = bytes(fns.feedIdAt(i).call())
        decimals = int(fns.decimalsOf(fid).call())
        latest: dict[str, Any] = {"value": None, "round": None, "age_s": None}
        round_id, answer, _, updated_at, _ = fns.latestRoundData(fid).call()
        if int(updated_at) != 0:  # zero: never updated (Chainlink's aggregators say the same)
            latest = {
                "value": decimal_text(int(answer), decimals),
                "round": int(round_id),
                "age_s": max(0, now - int(updated_at)),
            }
        rows.append(
            {
                "id": target.names.get(fid),
                "feed_id": "0x" + fid.hex(),
                "description": fns.descriptionOf(fid).call(),
                "decimals": decimals,
                "proxy": fns.proxyOf(fid).call(),
                **latest,
                "subscribers": len(fns.subscribersOf(fid).call()),
            }
        )
    if as_json:
        click.echo(json.dumps({"oracle": target.oracle.address, "feeds": rows}))
        return
    for r in rows:
        value = "no data" if r["value"] is None else f"{r['value']} (round {r['round']}, "
        value += "" if r["value"] is None else f"{r['age_s']} s ago)"
        click.echo(
            f"{r['id'] or r['feed_id']}  {r['description']!r}  decimals {r['decimals']}  "
            f"proxy {r['proxy']}  {value}  subscribers {r['subscribers']}"
        )


def _subscription(target: Target, consumer: str) -> dict[str, Any]:
    owner, gas_limit, balance, feed_ids = target.oracle.functions.subscriptionOf(consumer).call()
    return {
        "consumer": consumer,
        "owner": None if int(owner, 16) == 0 else owner,
        "gas_limit": int(gas_limit),
        "balance_wei": int(balance),
        "balance_eth": _eth(int(balance)),
        "feeds": [
            {"id": target.names.get(bytes(f)), "feed_id": "0x" + bytes(f).hex()} for f in feed_ids
        ],
    }


def _describe(sub: dict[str, Any]) -> str:
    if sub["owner"] is None:
        return f"{sub['consumer']}: no subscription"
    feeds = ", ".join(f["id"] or f["feed_id"] for f in sub["feeds"]) or "no feeds"
    return (
        f"{sub['consumer']}: owner {sub['owner']}, gas limit {sub['gas_limit']}, "
        f"deposit {sub['balance_eth']} ETH, feeds: {feeds}"
    )


@feed.command("subscriptions")
@click.option("--consumer", type=ADDRESS, required=True, help="The consumer contract's address.")
@_target_options
def subscriptions(
    consumer: str, as_json: bool, manifest: Path | None, rpc_url: str | None, oracle: str | None
) -> None:
    """A consumer's subscription: owner, callback gas limit, deposit, feeds."""
    sub = _subscription(_target(manifest, rpc_url, oracle), consumer)
    emit(sub, as_json, [_describe(sub)])


def _feeds(target: Target, given: Sequence[str]) -> list[bytes]:
    ids = [target.feed_id(g) for g in given]
    for i, fid in enumerate(ids):
        if fid in ids[:i]:
            raise InputError(f"--feed {given[i]} is given twice: pass each feed once")
    return ids


@feed.command("subscribe")
@click.option("--feed", "feeds", multiple=True, required=True, help="A feed (repeatable).")
@click.option(
    "--consumer", type=ADDRESS, required=True, help="The consumer contract (an IMiraConsumer)."
)
@click.option("--gas-limit", type=int, required=True, help="Gas each callback gets.")
@click.option("--deposit", default="0", show_default=True, help="ETH to add to the deposit.")
@signer_options
@_target_options
def subscribe(
    feeds: tuple[str, ...],
    consumer: str,
    gas_limit: int,
    deposit: str,
    keys_dir: Path,
    passphrase_file: Path | None,
    as_json: bool,
    manifest: Path | None,
    rpc_url: str | None,
    oracle: str | None,
) -> None:
    """Call CONSUMER back on every update of the feeds, paid from its deposit."""
    if not 1 <= gas_limit <= _UINT32_MAX:
        raise InputError(f"--gas-limit {gas_limit}: pass a positive gas amount (e.g. 100000)")
    value = _wei(deposit, "--deposit", allow_zero=True)
    target = _target(manifest, rpc_url, oracle)
    ids = _feeds(target, feeds)
    sender = operator_sender(target.w3, keys_dir, passphrase_file)
    call = target.oracle.functions.subscribe(consumer, ids, gas_limit)
    result = _tx(_transact(target, sender, call, "subscribe", value=value))
    sub = _subscription(target, consumer)
    emit(result | sub, as_json, [f"subscribed; {_describe(sub)} (tx {result['tx_hash']})"])


@feed.command("unsubscribe")
@click.option("--feed", "feeds", multiple=True, required=True, help="A feed (repeatable).")
@click.option("--consumer", type=ADDRESS, required=True, help="The consumer contract.")
@signer_options
@_target_options
def unsubscribe(
    feeds: tuple[str, ...],
    consumer: str,
    keys_dir: Path,
    passphrase_file: Path | None,
    as_json: bool,
    manifest: Path | None,
    rpc_url: str | None,
    oracle: str | None,
) -> None:
    """Stop calling CONSUMER back on the feeds (its deposit stays; withdraw it)."""
    target = _target(manifest, rpc_url, oracle)
    ids = _feeds(target, feeds)
    sender = operator_sender(target.w3, keys_dir, passphrase_file)
    call = target.oracle.functions.unsubscribe(consumer, ids)
    result = _tx(_transact(target, sender, call, "unsubscribe"))
    sub = _subscription(target, consumer)
    emit(result | sub, as_json, [f"unsubscribed; {_describe(sub)} (tx {result['tx_hash']})"])


@feed.command("deposit")
@click.option("--consumer", type=ADDRESS, required=True, help="The consumer contract.")
@click.option("--amount", required=True, help="ETH to add.")
@signer_options
@_target_options
def deposit_(
    consumer: str,
    amount: str,
    keys_dir: Path,
    passphrase_file: Path | None,
    as_json: bool,
    manifest: Path | None,
    rpc_url: str | None,
    oracle: str | None,
) -> None:
    """Top up CONSUMER's deposit (anyone may)."""
    value = _wei(amount, "--amount")
    target = _target(manifest, rpc_url, oracle)
    sender = operator_sender(target.w3, keys_dir, passphrase_file)
    call = target.oracle.functions.deposit(consumer)
    result = _tx(_transact(target, sender, call, "deposit", value=value))
    sub = _subscription(target, consumer)
    emit(result | sub, as_json, [f"deposited; {_describe(sub)} (tx {result['tx_hash']})"])


@feed.command("withdraw")
@click.option("--consumer", type=ADDRESS, required=True, help="The consumer contract.")
@click.option("--amount", required=True, help="ETH to withdraw from its deposit.")
@click.option("--to", "to", type=ADDRESS, default=None, help="Recipient (default: the signer).")
@signer_options
@_target_options
def withdraw(
    consumer: str,
    amount: str,
    to: str | None,
    keys_dir: Path,
    passphrase_file: Path | None,
    as_json: bool,
    manifest: Path | None,
    rpc_url: str | None,
    oracle: str | None,
) -> None:
    """Withdraw ETH from CONSUMER's deposit (its subscription's owner only)."""
    value = _wei(amount, "--amount")
    recipient = to
    target = _target(manifest, rpc_url, oracle)
    sender = operator_sender(target.w3, keys_dir, passphrase_file)
    recipient = recipient or sender.account.address
    call = target.oracle.functions.withdraw(consumer, recipient, value)
    result = _tx(_transact(target, sender, call, "withdraw"))
    sub = _subscription(target, consumer)
    emit(
        result | sub | {"to": recipient, "amount_wei": value},
        as_json,
        [f"withdrew {_eth(value)} ETH to {recipient}; {_describe(sub)} (tx {result['tx_hash']})"],
    )


@feed.command("reimbursement")
@click.option(
    "--transmitter",
    type=ADDRESS,
    default=None,
    help="Whose reimbursement to show (default: the signer).",
)
@click.option("--withdraw", "take", is_flag=True, help="Withdraw it (the transmitter's key).")
@click.option(
    "--to", "to", type=ADDRESS, default=None, help="Recipient of --withdraw (default: the signer)."
)
@signer_options
@_target_options
def reimbursement(
    transmitter: str | None,
    take: bool,
    to: str | None,
    keys_dir: Path,
    passphrase_file: Path | None,
    as_json: bool,
    manifest: Path | None,
    rpc_url: str | None,
    oracle: str | None,
) -> None:
    """What a transmitter earned from consumers' callbacks; --withdraw sends it out."""
    if take and transmitter is not None:
        raise InputError("--withdraw takes the signer's own reimbursement: drop --transmitter")
    target = _target(manifest, rpc_url, oracle)
    if transmitter is not None:
        who = transmitter
        owed = int(target.oracle.functions.reimbursementOf(who).call())
        result = {"transmitter": who, "reimbursement_wei": owed, "reimbursement_eth": _eth(owed)}
        emit(result, as_json, [f"{who} can withdraw {_eth(owed)} ETH"])
        return
    sender = operator_sender(target.w3, keys_dir, passphrase_file)
    who = sender.account.address
    owed = int(target.oracle.functions.reimbursementOf(who).call())
    if not take:
        result = {"transmitter": who, "reimbursement_wei": owed, "reimbursement_eth": _eth(owed)}
        emit(result, as_json, [f"{who} can withdraw {_eth(owed)} ETH (--withdraw takes it)"])
        return
    recipient = who if to is None else to
    call = target.oracle.functions.withdrawReimbursement(recipient)
    receipt = _transact(target, sender, call, "withdrawReimbursement")
    (event,) = target.oracle.events.ReimbursementWithdrawn().process_receipt(
        receipt, errors=DISCARD
    )
    owed = int(event["args"]["amount"])
    result = _tx(receipt) | {
        "transmitter": who,
        "to": recipient,
        "amount_wei": owed,
        "amount_eth": _eth(owed),
    }
    emit(result, as_json, [f"withdrew {_eth(owed)} ETH to {recipient} (tx {result['tx_hash']})"])


@feed.command("watch")
@click.option("--node", "node_url", required=True, help="A node's API URL (http://host:port).")
@click.option("--feed", "feeds", multiple=True, help="Only reports carrying this feed.")
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after N reports.")
@_target_options
def watch(
    node_url: str,
    feeds: tuple[str, ...],
    count: int | None,
    as_json: bool,
    manifest: Path | None,
    rpc_url: str | None,
    oracle: str | None,
) -> None:
    """Print each report landed on-chain, as NODE streams it, once it verifies against the
    epoch's group key on-chain (a report that does not is an error: the node lied)."""
    import asyncio

    from oracle.api.stream_client import ReportStreamClient

    target = _target(manifest, rpc_url, oracle)
    # the node filters by its own feed names or by bytes32 id: send ids, which every node knows
    ids = ["0x" + target.feed_id(f).hex() for f in feeds]
    rpc = str(getattr(target.w3.provider, "endpoint_uri", ""))
    client = ReportStreamClient(node_url, rpc, target.oracle.address, feeds=ids)

    async def follow() -> None:
        seen = 0
        async for landed in client.reports():
            updates = [
                {
                    "id": target.names.get(u.feed_id),
                    "feed_id": "0x" + u.feed_id.hex(),
                    "value": str(u.value),
                    "observed_at": u.observed_at,
                    "applied": u.feed_id not in landed.skipped,
                }
                for u in landed.decoded.updates
            ]
            row = {
                "epoch": landed.epoch,
                "round": landed.round,
                "tx_hash": "0x" + landed.tx_hash.hex(),
                "block_number": landed.block_number,
                "updates": updates,
            }
            if as_json:
                click.echo(json.dumps(row))
            else:
                values = ", ".join(f"{u['id'] or u['feed_id']} = {u['value']}" for u in updates)
                click.echo(f"epoch {landed.epoch} round {landed.round} verified: {values}")
            seen += 1
            if count is not None and seen >= count:
                return

    asyncio.run(follow())
