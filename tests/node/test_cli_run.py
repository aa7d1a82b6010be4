"""`mira db upgrade` + `mira node run` as a user runs them; SIGTERM drains and a restart
resumes with nothing lost or duplicated."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from oracle.config import load_feed_spec
from oracle.storage import Store, make_engine

REPO = Path(__file__).resolve().parents[2]
MIRA = str(Path(sys.executable).parent / "mira")


def setup(tmp_path: Path) -> tuple[Path, str]:
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    text = (REPO / "feeds" / "sp500_forecast.toml").read_text()
    (feeds / "sp500.toml").write_text(text.replace("step_ms = 1000", "step_ms = 1000\npasses = 40"))
    url = f"sqlite:///{tmp_path / 'node.sqlite'}"
    config = tmp_path / "node.toml"
    config.write_text(f'[node]\nname = "cli"\n[database]\nurl = "{url}"\n[api]\nport = 0\n')
    return config, url


def run_until_some_output(config: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [MIRA, "node", "run", "--config", str(config)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    port = None
    for _ in range(200):
        line = proc.stderr.readline()
        if not line:
            break
        event = json.loads(line)
        if event.get("event") == "api.listening":
            port = event["port"]
            break
    assert port, "the node did not start its API"
    for _ in range(200):
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/v1/feeds/SP500/forecast-1", timeout=5
        ) as r:
            latest = json.loads(r.read())["latest"]
        if latest and latest["seq"] > 2000:
            return proc
        time.sleep(0.05)
    raise AssertionError("no output")


def test_unmigrated_database_refused_then_sigterm_drains_and_restart_resumes(
    tmp_path: Path,
) -> None:
    config, url = setup(tmp_path)
    refused = subprocess.run(
        [MIRA, "node", "run", "--config", str(config)], capture_output=True, text=True, timeout=120
    )
    assert refused.returncode != 0
    assert "mira db upgrade" in refused.stderr

    upgraded = subprocess.run(
        [MIRA, "db", "upgrade", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert upgraded.returncode == 0, upgraded.stderr

    proc = run_until_some_output(config)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    store = Store(make_engine(url))
    stored = store.count_observations("SP500/forecast-1")
    last = store.last_observation("SP500/forecast-1")
    assert last is not None and last.seq == stored  # dense, nothing lost in between
    # the model was checkpointed on the way out, at the last stored observation
    digest = load_feed_spec(tmp_path / "feeds" / "sp500.toml").digest
    ckpt = store.latest_checkpoint("SP500/forecast-1", digest)
    assert ckpt is not None and ckpt.seq == stored

    proc = run_until_some_output(config)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    again = store.count_observations("SP500/forecast-1")
    assert again > stored
    assert store.last_observation("SP500/forecast-1").seq == again  # type: ignore[union-attr]
    assert store.last_observation("SP500/forecast-1").dedup_key == f"row:{again - 1}"  # type: ignore[union-attr]
