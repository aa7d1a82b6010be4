"""Pull mode under load: how many feed outputs a committee attests per second.

Four ``mira node run`` processes (oracle.devnet.localnet) on anvil with 1 s blocks, each
running ``feeds`` feeds and signing a pull root over all of them every round
(``round_period_s``, default 1 s) for ``duration_s``. The feeds: ETH/USD (registered
on-chain, so the push path is on for it) reads its own price; every other feed is
pull-only, of output kind ``value`` (no model: the output is the observed value, quantized,
the lightest feed there is) and reads its own key of one ticker answer the harness serves
(GET /prices, every value moving each second), polled every second — the node polls HTTP
feeds of one interval together, one request per distinct URL (oracle.node.feeds). Measured,
from the nodes' logs and metrics over the window:

* attested outputs per second: Σ leaves of the roots signed / window;
* observation → signed root, p50 / p99: the round's start (when the leader asks for the
  observations) to the aggregated signature, as each leader logs it (``pull.signed``);
* p2p bytes sent per node per round (requests and replies, ``mira_p2p_sent_bytes``);
* CPU per node (user + system seconds of the node process / window);
* the push cost per feed: median gas of the push reports of the run (the one registered
  feed, ETH/USD, one feed a report; the others are pull-only).

The gas of verifying pulled values is ``mira bench pull-gas`` (a separate run, anvil
Prague); ``--with-gas`` runs it too and adds its cases. A root carries at most
``MAX_TOTAL`` leaves (its leaves travel in at most 32 parts, docs/pull.md).
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import click

from oracle.chain.anvil import Anvil, AnvilConfig
from oracle.config.node import RETAIN_S_MAX, RETAIN_S_MIN
from oracle.devnet.localnet import DECIMALS, FEED_SPEC, LocalNet
from oracle.devnet.processes import NodeProc
from oracle.errors import MiraError
from oracle.node.gc_watch import METRIC as GC_METRIC
from oracle.progress import Progress, no_progress, stderr_progress
from oracle.reporting.pull_parts import MAX_TOTAL
from oracle.reporting.pull_round import PULL_MAX_AGE_PERIODS

N = 4
BAR_OUTPUTS_PER_S = 10_000
BAR_P50_MS = 1_500
MAX_FEEDS = MAX_TOTAL  # leaves a root carries: 32 parts of 720


_MAX_BODY = 4 * 1024 * 1024
_SENT = ("mira_p2p_sent_bytes_total",)  # the one series read (a node renders only that)


def _ticker(count: int, t: int) -> dict[str, float]:
    """The ticker answer at second ``t``: feed i around 100 + i mod 997, moving by at most
    0.05 % a second (well within the feeds' 1 % tolerance between two members' polls)."""
    return {
        f"p{i}": round((100 + i % 997) * (1 + 0.0005 * math.sin(t / 7 + i)), 6)
        for i in range(count)
    }


class _TickerThread(threading.Thread):
    """Moves every ticker value once a second while the bench runs."""

    def __init__(self, net: LocalNet, count: int) -> None:
        super().__init__(daemon=True, name="ticker")
        self.net, self.count = net, count
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.net.feeds.set_many(_ticker(self.count, int(time.time())))
            self.stopped.wait(1.0 - time.time() % 1.0)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class _PullNet(LocalNet):
    """The local committee with ``feeds`` feeds per node, signing roots for a verifier."""

    def __init__(self, *args: Any, feeds: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.extra_feeds = feeds - 1
        # each wave of a round's parts: a member answers 14 parts at 10,000 feeds, on a
        # machine its three peers and anvil share
        self.transfer_timeout_s = max(1.0, feeds / 4000)

    def write_config(self, node: NodeProc, **kwargs: Any) -> None:
        super().write_config(node, **kwargs)
        url = self.feeds.many_url()
        for i in range(self.extra_feeds):
            spec = FEED_SPEC.format(feed=f"PULL-{i}/USD", decimals=DECIMALS, url=url, **self.params)
            # its own key of the ticker answer, which for 10,000 feeds is ~250 KB
            own = f'path = "p{i}"\nmax_body_bytes = {_MAX_BODY}'
            (node.dir / "feeds" / f"pull_{i}.toml").write_text(spec.replace('path = "price"', own))
        path = node.dir / "node.toml"
        text = path.read_text()
        line = f"pull_transfer_timeout_s = {self.transfer_timeout_s}\n"
        text = text.replace("\n[network]\n", "\n[network]\n" + line, 1)
        # the node's default checkpoint period, not the devnet's 5 s (quick restarts in
        # tests): every model pickled every 5 s is not what a node carrying 10,000 runs
        assert "checkpoint_every_s = 5\n" in text
        path.write_text(text.replace("checkpoint_every_s = 5\n", "checkpoint_every_s = 60\n"))


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _sent_bytes(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("mira_p2p_sent_bytes_total")
    )


_GC = (f"{GC_METRIC}_bucket", f"{GC_METRIC}_sum")
_LONG_PAUSE_S = "0.1"  # the bucket bound above which a pause counts as long


def _gc_pauses(metrics: str) -> tuple[float, float]:
    """A node's GC pauses since it started: (seconds in every pass, passes over 100 ms)."""
    seconds = over = 0.0
    for line in metrics.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith(_GC[1]):
            seconds += float(value)
        elif name.startswith(_GC[0]) and 'le="+Inf"' in name:
            over += float(value)
        elif name.startswith(_GC[0]) and f'le="{_LONG_PAUSE_S}"' in name:
            over -= float(value)
    return seconds, over


def _signed(log: Path, rounds: range) -> list[dict[str, Any]]:
    """The roots a node led for ``rounds`` (round ids: their start, unix ms), from its log."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if '"pull.signed"' not in line:
            continue
        event = json.loads(line)
        if event["round"] in rounds:
            out.append(event)
    return out


def _without_root(rounds: range, events: list[dict[str, Any]]) -> list[int]:
    """The round ids of ``rounds`` that no event of ``events`` signed a root for."""
    signed = {e["round"] for e in events}
    return [r for r in rounds if r not in signed]


def window_rounds(started_s: float, duration_s: float, period_s: float) -> range:
    """The rounds that start within ``duration_s`` from ``started_s``: what the throughput
    is measured over (a whole number of rounds, each root counted in its own round, however
    late it is signed)."""
    period = round(period_s * 1000)
    first = -(-round(started_s * 1000) // period) * period
    return range(first, round(started_s * 1000 + duration_s * 1000), period)


def measure(
    feeds: int,
    duration_s: float,
    round_period_s: float,
    root: Path,
    progress: Progress,
    poll_s: float = 1.0,
    retain_s: float | None = None,
) -> dict[str, Any]:
    with Anvil(AnvilConfig(block_time=1.0, accounts=N + 2)) as anvil:
        net = _PullNet(
            root,
            anvil.url,
            anvil.private_keys,
            N,
            feeds=feeds,
            pull=True,
            retain_s=retain_s,
            poll_s=poll_s,
            round_period_s=round_period_s,
            observe_timeout_s=0.5,
            transmit_timeout_s=2.0,
        )
        ticker = _TickerThread(net, feeds - 1)
        try:
            progress(f"{feeds} feeds: deploying, starting {N} node processes, DKG over p2p")
            net.feeds.set_many(_ticker(feeds - 1, int(time.time())))
            ticker.start()
            net.setup()
            net.start()
            # a node restores every feed before it serves: ~10 ms a feed on a loaded machine
            net.wait_ready(timeout=180 + 0.04 * feeds)
            time.sleep(5 + 2 * round_period_s)  # every feed polled, roots under way
            pids = [node.proc.pid for node in net.nodes if node.proc is not None]
            cpu0 = [_cpu_seconds(p) for p in pids]
            bytes0 = [_sent_bytes(net.metrics(i, _SENT)) for i in range(N)]
            gc0 = [_gc_pauses(net.metrics(i, _GC)) for i in range(N)]
            rpc0 = len(anvil.rpc_methods())  # the harness reads nothing from anvil meanwhile
            started = time.time()
            while time.time() - started < duration_s:
                progress(f"{feeds} feeds: rounds", int(time.time() - started), int(duration_s))
                time.sleep(min(5.0, duration_s))
            wall = time.time() - started
            cpu = [_cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True)]
            sent = [_sent_bytes(net.metrics(i, _SENT)) - b for i, b in enumerate(bytes0)]
            gc1 = [_gc_pauses(net.metrics(i, _GC)) for i in range(N)]
            rpc = collections.Counter(anvil.rpc_methods()[rpc0:])
            measured = window_rounds(started, duration_s, round_period_s)
            # a round's root may be signed up to PULL_MAX_AGE_PERIODS after it starts
            time.sleep((PULL_MAX_AGE_PERIODS + 1) * round_period_s)
            events = [e for node in net.nodes for e in _signed(node.dir / "node.log", measured)]
            pushes = net.transmissions(0)  # ETH/USD, pushed once it is read (heartbeat 1 h)
        finally:
            ticker.stopped.set()
            net.stop()
    rounds = len(measured)
    window = rounds * round_period_s  # the rounds' time: every root in it counted once
    latencies = [e["since_round_ms"] for e in events]
    leaves = [e["leaves"] for e in events]
    gas = [e["gas"] for e in pushes]
    return {
        "feeds": feeds,
        "window_s": round(window, 1),
        "rounds": int(rounds),
        "roots_signed": len(events),
        "roots_per_round": round(len(events) / rounds, 3),
        # the rounds with no root, as seconds into the window (at most the first 100): do
        # the misses come together, or at a period (a minute's checkpoint)?
        "rounds_without_root_at_s": [
            round((r - measured.start) / 1000) for r in _without_root(measured, events)
        ][:100],
        "leaves_per_root_median": int(statistics.median(leaves)) if leaves else 0,
        "attested_outputs_per_s": round(sum(leaves) / window, 1),
        # how many of them are new: each feed is observed once a poll (the rest of a root's
        # leaves are the feeds' current outputs again, signed for this round)
        "observations_per_s_per_node": round((feeds - 1) / poll_s + 1, 1),
        "observation_to_signed_root_ms_p50": round(_percentile(latencies, 0.5), 1)
        if latencies
        else None,
        "observation_to_signed_root_ms_p99": round(_percentile(latencies, 0.99), 1)
        if latencies
        else None,
        "p2p_bytes_sent_per_node_per_round": [int(b / rounds) for b in sent],
        "cpu_per_node": [round(c / wall, 3) for c in cpu],
        # the event loop held by the cyclic GC: its share of the time, and the long holds
        "gc_pause_share_per_node": [
            round((b[0] - a[0]) / wall, 4) for a, b in zip(gc0, gc1, strict=True)
        ],
        "gc_pauses_over_100ms_per_node": [int(b[1] - a[1]) for a, b in zip(gc0, gc1, strict=True)],
        # what the committee costs an RPC provider: JSON-RPC requests a node a second
        "rpc_requests_per_node_per_s": round(rpc.total() / wall / N, 2),
        "rpc_requests_per_node_per_s_by_method": {
            m: round(k / wall / N, 2) for m, k in rpc.most_common()
        },
        "push_reports": len(pushes),
        "push_gas_per_feed_median": int(statistics.median(gas)) if gas else None,
    }


def bars(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The issue's bars, on the run with the most attested outputs a second: at least
    ``BAR_OUTPUTS_PER_S`` of them, and observation → signed root p50 ≤ ``BAR_P50_MS``."""
    measured = [r for r in results.values() if "error" not in r]
    best_run = max(measured, key=lambda r: r["attested_outputs_per_s"], default=None)
    best = 0.0 if best_run is None else best_run["attested_outputs_per_s"]
    p50 = None if best_run is None else best_run["observation_to_signed_root_ms_p50"]
    return {
        "attested_outputs_per_s_min": BAR_OUTPUTS_PER_S,
        "attested_outputs_per_s_best": best,
        "observation_to_signed_root_ms_p50_max": BAR_P50_MS,
        "observation_to_signed_root_ms_p50_at_best": p50,
        "pass": best >= BAR_OUTPUTS_PER_S and p50 is not None and p50 <= BAR_P50_MS,
    }


def run(
    feeds: list[int],
    duration_s: float,
    round_period_s: float,
    with_gas: bool,
    progress: Progress = no_progress,
    poll_s: float = 1.0,
    retain_s: float | None = None,
) -> dict[str, Any]:
    results = {}
    with tempfile.TemporaryDirectory(prefix="mira-pull-") as tmp:
        for count in feeds:
            try:
                results[str(count)] = measure(
                    count,
                    duration_s,
                    round_period_s,
                    Path(tmp) / f"f{count}",
                    progress,
                    poll_s,
                    retain_s,
                )
            except (
                RuntimeError,
                AssertionError,
                TimeoutError,
                MiraError,
                click.ClickException,
            ) as exc:
                # a count the machine does not sustain (nodes never ready, a wait timed out)
                # is a result too: recorded, and the other counts still run
                results[str(count)] = {"feeds": count, "error": str(exc).splitlines()[0][:300]}
    out: dict[str, Any] = {
        "benchmark": "pull",
        "n": N,
        "round_period_s": round_period_s,
        "poll_s": poll_s,
        "retain_s": retain_s,
        "cpu_count": os.cpu_count(),
        "setup": "each node a separate process on anvil (1 s blocks); ETH/USD registered "
        "on-chain (push on for it), every other feed pull-only, output kind value (no model), "
        "its own key of one ticker answer (HTTP, values moving each second) polled every "
        f"{poll_s:g} s; one pull root per round over every feed",
        "results": results,
        "bars": bars(results),
    }
    if with_gas:
        from oracle.bench.pull_gas import run as run_gas

        out["pull_gas"] = run_gas(progress)
    return out


@click.command("pull")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option(
    "--feeds",
    default="100",
    show_default=True,
    help=f"Feed counts to run, comma-separated (each at most {MAX_FEEDS}).",
)
@click.option("--duration", default=60.0, show_default=True, help="Seconds measured per count.")
@click.option("--round-period", default=1.0, show_default=True, help="Round period, seconds.")
@click.option(
    "--poll",
    default=1.0,
    show_default=True,
    help="Seconds between two polls of a feed (each poll is a fresh observation per feed).",
)
@click.option(
    "--retain",
    type=float,
    default=None,
    help="The nodes' [database] retain_s (default: keep every row, as a node does).",
)
@click.option("--with-gas", is_flag=True, help="Also run `mira bench pull-gas`.")
def pull(
    as_json: bool,
    feeds: str,
    duration: float,
    round_period: float,
    poll: float,
    retain: float | None,
    with_gas: bool,
) -> None:
    """Attested outputs per second, root latency, bytes and CPU: 4 node processes."""
    if not re.fullmatch(r"[0-9]+(,[0-9]+)*", feeds):
        raise click.UsageError(f"--feeds {feeds!r}: expected counts like 100,400")
    counts = [int(c) for c in feeds.split(",")]
    if any(not 1 <= c <= MAX_FEEDS for c in counts):
        raise click.UsageError(f"--feeds: each count from 1 to {MAX_FEEDS}")
    if not 0.2 <= poll <= 60:
        raise click.UsageError("--poll 0.2..60 s")
    if retain is not None and not RETAIN_S_MIN <= retain <= RETAIN_S_MAX:
        raise click.UsageError(f"--retain {RETAIN_S_MIN:g}..{RETAIN_S_MAX:,.0f} s (as retain_s)")
    if not 10 <= duration <= 3600 or not 0.1 <= round_period <= 60:
        raise click.UsageError("--duration 10..3600 s, --round-period 0.1..60 s")
    with stderr_progress("mira bench pull") as progress:
        result = run(counts, duration, round_period, with_gas, progress, poll, retain)
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
        return
    for count, r in result["results"].items():
        if "error" in r:
            click.echo(f"{count} feeds: not sustained: {r['error']}")
            continue
        click.echo(
            f"{count} feeds: {r['attested_outputs_per_s']} outputs/s, "
            f"{r['roots_per_round']} roots/round, p50 {r['observation_to_signed_root_ms_p50']} "
            f"ms, p99 {r['observation_to_signed_root_ms_p99']} ms, CPU/node {r['cpu_per_node']}"
        )
    b = result["bars"]
    click.echo(
        f"bar ≥ {b['attested_outputs_per_s_min']} outputs/s: "
        f"{'PASS' if b['pass'] else 'FAIL'} (best {b['attested_outputs_per_s_best']})"
    )
