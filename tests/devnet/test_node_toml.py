"""node_config_toml: the node.toml the devnet, the benches and the multi-process tests write
is one a node loads, with the knobs they set."""

from __future__ import annotations

from pathlib import Path

import pytest

from oracle import bundle
from oracle.config.node import load_node_config
from oracle.devnet.processes import NodeProc, node_config_toml


@pytest.mark.parametrize("retain_s", [None, 120.0])
def test_retain_s_lands_in_the_database_section(tmp_path: Path, retain_s: float | None) -> None:
    node = NodeProc(0, tmp_path, 18001, 18002, "0x" + "ab" * 20)
    (tmp_path / "feeds").mkdir()
    spec = (bundle.locate(bundle.DEMO_FEEDS) / "sp500_forecast.toml").read_text()
    (tmp_path / "feeds" / "sp500.toml").write_text(spec)
    (tmp_path / "node.toml").write_text(
        node_config_toml(
            node,
            database="node.sqlite",
            rpc_url="http://127.0.0.1:18003",
            oracle="0x" + "11" * 20,
            round_period=1.0,
            observe_timeout=0.5,
            transmit_timeout=5.0,
            rpc_timeout=2.0,
            retain_s=retain_s,
        )
    )
    config = load_node_config(tmp_path / "node.toml")
    assert config.database.retain_s == retain_s
    assert config.api.port == 18001
