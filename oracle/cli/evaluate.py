"""``mira eval SPEC…`` and ``mira bench models``: each feed spec run through the node's own
pipeline over its replay source (temporary storage, no chain) and measured against naive
baselines on the same stream (oracle.bench.models)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from oracle import bundle
from oracle.cli.options import json_option
from oracle.progress import stderr_progress

EXAMPLES = ("docs/examples/sp500_bandit.toml",)  # demo specs outside feeds/ (a checkout's)


def _report(paths: list[Path], command: str) -> dict[str, Any]:
    from oracle.bench.models import BAR, evaluate_file
    from oracle.node.logs import configure_logging

    configure_logging("warning", "json")  # stdout carries the one JSON object
    feeds = []
    with stderr_progress(command) as progress:
        for done, path in enumerate(paths):
            progress("specs through the pipeline and their baselines", done, len(paths))
            feeds.append(evaluate_file(path))
    return {
        "bench": "models",
        "bar_improvement": BAR,
        "feeds": feeds,
        "pass": all(f["pass"] for f in feeds),
    }


def _echo(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report))
        return
    for f in report["feeds"]:
        metric = f["metric"]
        base = f["best_naive_baseline"]
        model = f["model_scores"][metric]
        verdict = "pass" if f["pass"] else "FAIL"
        if base is None or f["improvement"] is None:
            click.echo(f"{f['feed']:<26} {metric} {model:.4f}: no naive baseline to beat")
            continue
        baseline = f["baselines"][base][metric]
        click.echo(
            f"{f['feed']:<26} {metric} {model:.4f} vs {base} {baseline:.4f}: "
            f"{f['improvement']:+.1%} ({verdict}, bar {report['bar_improvement']:.0%})"
        )


@click.command("eval")
@click.argument(
    "specs", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path)
)
@json_option
def eval_command(specs: tuple[Path, ...], as_json: bool) -> None:
    """Measure each feed SPEC against naive baselines on its replay data.

    Runs the spec through the node's pipeline (validation, model, quantization, storage in
    a temporary database; no chain) and reports its error (forecasts), detection scores
    (anomaly) or cumulative reward (policy) beside the baselines named in its [eval] table.
    """
    _echo(_report(list(specs), "mira eval"), as_json)


@click.command("models")
@json_option
def models_command(as_json: bool) -> None:
    """`mira eval` of every demo model feed (feeds/*.toml, and the examples of a checkout)."""
    from oracle.bench.models import demo_specs

    feeds_dir = bundle.locate(bundle.DEMO_FEEDS)
    examples = [bundle.CHECKOUT / e for e in EXAMPLES]
    _echo(_report(demo_specs(feeds_dir, examples), "mira bench models"), as_json)
