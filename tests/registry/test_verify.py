"""Each check a registered version's spec must pass, and the reason a hostile one is
refused with (oracle.registry.fetch, oracle.registry.verify)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from oracle.config.node import ModelsConfig, default_models
from oracle.registry.errors import SpecRejected
from oracle.registry.fetch import fetch_spec
from oracle.registry.verify import verify_spec
from tests.harness.http_server import local_server
from tests.registry.specs import FEED, data_uri, digest, feed_ids, http_spec_text, spec_text


def _verify(text: str, policy: ModelsConfig | None = None, **kw: Any) -> Any:
    args: dict[str, object] = {
        "uri": "data:",
        "feed_ids": feed_ids(),
        "policy": policy or default_models(),
    }
    args.update(kw)
    if "spec_hash" not in args:
        args["spec_hash"] = digest(text)
    return verify_spec(text.encode(), **args)  # type: ignore[arg-type]


def _refused(reason: str, text: str, **kw: Any) -> SpecRejected:
    with pytest.raises(SpecRejected) as info:
        _verify(text, **kw)
    assert info.value.reason == reason, info.value
    return info.value


def test_a_good_spec_passes() -> None:
    spec = _verify(spec_text())
    assert spec.id == FEED


def test_unknown_class_is_refused() -> None:
    err = _refused("unknown_class", spec_text(scaler="preprocessing.EvilScaler"))
    assert "allowlisted class" in err.detail


def test_a_dotted_import_path_is_refused() -> None:
    err = _refused("import_path", spec_text(scaler="os.system.path"))
    assert "import paths are not accepted" in err.detail


def test_a_parameter_out_of_bounds_is_refused() -> None:
    err = _refused("invalid_parameter", spec_text(intercept_lr=1e9))
    assert "intercept_lr" in err.detail


def test_a_model_learning_from_http_readings_is_refused() -> None:
    # accepted, it would run on every member and never be reported: each member polls at its
    # own moment, so the models' states and commitments differ and followers refuse
    err = _refused("nondeterministic_source", http_spec_text())
    assert "HTTP readings differ between members" in err.detail


def test_a_hash_mismatch_is_refused() -> None:
    text = spec_text()
    err = _refused("hash_mismatch", text, spec_hash=digest(spec_text(intercept_lr=0.06)))
    assert "0x" + digest(text).hex() in err.detail


def test_a_comment_or_reformatting_keeps_the_hash() -> None:
    """The digest is of the parsed spec: what the author hashed locally is what nodes get."""
    text = spec_text()
    _verify("# a comment\n" + text.replace(" = ", "="), spec_hash=digest(text))


def test_declared_feeds_must_be_the_outputs() -> None:
    _refused("feeds_mismatch", spec_text(), feed_ids=feed_ids("REG/other"))
    _refused("feeds_mismatch", spec_text(), feed_ids=feed_ids() + feed_ids("REG/other"))


def test_a_newer_node_version_is_unsupported() -> None:
    text = spec_text(extra='min_node_version = "99.0"\n')
    err = _refused("unsupported", text)
    assert err.status == "unsupported"
    assert _verify(text, node_version=(99, 0, 1))


def test_local_policy_classes() -> None:
    policy = replace(default_models(), classes=("linear_model.LinearRegression",))
    err = _refused("local_policy", spec_text(), policy=policy)
    assert "preprocessing.StandardScaler" in err.detail


def test_a_csv_dataset_is_refused_without_spec_dir() -> None:
    text = spec_text().replace('dataset = "river:SP500Stocks"', 'dataset = "/etc/passwd.csv"')
    _refused("invalid_spec", text)


def test_not_toml_is_refused() -> None:
    _refused("invalid_spec", "id = [unclosed", spec_hash=b"\x00" * 32)


# -- URIs --------------------------------------------------------------------------------


def _fetch(uri: str, policy: ModelsConfig | None = None) -> bytes:
    async def run() -> bytes:
        async with aiohttp.ClientSession() as session:
            return await fetch_spec(uri, policy or default_models(), session)

    return asyncio.run(run())


def _fetch_refused(reason: str, uri: str, policy: ModelsConfig | None = None) -> SpecRejected:
    with pytest.raises(SpecRejected) as info:
        _fetch(uri, policy)
    assert info.value.reason == reason, info.value
    return info.value


def test_data_uri() -> None:
    text = spec_text()
    assert _fetch(data_uri(text)) == text.encode()


def test_data_uri_oversize_is_refused_before_decoding() -> None:
    big = data_uri("#" * (default_models().max_spec_bytes + 1))
    _fetch_refused("oversized", big)
    _fetch_refused("unknown_scheme", "data:text/plain,id=1")  # not base64
    _fetch_refused("invalid_spec", "data:;base64,@@@@")


def test_unknown_schemes_are_refused() -> None:
    for uri in ("ftp://example.com/x.toml", "ipfs://Qm", "gopher://x", "", "/etc/passwd"):
        _fetch_refused("unknown_scheme", uri)


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    d = tmp_path / "specs"
    d.mkdir()
    (d / "good.toml").write_text(spec_text())
    (tmp_path / "secret.toml").write_text("secret = 1\n")
    os.symlink(tmp_path / "secret.toml", d / "link.toml")
    return d


def test_file_uri_under_spec_dir(spec_dir: Path) -> None:
    policy = replace(default_models(), spec_dir=spec_dir)
    assert _fetch("file://good.toml", policy) == spec_text().encode()
    assert _fetch(f"file://{spec_dir / 'good.toml'}", policy) == spec_text().encode()
    _fetch_refused("unreachable", "file://missing.toml", policy)


def test_file_uri_escapes_are_refused(spec_dir: Path) -> None:
    policy = replace(default_models(), spec_dir=spec_dir)
    _fetch_refused("path_escape", "file://../secret.toml", policy)
    _fetch_refused("path_escape", "file://sub/../../secret.toml", policy)
    _fetch_refused("path_escape", f"file://{spec_dir.parent / 'secret.toml'}", policy)
    _fetch_refused("path_escape", "file:///etc/passwd", policy)
    _fetch_refused("path_escape", "file://link.toml", policy)  # a symlink pointing out
    _fetch_refused("path_escape", "file://%2E%2E/secret.toml", policy)  # quoted ..
    _fetch_refused("unreachable", "file://evil.example.com/x.toml", policy)  # no hosts
    _fetch_refused("path_escape", "file://good.toml")  # no spec_dir: no file:// at all


class SpecServer:
    """A local aiohttp server: /good, a 10 MB /huge (streamed, no length), /redirect to
    a file:// URL, /missing (404), /slow (never answers in time)."""

    def __init__(self) -> None:
        self.huge_sent = 0

    async def good(self, _: web.Request) -> web.Response:
        return web.Response(text=spec_text())

    async def huge(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        chunk = b"#" * 65536
        try:
            for _ in range(160):  # 10 MB
                await resp.write(chunk)
                self.huge_sent += len(chunk)
        except (ConnectionError, RuntimeError):
            pass
        return resp

    async def redirect(self, _: web.Request) -> web.Response:
        raise web.HTTPFound("file:///etc/passwd")

    async def slow(self, _: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="late")


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, SpecServer]]:
    spec_server = SpecServer()
    routes = {
        "/good": spec_server.good,
        "/huge": spec_server.huge,
        "/redirect": spec_server.redirect,
        "/slow": spec_server.slow,
    }
    async with local_server(routes) as base:
        yield base, spec_server


async def _afetch(uri: str, policy: ModelsConfig | None = None) -> bytes:
    async with aiohttp.ClientSession() as session:
        return await fetch_spec(uri, policy or default_models(), session)


async def _arefused(reason: str, uri: str, policy: ModelsConfig | None = None) -> None:
    with pytest.raises(SpecRejected) as info:
        await _afetch(uri, policy)
    assert info.value.reason == reason, info.value


async def test_http_uri(server: tuple[str, SpecServer]) -> None:
    url, _ = server
    assert await _afetch(f"{url}/good") == spec_text().encode()


async def test_http_10mb_spec_is_refused_reading_a_bounded_prefix(
    server: tuple[str, SpecServer],
) -> None:
    url, spec_server = server
    await _arefused("oversized", f"{url}/huge")
    # the node stopped reading after the cap: far less than the 10 MB was ever sent
    assert spec_server.huge_sent < 5 * 1024 * 1024


async def test_http_redirect_to_another_scheme_is_refused(
    server: tuple[str, SpecServer],
) -> None:
    url, _ = server
    await _arefused("redirect", f"{url}/redirect")


async def test_http_unreachable(server: tuple[str, SpecServer]) -> None:
    url, _ = server
    await _arefused("unreachable", f"{url}/missing")
    await _arefused("unreachable", "http://127.0.0.1:9/spec.toml")  # connection refused
    policy = replace(default_models(), http_timeout_s=0.3)
    await _arefused("unreachable", f"{url}/slow", policy)


async def test_http_disabled(server: tuple[str, SpecServer]) -> None:
    url, _ = server
    await _arefused("http_disabled", f"{url}/good", replace(default_models(), http=False))
