"""End-to-end latency of the oracle network: a source value changes → the new value is
readable through the feed's AggregatorV3Interface proxy.

n = 4 and n = 7 nodes, each its own ``mira node run`` process (oracle.devnet.localnet), on
anvil with 1 s blocks. The harness changes its HTTP source at a random phase (so changes
do not stay in step with blocks or rounds), then polls ``latestRoundData`` every 20 ms
until the new answer is there. Also: reports per minute on-chain, and gas per report
(whole-transaction ``gasUsed``).
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from oracle.chain.anvil import Anvil, AnvilConfig
from oracle.crypto.dkg import default_threshold
from oracle.devnet.localnet import LocalNet
from oracle.progress import Progress, no_progress, stderr_progress

SIZES = (4, 7)
BAR_N = 7
BAR_P50_S = 1.5
BAR_P99_S = 3.0
POLL_S = 0.02


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def measure(n: int, samples: int, root: Path, progress: Progress = no_progress) -> dict[str, Any]:
    with Anvil(AnvilConfig(block_time=1.0, accounts=n + 2)) as anvil:
        net = LocalNet(
            root,
            anvil.url,
            anvil.private_keys,
            n,
            poll_s=0.05,
            round_period_s=0.2,
            observe_timeout_s=0.15,
            transmit_timeout_s=2.0,
        )
        try:
            progress(f"n={n}: deploying, starting {n} node processes, DKG over p2p")
            net.setup()
            net.start()
            net.wait_ready(timeout=120)
            net.until(lambda: net.proxy_answer()[1] == 2000 * 10**8, 30, "the first value")
            start_block = net.w3.eth.block_number
            started = time.monotonic()
            latencies: list[float] = []
            value = 2000
            for i in range(samples):
                progress(f"n={n}: value changes until readable on-chain", i, samples)
                time.sleep(random.uniform(0.2, 1.2))  # noqa: S311 (a phase, not a secret)
                value += 20 if i % 2 == 0 else -10  # ≥ 0.5 %: over the deviation threshold
                target = value * 10**8
                net.set_price(float(value))
                changed = time.monotonic()
                deadline = changed + 15
                while net.proxy_answer()[1] != target:
                    if time.monotonic() > deadline:
                        raise click.ClickException(f"n={n}: value {value} never reached the chain")
                    time.sleep(POLL_S)
                latencies.append(time.monotonic() - changed)
            elapsed = time.monotonic() - started
            events = net.transmissions(start_block)
        finally:
            net.stop()
    gas = [e["gas"] for e in events]
    return {
        "n": n,
        "threshold": default_threshold(n),
        "samples": samples,
        "latency_s_p50": round(statistics.median(latencies), 3),
        "latency_s_p99": round(_percentile(latencies, 0.99), 3),
        "latency_s_max": round(max(latencies), 3),
        "reports_on_chain": len(events),
        "rounds_per_minute": round(len(events) / elapsed * 60, 1),
        "gas_per_report_median": int(statistics.median(gas)) if gas else None,
    }


def run(samples: int, progress: Progress = no_progress) -> dict[str, Any]:
    results = {}
    with tempfile.TemporaryDirectory(prefix="mira-e2e-") as tmp:
        for n in SIZES:
            results[str(n)] = measure(n, samples, Path(tmp) / f"n{n}", progress)
    ref = results[str(BAR_N)]
    bars = {
        "n": BAR_N,
        "p50_max_s": BAR_P50_S,
        "p99_max_s": BAR_P99_S,
        "p50_pass": ref["latency_s_p50"] <= BAR_P50_S,
        "p99_pass": ref["latency_s_p99"] <= BAR_P99_S,
    }
    return {
        "benchmark": "e2e",
        "block_time_s": 1.0,
        "setup": "each node a separate process; 1 feed; HTTP source changed at a random phase; "
        "latency until latestRoundData through the proxy returns the new value (20 ms polling)",
        "results": results,
        "bars": bars,
    }


@click.command("e2e")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--samples", default=30, show_default=True, help="Value changes per committee.")
def e2e(as_json: bool, samples: int) -> None:
    """Source change → readable on-chain, n = 4 and n = 7 node processes on anvil."""
    import json

    with stderr_progress("mira bench e2e") as progress:
        result = run(samples, progress)
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
        return
    for n, r in result["results"].items():
        click.echo(
            f"n={n}: p50 {r['latency_s_p50']} s, p99 {r['latency_s_p99']} s, "
            f"{r['rounds_per_minute']} reports/min, {r['gas_per_report_median']} gas/report"
        )
    b = result["bars"]
    click.echo(
        f"bar n={b['n']}: p50 ≤ {b['p50_max_s']} s: {'PASS' if b['p50_pass'] else 'FAIL'}; "
        f"p99 ≤ {b['p99_max_s']} s: {'PASS' if b['p99_pass'] else 'FAIL'}"
    )
