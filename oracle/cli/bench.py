"""``mira bench``: performance benchmarks. Each benchmark is one subcommand of the group.

``mira bench sign`` times the threshold-signature machinery in one process: the DKG, and
a full signing round — fresh nonce commitments from t signers, the round context
(binding factors, group commitment, challenge, Lagrange coefficients), every signature
share, the verification of every share, aggregation and the final verification.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any

import click

from oracle.bench.e2e import e2e
from oracle.bench.pipeline import pipeline
from oracle.bench.pull import pull
from oracle.bench.rl import rl_command
from oracle.bench.startup import startup
from oracle.cli.evaluate import models_command
from oracle.crypto.dkg import run_dkg_in_one_process
from oracle.crypto.frost import SigningRound, aggregate, make_signers
from oracle.crypto.suites import FROST_SECP256K1_SHA256, MIRA_EVM, Ciphersuite
from oracle.progress import stderr_progress

SIGN_CASES: tuple[tuple[int, int], ...] = ((3, 4), (5, 7), (11, 16), (21, 31), (43, 64))
# The bars of issue 4.
SIGN_BAR = (21, 31, 50.0)  # t, n, max CPU milliseconds for a signing round
DKG_BAR = (31, 5.0)  # n, max seconds for the whole DKG in one process

SUITES: dict[str, Ciphersuite] = {"evm": MIRA_EVM, "rfc": FROST_SECP256K1_SHA256}


@click.group()
def bench() -> None:
    """Measure how fast the node's hot paths are."""


bench.add_command(pipeline)
bench.add_command(e2e)
bench.add_command(pull)
bench.add_command(rl_command)
bench.add_command(models_command)
bench.add_command(startup)


def _dkg_and_signing(suite: Ciphersuite, t: int, n: int, rounds: int) -> dict[str, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = run_dkg_in_one_process(suite, t, n)
    case: dict[str, Any] = {
        "t": t,
        "n": n,
        "dkg_wall_s": round(time.perf_counter() - wall, 4),
        "dkg_cpu_s": round(time.process_time() - cpu, 4),
    }
    signers = make_signers(suite, result.public, result.keys)
    chosen = [signers[i] for i in sorted(signers)[:t]]
    samples = []
    for _ in range(rounds):
        message = os.urandom(32)
        start = time.process_time()
        round_ = SigningRound.build(suite, result.public, message, [s.commit() for s in chosen])
        signature = aggregate(round_, [s.sign(round_) for s in chosen])
        samples.append(time.process_time() - start)
        if not suite.verify(result.public.group_key, message, suite.encode_signature(signature)):
            raise click.ClickException(f"benchmark signature for t={t}, n={n} does not verify")
    case["sign_cpu_ms_median"] = round(statistics.median(samples) * 1e3, 3)
    case["sign_cpu_ms_min"] = round(min(samples) * 1e3, 3)
    case["sign_rounds"] = rounds
    return case


def _parse_case(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> Any:
    cases = []
    for value in values:
        try:
            t, n = (int(x) for x in value.split(","))
        except ValueError:
            raise click.BadParameter(f"{value!r}: expected T,N such as 21,31") from None
        if not 1 <= t <= n:
            raise click.BadParameter(f"{value!r}: need 1 ≤ T ≤ N")
        cases.append((t, n))
    return tuple(cases) or SIGN_CASES


@bench.command("sign")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--rounds", default=9, show_default=True, help="Signing rounds per (t, n).")
@click.option(
    "--suite",
    "suite_name",
    type=click.Choice(sorted(SUITES)),
    default="evm",
    show_default=True,
    help="evm: Mira's on-chain suite; rfc: FROST(secp256k1, SHA-256).",
)
@click.option(
    "--case",
    "selected",
    multiple=True,
    callback=_parse_case,
    metavar="T,N",
    help="Only these committees (repeatable); default: the five of issue 4.",
)
def sign(
    as_json: bool, rounds: int, suite_name: str, selected: tuple[tuple[int, int], ...]
) -> None:
    """DKG and FROST signing-round times for t-of-n committees, all in one process."""
    suite = SUITES[suite_name]
    cases = []
    with stderr_progress("mira bench sign") as progress:
        for i, (t, n) in enumerate(selected):
            progress("committees: DKG, then signing rounds", i, len(selected))
            cases.append(_dkg_and_signing(suite, t, n, max(rounds, 1)))
    for case in cases:
        t, n = case["t"], case["n"]
        if not as_json:
            click.echo(
                f"t={t:>2} n={n:>2}  DKG {case['dkg_wall_s']:>7.3f} s wall "
                f"{case['dkg_cpu_s']:>7.3f} s CPU   signing round "
                f"{case['sign_cpu_ms_median']:>7.2f} ms CPU (median of {rounds})"
            )
    bars: dict[str, dict[str, Any]] = {}
    sign_case = next((c for c in cases if (c["t"], c["n"]) == SIGN_BAR[:2]), None)
    if sign_case is not None:
        bars["sign_t21_n31_cpu_ms"] = {
            "limit": SIGN_BAR[2],
            "measured": sign_case["sign_cpu_ms_median"],
            "pass": sign_case["sign_cpu_ms_median"] <= SIGN_BAR[2],
        }
    dkg_case = next((c for c in cases if c["n"] == DKG_BAR[0]), None)
    if dkg_case is not None:
        bars["dkg_n31_wall_s"] = {
            "limit": DKG_BAR[1],
            "measured": dkg_case["dkg_wall_s"],
            "pass": dkg_case["dkg_wall_s"] <= DKG_BAR[1],
        }
    report = {
        "benchmark": "sign",
        "suite": suite.name,
        "cases": cases,
        "bars": bars,
        "pass": all(b["pass"] for b in bars.values()) if bars else None,
    }
    if as_json:
        click.echo(json.dumps(report))
    else:
        for name, bar in bars.items():
            verdict = "pass" if bar["pass"] else "FAIL"
            click.echo(f"{name}: {bar['measured']} (limit {bar['limit']}) {verdict}")


@bench.command("pull-gas")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def pull_gas_command(as_json: bool) -> None:
    """Full-transaction gas of pull-mode verification under a 10,000-feed root."""
    from oracle.bench import pull_gas

    with stderr_progress("mira bench pull-gas") as progress:
        result = pull_gas.run(progress)
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
        return
    click.echo(f"hardfork {result['hardfork']}, {result['pull']['leaves']:,} leaves")
    for name, case in result["pull"]["cases"].items():
        click.echo(f"{name}: {case['gas_beyond_base']:>9,} gas beyond the 21,000 base")
    click.echo(json.dumps(result["bars"], indent=2))


@bench.command("gas")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def gas_command(as_json: bool) -> None:
    """Full-transaction gas of Mira's transmit vs committee size and batch size, and OCR2's."""
    from oracle.bench import gas

    with stderr_progress("mira bench gas") as progress:
        result = gas.run(progress)
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
        return
    mira, bars = result["mira"], result["bars"]
    click.echo(f"hardfork {result['hardfork']}")
    for n, g in mira["one_feed_gas_by_committee_size"].items():
        click.echo(f"one feed, n={n:>3}: {g:>9,} gas")
    for k, g in mira["gas_by_feed_count"].items():
        click.echo(f"{k:>3} feeds, n={mira['report_committee_size']}: {g:>9,} gas")
    click.echo(f"marginal per feed at 100: {mira['marginal_gas_per_feed_at_100']:,.0f} gas")
    for n, g in result["ocr2"]["gas_by_committee_size"].items():
        click.echo(f"OCR2Base one value, n={n:>3}: {g:>9,} gas")
    click.echo(json.dumps(bars, indent=2))
