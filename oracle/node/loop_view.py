"""What the API shows of the RL loop (``GET /v1/loop``): per policy feed the node runs that
learns from an agent's on-chain steps, the agent's cumulative reward against the uniformly
random agent's and the best arm's, its regret over time and its arm choices.

Which loop a node shows comes from its own feed specs, nothing else (a node alone, or a
devnet member, alike): a policy feed whose source is ``chain_events`` of the ``Step`` event
names the agent (``address``), the chain (``rpc_url``) and where the loop starts
(``from_block``); the agent's ``environment()`` is read from the chain; the uniform-random
baseline is the spec's ``[eval] random_agent`` (a RandomAgent in a twin environment, whose
``environment()`` is read likewise), optional. Registered policy models count as they come
and go: the specs are read from the node's live runners at each read.

The numbers are folded from the environments' ``RewardPaid`` events (pull, arm, reward) by
oracle.chain.bandit.Scoreboard — the one computation the dashboard, the devnet's terminal
view (which reads this endpoint) and ``mira bench rl`` share. The best arm needs the
environment's rate schedule: read from a DriftingBandit (``armCount``, ``driftEvery``,
``shift``, ``rateOf``); an environment without those shows rewards and choices only.

Anyone may call the API, so the work is bounded: reads are shared (at most one set of RPC
calls per ``min_interval_s``), each read scans at most ``LOG_SPAN`` blocks per agent (a
long history is caught up over several reads: ``scanned_to_block`` says how far), at most
``MAX_LOOPS`` loops are followed, and each scoreboard's memory is bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from eth_utils.abi import event_abi_to_log_topic
from web3 import AsyncWeb3
from web3.exceptions import BadFunctionCallOutput, ContractLogicError

from oracle import artifacts
from oracle.chain.bandit import MAX_ARMS, Schedule, Scoreboard
from oracle.chain.rpc import async_web3, close_async_web3
from oracle.config.feeds import ChainEventSourceSpec, FeedSpec
from oracle.node.chain_view import SharedRead

log = structlog.get_logger(__name__)

MAX_LOOPS = 8
LOG_SPAN = 2000  # blocks of RewardPaid logs read per agent per read
RPC_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class LoopSource:
    """One loop as a policy feed's spec names it."""

    feed: str
    arms: tuple[str, ...]
    rpc_url: str
    agent: str
    random_agent: str | None
    from_block: int


def loop_sources(specs: Iterable[FeedSpec]) -> list[LoopSource]:
    """The loops of ``specs``: each policy feed learning from an agent's Step events."""
    out = []
    for spec in specs:
        if spec.output_kind != "policy":
            continue
        for src in spec.sources:
            if isinstance(src, ChainEventSourceSpec) and src.event == "Step":
                baseline = spec.evaluation.random_agent if spec.evaluation else None
                out.append(
                    LoopSource(
                        spec.id, spec.arms, src.rpc_url, src.address, baseline, src.from_block
                    )
                )
    return out


def _env_abi() -> list[dict[str, Any]]:
    """DriftingBandit's ABI: IMiraEnvironment's RewardPaid and the schedule's getters."""
    return artifacts.load("DriftingBandit").abi


def _reward_paid_topic() -> str:
    entry = next(e for e in _env_abi() if e.get("type") == "event" and e["name"] == "RewardPaid")
    return "0x" + bytes(event_abi_to_log_topic(entry)).hex()  # type: ignore[arg-type]


async def _schedule(env: Any, tip: int) -> Schedule | None:
    """The environment's rate schedule, if it is a DriftingBandit (else None: a call it does
    not answer reverts or returns nothing; an RPC failure raises, to be tried again)."""
    fns = env.functions
    try:
        k = int(await fns.armCount().call(block_identifier=tip))
        if not 0 < k <= MAX_ARMS:
            return None
        every = int(await fns.driftEvery().call(block_identifier=tip))
        shift = int(await fns.shift().call(block_identifier=tip))
        rates = [int(await fns.rateOf(a).call(block_identifier=tip)) for a in range(k)]
    except (ContractLogicError, BadFunctionCallOutput):  # not a DriftingBandit
        return None
    return Schedule.from_current(rates, shift, every)


class _Agent:
    """One agent followed through its environment's RewardPaid events."""

    def __init__(self, w3: AsyncWeb3[Any], address: str, contract: str, from_block: int) -> None:
        self.w3 = w3
        self.address = AsyncWeb3.to_checksum_address(address)
        self.contract = w3.eth.contract(address=self.address, abi=artifacts.load(contract).abi)
        self.environment: str | None = None
        self.env: Any = None
        self.score: Scoreboard | None = None
        self.scanned = from_block - 1

    async def advance(self, tip: int) -> None:
        if self.env is None:
            address = AsyncWeb3.to_checksum_address(
                await self.contract.functions.environment().call(block_identifier=tip)
            )
            env = self.w3.eth.contract(address=address, abi=_env_abi())
            schedule = await _schedule(env, tip)
            self.env, self.environment, self.score = env, address, Scoreboard(schedule)
        assert self.score is not None
        if self.scanned >= tip:
            return
        end = min(tip, self.scanned + LOG_SPAN)
        logs = await self.w3.eth.get_logs(
            {
                "address": self.env.address,
                "topics": [_reward_paid_topic(), "0x" + "00" * 12 + self.address[2:].lower()],
                "fromBlock": self.scanned + 1,
                "toBlock": end,
            }
        )
        event = self.env.events.RewardPaid()
        for entry in sorted(logs, key=lambda e: (int(e["blockNumber"]), int(e["logIndex"]))):
            # the RPC node is not trusted to filter: another contract's or agent's log is not
            # this agent's pull
            if str(entry["address"]).lower() != self.env.address.lower():
                continue
            args = event.process_log(entry)["args"]
            if str(args["agent"]).lower() != self.address.lower():
                continue
            self.score.add(int(args["pull"]), int(args["arm"]), int(args["reward"]))
        self.scanned = end

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"address": self.address, "environment": self.environment}
        if self.env is not None and self.score is not None:
            s = self.score.schedule
            out["schedule"] = (
                None
                if s is None
                else {"rates_ppm": list(s.rates_ppm), "drift_every": s.drift_every}
            )
            out |= self.score.summary()
        return out


class _Loop:
    def __init__(self, source: LoopSource, w3: AsyncWeb3[Any]) -> None:
        self.source = source
        self.agent = _Agent(w3, source.agent, "MiraPolicyAgent", source.from_block)
        self.random = (
            None
            if source.random_agent is None
            else _Agent(w3, source.random_agent, "RandomAgent", source.from_block)
        )

    async def read(self, tip: int) -> dict[str, Any]:
        src = self.source
        out: dict[str, Any] = {
            "feed": src.feed,
            "arms": list(src.arms),
            "from_block": src.from_block,
        }
        for name, agent in (("agent", self.agent), ("random", self.random)):
            if agent is None:
                out[name] = None
                continue
            try:
                await agent.advance(tip)
            except Exception as exc:  # the RPC failed, or the address is not such an agent
                out[name] = {
                    "address": agent.address,
                    "error": f"{type(exc).__name__}: {exc}"[:300],
                }
                continue
            out[name] = {**agent.summary(), "scanned_to_block": agent.scanned}
        return out


class LoopView:
    """``sources()``: the loops of the feeds the node runs now (see :func:`loop_sources`)."""

    def __init__(
        self,
        sources: Callable[[], list[LoopSource]],
        *,
        rpc_timeout_s: float = RPC_TIMEOUT_S,
        min_interval_s: float = 1.0,
    ) -> None:
        self.sources = sources
        self.rpc_timeout_s = rpc_timeout_s
        self._w3: dict[str, AsyncWeb3[Any]] = {}
        self._loops: dict[LoopSource, _Loop] = {}
        self._shared = SharedRead(self._read, min_interval_s)

    async def read(self) -> dict[str, Any]:
        return await self._shared.read()

    async def close(self) -> None:
        """Stop a background read and close the RPC clients' connections."""
        self._shared.close()
        clients, self._w3 = list(self._w3.values()), {}
        for w3 in clients:
            await close_async_web3(w3)

    def _web3(self, url: str) -> AsyncWeb3[Any]:
        if url not in self._w3:
            self._w3[url] = async_web3(url, timeout_s=self.rpc_timeout_s)
        return self._w3[url]

    async def _read(self) -> dict[str, Any]:
        sources = self.sources()
        shown = sources[:MAX_LOOPS]
        # loops of feeds no longer run (a registered model deactivated) are forgotten
        for gone in [s for s in self._loops if s not in shown]:
            del self._loops[gone]
        kept = {u: w for u, w in self._w3.items() if any(s.rpc_url == u for s in shown)}
        unused = [w for u, w in self._w3.items() if u not in kept]
        self._w3 = kept
        for w3 in unused:  # the chains of loops no longer shown: their connections closed
            await close_async_web3(w3)
        tips: dict[str, int | str] = {}
        loops: list[dict[str, Any]] = []
        for src in shown:
            loop = self._loops.get(src)
            if loop is None:
                loop = self._loops[src] = _Loop(src, self._web3(src.rpc_url))
            if src.rpc_url not in tips:
                try:
                    tips[src.rpc_url] = int(await self._web3(src.rpc_url).eth.block_number)
                except Exception as exc:
                    tips[src.rpc_url] = f"reading the chain: {type(exc).__name__}: {exc}"[:300]
            tip = tips[src.rpc_url]
            if isinstance(tip, str):
                loops.append({"feed": src.feed, "error": tip})
                continue
            loops.append({**await loop.read(tip), "block": tip})
        return {"loops": loops, "more": len(sources) > MAX_LOOPS}
