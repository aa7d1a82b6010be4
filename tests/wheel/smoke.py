"""The installable wheel, tried as a user would (``make test-wheel``).

Builds the wheel from this checkout (after ``make contracts``: the wheel bundles the contract
artifacts), installs it into a fresh virtualenv against ``constraints.txt``, then, from an
empty temporary directory and with nothing of the checkout on the path:

1. ``mira --help``; ``mira --version`` names the same contract build as the checkout;
2. ``mira db upgrade`` on a new SQLite database (the migrations are package data);
3. ``mira keys new`` and a ``mira node run`` with a demo feed spec taken from the installed
   package and a ``[network]`` section (the node reads the MiraOracle ABI from the wheel;
   its RPC is the discard port, so it keeps bootstrapping): the feed produces outputs,
   the network service reports its state, the dashboard's files (package data) are served
   at ``/ui/``, and SIGTERM stops the node with exit code 0.

Run: ``python tests/wheel/smoke.py [--python PATH]`` (PATH: the interpreter whose pip builds
the wheel and creates the virtualenv; default: this one). Standard library only. Every wait
is bounded; a failure prints what the node logged.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FEED = "SP500/forecast-1"
STOP_BOUND_S = 30.0


def run(*args: str | Path, cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise SystemExit(f"FAILED: {' '.join(map(str, args))}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def build_and_install(python: str, tmp: Path, env: dict[str, str]) -> Path:
    dist = tmp / "dist"
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # no stale module of an earlier build
    # In-tree (pip builds a local directory in place): the build step reads contracts/out of
    # this checkout. pip installs the build backend of pyproject.toml in an isolated
    # environment, from the package index.
    run(python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", dist, ROOT,
        cwd=ROOT, env=env)  # fmt: skip
    wheels = sorted(dist.glob("mira_oracle-*.whl"))
    assert len(wheels) == 1, wheels
    venv = tmp / "venv"
    run(python, "-m", "venv", venv, cwd=tmp, env=env)
    # --no-compile: skip byte-compiling every dependency up front (most of the install's CPU
    # time, a minute or more on a 2-core machine); what the smoke run imports compiles as it
    # loads, which is all a user's first run would notice
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-compile", "-c",
        ROOT / "constraints.txt", wheels[0], cwd=tmp, env=env)  # fmt: skip
    print(f"built and installed {wheels[0].name}")
    return venv / "bin"


def node_toml(api: int, p2p: int) -> str:
    return f"""[node]
name = "wheel-smoke"
feeds_dir = "feeds"

[database]
url = "sqlite:///node.sqlite"

[api]
host = "127.0.0.1"
port = {api}

[network]
listen_host = "127.0.0.1"
listen_port = {p2p}
rpc_url = "http://127.0.0.1:9"
oracle = "0x{"11" * 20}"
keys_dir = "keys"
passphrase_file = "passphrase"
"""


def smoke(bin_dir: Path, home: Path, env: dict[str, str]) -> None:
    mira = bin_dir / "mira"
    assert "devnet" in run(mira, "--help", cwd=home, env=env)
    where = run(bin_dir / "python", "-c",
                "import oracle, oracle.bundle as b; print(oracle.__file__); "
                "print(b.locate(b.DEMO_FEEDS)); print(b.locate(b.ARTIFACTS))",
                cwd=home, env=env).split()  # fmt: skip
    for path in where:  # the installed copy, not this checkout
        assert not Path(path).is_relative_to(ROOT), path
    # the wheel's bundled contracts are this checkout's build: same fingerprint
    installed = run(mira, "--version", cwd=home, env=env).splitlines()
    report = "from oracle.cli.main import version_report; print(version_report())"
    checkout = subprocess.run([sys.executable, "-c", report], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.splitlines()  # fmt: skip
    assert installed[1] == checkout[1] and "not built" not in installed[1], (installed, checkout)
    print("\n".join(installed))
    out = run(mira, "db", "upgrade", "--database-url", "sqlite:///node.sqlite", cwd=home, env=env)
    assert "(head)" in out, out
    print(out.strip())

    (home / "passphrase").write_text("wheel-smoke-passphrase")
    run(mira, "keys", "new", "--dir", "keys", "--passphrase-file", "passphrase",
        cwd=home, env=env)  # fmt: skip
    (home / "feeds").mkdir()
    spec = (Path(where[1]) / "sp500_forecast.toml").read_text()
    (home / "feeds" / "sp500.toml").write_text(spec)
    api = free_port()
    (home / "node.toml").write_text(node_toml(api, free_port()))
    log = (home / "node.log").open("w")
    proc = subprocess.Popen([mira, "node", "run", "--config", "node.toml"], cwd=home, env=env,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            feed = get(f"http://127.0.0.1:{api}/v1/feeds/{FEED}") or {}
            network = get(f"http://127.0.0.1:{api}/v1/network") or {}
            if feed.get("latest") and str(network.get("state", "")).startswith("bootstrapping"):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"FAILED: the node did not run\n{(home / 'node.log').read_text()}")
            time.sleep(0.2)
        print(f"mira node run: {FEED} seq {feed['latest']['seq']}, network {network['state']!r}")
        # the dashboard's files are package data: served from the installed wheel
        for name in ("", "app.js", "pages.js", "style.css"):
            with urllib.request.urlopen(f"http://127.0.0.1:{api}/ui/{name}", timeout=3) as r:
                body = r.read()
                assert r.status == 200 and body and "Content-Security-Policy" in r.headers, name
        print("dashboard: /ui/ served from the wheel")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(STOP_BOUND_S)
        took = time.monotonic() - started
        if code != 0:
            raise SystemExit(f"FAILED: exit code {code}\n{(home / 'node.log').read_text()}")
        print(f"SIGTERM: exited 0 after {took:.1f} s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable)  # not resolved: a venv symlink
    args = parser.parse_args()
    started = time.monotonic()
    # nothing of the checkout's environment: no PYTHONPATH, no MIRA_* locations
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("MIRA_")}
    tmp = Path(tempfile.mkdtemp(prefix="mira-wheel-"))
    try:
        bin_dir = build_and_install(os.path.abspath(args.python), tmp, env)
        home = tmp / "elsewhere"
        home.mkdir()
        smoke(bin_dir, home, env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(ROOT / "build", ignore_errors=True)  # setuptools' in-tree build dir
    print(f"wheel smoke passed in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
