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


def test_report_stream_bounds_are_read_and_checked(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    config = load_node_config(make_node(tmp_path / "a"))
    assert (config.api.stream_max_clients, config.api.stream_buffer) == (32, 64)
    path = make_node(tmp_path, "\n[api]\nstream_max_clients = 0\nstream_buffer = 8\n")
    with pytest.raises(ConfigError) as info:
        load_node_config(path)
    assert "api.stream_max_clients = 0" in str(info.value)


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


NETWORK = """
[network]
listen_port = 7701
rpc_url = "http://127.0.0.1:8545"
oracle = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
"""
OPERATOR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def test_peer_urls_override_the_registered_ones(tmp_path: Path) -> None:
    extra = NETWORK + f'\n[network.peer_urls]\n"{OPERATOR}" = "http://10.0.0.2:7701/"\n'
    network = load_node_config(make_node(tmp_path, extra)).network
    assert network is not None
    assert network.peer_url(OPERATOR.lower(), "http://node1:7701") == "http://10.0.0.2:7701"
    other = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
    assert network.peer_url(other, "http://node2:7701/") == "http://node2:7701"
    assert load_node_config(make_node(tmp_path, NETWORK)).network.peer_urls == {}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ('"0x1234" = "http://x:1"', "network.peer_urls.0x1234 = 'http://x:1': expected a member's"),
        (f'"{OPERATOR}" = "ftp://x"', "expected an http(s) p2p URL"),
        (f'"{OPERATOR}" = 7701', "expected an http(s) p2p URL"),
        (f'"{OPERATOR}" = "http://{"x" * 2000}"', "at most 2000 characters"),
    ],
)
def test_bad_peer_urls_are_named(tmp_path: Path, entry: str, expected: str) -> None:
    path = make_node(tmp_path, NETWORK + f"\n[network.peer_urls]\n{entry}\n")
    with pytest.raises(ConfigError) as info:
        load_node_config(path)
    assert expected in str(info.value)


@pytest.mark.parametrize("value", ["direct", "manager"])
def test_the_removed_transmitter_key_is_named_with_what_to_do(tmp_path: Path, value: str) -> None:
    """Reports always go through the transaction manager: a node.toml that still chooses
    a transmitter (even the manager) is refused with the key and the fix, not started
    on a path the operator did not ask for."""
    path = make_node(tmp_path, NETWORK + f'transmitter = "{value}"\n')
    with pytest.raises(ConfigError) as info:
        load_node_config(path)
    assert (
        f"network.transmitter = '{value}': no longer supported: reports "
        "always go through the transaction manager; delete the line"
    ) in str(info.value)


def test_models_section(tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir()
    registry = "0x" + "ab" * 20
    path = make_node(
        tmp_path,
        f'\n[models]\nregistry = "{registry}"\nmax_models = 2\nspec_dir = "specs"\n'
        'classes = ["linear_model.LinearRegression"]\nhttp = false\nswitch_after_s = 5\n',
    )
    models = load_node_config(path).models
    assert models.registry is not None and models.registry.lower() == registry
    assert models.spec_dir == (tmp_path / "specs").resolve()
    assert (models.max_models, models.classes, models.http) == (
        2,
        ("linear_model.LinearRegression",),
        False,
    )
    assert models.switch_after_s == 5.0
    (tmp_path / "plain").mkdir()
    assert load_node_config(make_node(tmp_path / "plain")).models.registry is None


def test_models_section_problems_are_named(tmp_path: Path) -> None:
    path = make_node(
        tmp_path,
        '\n[models]\nregistry = "0x12"\nclasses = ["os.system"]\nspec_dir = "nowhere"\n'
        "max_spec_bytes = 999999999\n",
    )
    with pytest.raises(ConfigError) as info:
        load_node_config(path)
    text = str(info.value)
    for key in ("models.registry", "models.classes", "models.spec_dir", "models.max_spec_bytes"):
        assert key in text, text


def test_pull_verifier_and_retention(tmp_path: Path) -> None:
    network = load_node_config(make_node(tmp_path, NETWORK)).network
    assert network is not None and network.pull_verifier is None
    assert network.pull_retention == 64
    extra = NETWORK + f'pull_verifier = "{OPERATOR}"\npull_retention = 8\n'
    network = load_node_config(make_node(tmp_path, extra)).network
    assert network is not None
    assert (network.pull_verifier, network.pull_retention) == (OPERATOR, 8)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('pull_verifier = "0x1234"', "expected a 0x-prefixed 20-byte contract address"),
        ('pull_verifier = "5FbDB2315678afecb367f032d93F642f64180aa3"', "20-byte contract address"),
        ("pull_retention = 0", "pull_retention"),
        ("pull_retention = 100000", "pull_retention"),
    ],
)
def test_bad_pull_settings_are_named(tmp_path: Path, line: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_node_config(make_node(tmp_path, NETWORK + line + "\n"))
    assert expected in str(info.value)


def test_retain_s_is_off_unless_set(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    config = load_node_config(make_node(tmp_path / "a"))
    assert config.database.retain_s is None  # no deletion a node did not ask for
    assert config.scheduler.prune_every_s == 60.0
    extra = "retain_s = 86400\n\n[scheduler]\nprune_every_s = 30\n"
    config = load_node_config(make_node(tmp_path, extra))
    assert (config.database.retain_s, config.scheduler.prune_every_s) == (86_400.0, 30.0)


_RETAIN = (
    "expected the seconds of rows to keep, from 60 (a minute) to 315360000 (ten years); "
    "leave it out to keep every row"
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("-3600", f"database.retain_s = -3600.0: {_RETAIN}"),
        ("0", f"database.retain_s = 0.0: {_RETAIN}"),
        ("59.5", f"database.retain_s = 59.5: {_RETAIN}"),
        ("1e12", f"database.retain_s = 1000000000000.0: {_RETAIN}"),
        ('"1d"', "database.retain_s = '1d': expected a number, got string"),
        ("true", "database.retain_s = True: expected a number, got boolean"),
        ("inf", "database.retain_s = inf: expected a finite number"),
        ("nan", "database.retain_s = nan: expected a finite number"),
    ],
)
def test_bad_retain_s_is_named_once(tmp_path: Path, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_node_config(make_node(tmp_path, f"retain_s = {value}\n"))
    assert str(info.value) == f"invalid configuration: {tmp_path / 'node.toml'}: {expected}"


@pytest.mark.parametrize("value", ["0", "0.5", "100000", '"60"'])
def test_bad_prune_every_s_is_named(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"scheduler\.prune_every_s = "):
        load_node_config(make_node(tmp_path, f"\n[scheduler]\nprune_every_s = {value}\n"))
