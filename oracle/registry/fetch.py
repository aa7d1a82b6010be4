"""Fetching a registered version's spec from its URI, with the node's limits.

Three schemes, nothing else (anything else is ``unknown_scheme``):

* ``file://`` — only under ``[models] spec_dir``. The path after ``file://`` may be
  absolute (``file:///specs/x.toml``) or relative to that folder (``file://x.toml``);
  ``..`` components are refused outright, and the resolved path (symlinks followed) must
  still lie under the folder, so a symlink pointing out is refused too.
* ``http://`` / ``https://`` — only with ``[models] http = true``; a total timeout, at
  most ``max_spec_bytes`` read (a larger body is refused without reading it all), at most
  3 redirects and only to http(s) (aiohttp's own redirect handling would follow any).
* ``data:`` — ``data:[<media type>];base64,<TOML>``: small specs carried on-chain.

Every failure is a :class:`SpecRejected` with its reason; nothing here raises anything else
for a bad URI or a bad answer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urljoin, urlsplit

import aiohttp

from oracle.config.node import ModelsConfig
from oracle.registry.errors import SpecRejected

MAX_REDIRECTS = 3
_CHUNK = 64 * 1024


async def fetch_spec(uri: str, policy: ModelsConfig, session: aiohttp.ClientSession) -> bytes:
    """The spec bytes behind ``uri`` (at most ``policy.max_spec_bytes``)."""
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    if scheme == "file":
        return await asyncio.to_thread(read_file_uri, uri, policy)
    if scheme == "data":
        return read_data_uri(uri, policy.max_spec_bytes)
    if scheme in ("http", "https"):
        if not policy.http:
            raise SpecRejected("http_disabled", f"{uri}: this node fetches no http(s) specs")
        return await _read_http(uri, policy, session)
    raise SpecRejected(
        "unknown_scheme", f"{uri[:200]!r}: expected a file://, http(s):// or data: URI"
    )


def read_file_uri(uri: str, policy: ModelsConfig) -> bytes:
    if not uri.lower().startswith("file://"):
        raise SpecRejected("unknown_scheme", f"{uri[:200]!r}: expected file://<path>")
    root = policy.spec_dir
    if root is None:
        raise SpecRejected("path_escape", f"{uri}: this node names no [models] spec_dir")
    # what follows file:// is the path, percent-decoded: file:///abs/x.toml or
    # file://x.toml (relative to spec_dir); there is no host part
    raw = unquote(uri[7:])
    if "\x00" in raw or ".." in PurePosixPath(raw).parts:
        raise SpecRejected("path_escape", f"{uri}: '..' is not accepted in a spec path")
    root = root.resolve()
    candidate = Path(raw) if raw.startswith("/") else root / raw
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise SpecRejected("unreachable", f"{uri}: no such file ({exc})") from exc
    if not resolved.is_relative_to(root):
        raise SpecRejected("path_escape", f"{uri}: resolves to {resolved}, outside {root}")
    if not resolved.is_file():
        raise SpecRejected("unreachable", f"{uri}: not a regular file")
    limit = policy.max_spec_bytes
    try:
        with resolved.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise SpecRejected("unreachable", f"{uri}: cannot read: {exc.strerror}") from exc
    if len(data) > limit:
        raise SpecRejected("oversized", f"{uri}: more than {limit} bytes")
    return data


def data_uri(spec: bytes) -> str:
    """The ``data:`` URI that carries ``spec`` itself (what :func:`read_data_uri` reads)."""
    return "data:application/toml;base64," + base64.b64encode(spec).decode()


def read_data_uri(uri: str, limit: int) -> bytes:
    head, sep, payload = uri[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        raise SpecRejected("unknown_scheme", "data: URI: expected data:[<type>];base64,<TOML>")
    # base64 is 4 characters per 3 bytes: refuse before decoding anything too large
    if len(payload) > (limit + 2) // 3 * 4 + 4:
        raise SpecRejected("oversized", f"data: URI: more than {limit} bytes")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SpecRejected("invalid_spec", f"data: URI: invalid base64 ({exc})") from exc
    if len(data) > limit:
        raise SpecRejected("oversized", f"data: URI: {len(data)} bytes, more than {limit}")
    return data


async def _read_http(uri: str, policy: ModelsConfig, session: aiohttp.ClientSession) -> bytes:
    limit = policy.max_spec_bytes
    timeout = aiohttp.ClientTimeout(total=policy.http_timeout_s)
    url = uri
    try:
        for _ in range(MAX_REDIRECTS + 1):
            async with session.get(url, allow_redirects=False, timeout=timeout) as resp:
                if resp.status in (301, 302, 303, 307, 308):
                    target = urljoin(url, resp.headers.get("Location", ""))
                    if urlsplit(target).scheme not in ("http", "https"):
                        raise SpecRejected(
                            "redirect", f"{uri}: redirected to {target[:200]!r}, not http(s)"
                        )
                    url = target
                    continue
                if resp.status != 200:
                    raise SpecRejected("unreachable", f"{uri}: HTTP {resp.status}")
                if resp.content_length is not None and resp.content_length > limit:
                    raise SpecRejected(
                        "oversized", f"{uri}: {resp.content_length} bytes, more than {limit}"
                    )
                body = bytearray()
                while chunk := await resp.content.read(_CHUNK):
                    body += chunk
                    if len(body) > limit:
                        raise SpecRejected("oversized", f"{uri}: more than {limit} bytes")
                return bytes(body)
        raise SpecRejected("redirect", f"{uri}: more than {MAX_REDIRECTS} redirects")
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise SpecRejected("unreachable", f"{uri}: {type(exc).__name__}: {exc}") from exc
