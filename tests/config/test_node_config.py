from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from oracle.config import ConfigError, load_node, load_node_config

REPO = Path(__file__).resolve().parents[2]


def make_node(
    tmp_path: Path, extra: str = "", feeds: tuple[str, ...] = ("sp500_forecast",)
) -> Path:
    feeds_dir = tmp_path / "feeds"
    feeds_dir.mkdir(exist_ok=True)
    for stem in feeds:
        shutil.copy(REPO / "feeds" / f"{stem}.toml", feeds_dir / f"{stem}.toml")
    path = tmp_path / "node.toml"
    path.write_text(f'[node]\nname = "n1"\n\n[database]\nurl = "sqlite:///db.sqlite"\n{extra}')
    return path


def test_defaults_and_relative_sqlite_path(tmp_path: Path) -> None:
    config = load_node_config(make_node(tmp_path))
    assert config.name == "n1"
    assert config.database.url == f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert config.api.port == 8080
    assert [p.name for p in config.feed_files] == ["sp500_forecast.toml"]


def test_unknown_section_key_is_named(tmp_path: Path) -> None:
    path = make_node(tmp_path, "\n[api]\nprot = 1\n")
    with pytest.raises(ConfigError) as info:
        load_node_config(path)
    assert "api.prot = 1: unknown key (did you mean 'port'?)" in str(info.value)


def test_missing_feed_is_named_with_what_exists(tmp_path: Path) -> None:
    path = make_node(tmp_path)
    path.write_text(path.read_text().replace('name = "n1"', 'name = "n1"\nfeeds = ["nope"]'))
    with pytest.raises(ConfigError, match="available: sp500_forecast"):
        load_node_config(path)


def test_one_bad_feed_stops_the_whole_node(tmp_path: Path) -> None:
    path = make_node(tmp_path, feeds=("sp500_forecast", "waterflow_anomaly"))
    bad = tmp_path / "feeds" / "waterflow_anomaly.toml"
    bad.write_text(bad.read_text().replace("decimals = 6", "decimals = 60"))
    with pytest.raises(ConfigError) as info:
        load_node(path)
    assert str(bad) in str(info.value) and "decimals = 60" in str(info.value)


def test_bad_database_url(tmp_path: Path) -> None:
    path = make_node(tmp_path)
    path.write_text(path.read_text().replace("sqlite:///db.sqlite", "mysql://x/y"))
    with pytest.raises(ConfigError, match="expected a sqlite or postgresql URL"):
        load_node_config(path)
