"""What the devnet shows while it runs: per feed its on-chain value (through its
AggregatorV3Interface proxy), round, age and the nodes' model error; per node its health."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from rich.table import Table
from web3 import Web3

from oracle.chain.deploy import at
from oracle.chain.system import Manifest
from oracle.config.feeds import decimal_text


def get_json(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (local http)
            data: dict[str, Any] = json.loads(r.read())
            return data
    except (OSError, ValueError, urllib.error.URLError):
        return None


@dataclass
class FeedRow:
    feed: str
    round: int | None
    value: str | None  # the on-chain value with its decimals written out
    age_s: float | None
    node_value: str | None
    mae: float | None
    skill: float | None = None  # 1 - the model's rolling error / the naive baseline's


@dataclass
class RLRow:
    """The RL loop's scoreboard: cumulative rewards (in rewards of 1.0) after ``steps``, as
    a node serves it (GET /v1/loop)."""

    steps: int
    agent_reward: float
    random_steps: int
    random_reward: float
    best_arm_reward: float | None  # expected: the best arm's rate at each of the agent's steps
    regret: float | None  # pseudo-regret: Σ best arm's rate - the taken arm's rate
    best_arm: int | None
    last_arm: int | None


@dataclass
class NodeRow:
    name: str
    api: str
    healthy: bool
    state: str
    last_report_round: int | None


class Watcher:
    """Reads the devnet's state: the chain through each feed's proxy, the nodes' APIs."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.w3 = Web3(Web3.HTTPProvider(manifest.rpc_url, request_kwargs={"timeout": 5}))
        self.proxies = {
            fid: at(self.w3, "MiraFeedProxy", entry["proxy"])
            for fid, entry in manifest.feeds.items()
        }
        self.nodes: list[dict[str, Any]] = list(manifest.extra.get("nodes", []))
        self.rl_info: dict[str, Any] | None = manifest.extra.get("rl")
        self._best_sum: tuple[int, int] = (0, 0)  # (steps, Σ best rate ppm) so far

    def rl_row(self) -> RLRow | None:
        """:meth:`rl`, or None while no node answers."""
        try:
            return self.rl()
        except (KeyError, TypeError, ValueError):  # a node still starting: next refresh
            return None

    def rl(self) -> RLRow | None:
        """The RL loop's scoreboard as the first node that answers shows it (GET /v1/loop:
        computed there, oracle.chain.bandit, never here); None without a loop."""
        info = self.rl_info
        if info is None:
            return None
        for n in self.nodes:
            loops = (get_json(n["api"] + "/v1/loop") or {}).get("loops", [])
            loop: dict[str, Any] = next((x for x in loops if x["feed"] == info["feed"]), {})
            agent = loop.get("agent") or {}
            if "steps" not in agent:
                continue
            rand = loop.get("random") or {}
            return RLRow(
                agent["steps"],
                agent["reward"],
                rand.get("steps", 0),
                rand.get("reward", 0.0),
                agent.get("best_arm_reward"),
                agent.get("regret"),
                agent.get("best_arm_now"),
                agent.get("last_arm"),
            )
        return None

    def onchain(self, feed: str) -> tuple[int, str, int] | None:
        """(roundId, value, updatedAt) through the feed's proxy; None before the first round.

        roundId is Chainlink's: phase << 64 | the feed's update count."""
        try:
            data = self.proxies[feed].functions.latestRoundData().call()
        except Exception:  # no round yet reverts
            return None
        if int(data[3]) == 0:  # registered, no round yet (roundId is phase << 64 | 0 then)
            return None
        decimals = int(self.manifest.feeds[feed]["decimals"])
        return int(data[0]), decimal_text(int(data[1]), decimals), int(data[3])

    def node_feed(self, api: str, feed: str) -> dict[str, Any] | None:
        return get_json(f"{api}/v1/feeds/{urllib.parse.quote(feed, safe='')}")

    def feeds(self) -> list[FeedRow]:
        rows = []
        now = time.time()
        for feed in self.manifest.feeds:
            chain = self.onchain(feed)
            node = None
            for n in self.nodes:
                node = self.node_feed(n["api"], feed)
                if node is not None:
                    break
            latest = (node or {}).get("latest") or {}
            metrics = (node or {}).get("metrics") or {}
            rows.append(
                FeedRow(
                    feed,
                    chain[0] if chain else None,
                    chain[1] if chain else None,
                    now - chain[2] if chain else None,
                    None
                    if latest.get("value") is None
                    else decimal_text(int(latest["value"]), (node or {})["decimals"]),
                    metrics.get("mae"),
                    metrics.get("skill"),
                )
            )
        return rows

    def node_rows(self) -> list[NodeRow]:
        rows = []
        for n in self.nodes:
            health = get_json(n["api"] + "/healthz")
            net = get_json(n["api"] + "/v1/network") or {}
            rows.append(
                NodeRow(
                    n["name"],
                    n["api"],
                    bool(health and health.get("ok")),
                    str(net.get("state", "unreachable")),
                    net.get("last_report_round"),
                )
            )
        return rows


def _fmt(x: Any, spec: str = "") -> str:
    return "-" if x is None else format(x, spec)


def render(
    feeds: list[FeedRow],
    nodes: list[NodeRow],
    *,
    loop: RLRow | None = None,
    dashboard: str | None = None,
) -> Table:
    outer = Table.grid(padding=(1, 0))
    ft = Table(title="feeds (on-chain, read through each AggregatorV3Interface proxy)")
    for col in ("feed", "round", "value", "age", "node output", "model MAE", "skill vs naive"):
        ft.add_column(col)
    for f in feeds:
        ft.add_row(
            f.feed,
            _fmt(f.round),
            _fmt(f.value),
            "-" if f.age_s is None else f"{f.age_s:.0f} s",
            f.node_value or "-",
            _fmt(f.mae, ".4g"),
            _fmt(f.skill, "+.0%"),
        )
    nt = Table(title="nodes")
    for col in ("node", "API", "health", "network", "last report round"):
        nt.add_column(col)
    for n in nodes:
        nt.add_row(
            n.name,
            n.api,
            "[green]ok[/green]" if n.healthy else "[red]down[/red]",
            n.state,
            _fmt(n.last_report_round),
        )
    outer.add_row(ft)
    if loop is not None:
        rt = Table(title="RL loop (the agent acts every block on the committee's policy)")
        for col in ("steps", "agent reward", "random agent", "best arm (expected)", "regret",
                    "best arm", "agent's last arm"):  # fmt: skip
            rt.add_column(col)
        rt.add_row(
            str(loop.steps),
            f"{loop.agent_reward:.0f}",
            f"{loop.random_reward:.0f} ({loop.random_steps} steps)",
            _fmt(loop.best_arm_reward, ".1f"),
            _fmt(loop.regret, ".1f"),
            _fmt(loop.best_arm),
            _fmt(loop.last_arm),
        )
        outer.add_row(rt)
    outer.add_row(nt)
    if dashboard:
        outer.add_row(f"dashboard: {dashboard} (every member, in a browser)")
    outer.add_row("Ctrl-C stops the devnet (or `mira devnet down` from another shell)")
    return outer


def compact(feeds: list[FeedRow], nodes: list[NodeRow], loop: RLRow | None = None) -> str:
    parts = [
        f"{f.feed} no round yet" if f.round is None else f"{f.feed} r{f.round}={f.value}"
        for f in feeds
    ]
    if loop is not None:
        parts.append(
            f"RL {loop.steps} steps: agent {loop.agent_reward:.0f}, random "
            f"{loop.random_reward:.0f}, best arm {_fmt(loop.best_arm_reward, '.1f')}, regret "
            f"{_fmt(loop.regret, '.1f')}"
        )
    up = sum(n.healthy for n in nodes)
    return f"{time.strftime('%H:%M:%S')} " + "; ".join(parts) + f"; nodes {up}/{len(nodes)} ok"
