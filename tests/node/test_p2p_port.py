"""A node whose p2p port is taken stops at start, saying so.

It used to start, serve its API and retry the bind forever in the background: alive and
deaf. Its committee's DKG then waited for its messages — with t + f the whole committee
(n = 4), every member did — and the owner's tooling saw only "0 of 4 members proposed"."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from oracle import bundle
from oracle.devnet.processes import free_port, node_config_toml, provision_committee
from oracle.storage import make_engine, upgrade

MIRA = str(Path(sys.executable).parent / "mira")


def test_a_node_whose_p2p_port_is_taken_exits_at_start_naming_the_port(tmp_path: Path) -> None:
    p2p = free_port()
    node = provision_committee(
        [tmp_path / "node0"], ["0x" + os.urandom(32).hex()], [(free_port(), p2p)]
    ).nodes[0]
    (node.dir / "feeds").mkdir()
    spec = (bundle.locate(bundle.DEMO_FEEDS) / "sp500_forecast.toml").read_text()
    (node.dir / "feeds" / "sp500.toml").write_text(spec)
    upgrade(make_engine(f"sqlite:///{node.dir / 'node.sqlite'}"))
    (node.dir / "node.toml").write_text(
        node_config_toml(
            node,
            database="node.sqlite",
            rpc_url=f"http://127.0.0.1:{free_port()}",  # no chain: the bind comes first
            oracle="0x" + "11" * 20,
            round_period=1.0,
            observe_timeout=0.5,
            transmit_timeout=5.0,
            rpc_timeout=2.0,
        )
    )
    with socket.create_server(("127.0.0.1", p2p)):  # someone else listens there
        done = subprocess.run(
            [MIRA, "node", "run", "--config", str(node.dir / "node.toml")],
            capture_output=True, text=True, timeout=60, cwd=node.dir,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        f"Error: cannot listen for p2p on 127.0.0.1:{p2p} ([network] listen_host, listen_port): "
        "Address already in use"
    ), done.stderr[-2000:]
