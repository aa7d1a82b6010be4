"""HTTP JSON source: GET a URL, follow a field path, return one validated number.

Timeouts, retries with exponential backoff (on timeouts, connection errors and 5xx; a
4xx or a bad body is not retried), a body size limit, and a rejection reason for every
failure.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from oracle.config.feeds import HttpSourceSpec
from oracle.errors import Rejected
from oracle.http_body import read_body
from oracle.retry import Backoff, retry
from oracle.sources.validate import to_number


def follow(body: Any, path: tuple[str | int, ...]) -> Any:
    current = body
    for i, part in enumerate(path):
        if isinstance(part, int) and isinstance(current, list):
            if part >= len(current):
                raise Rejected("missing_field", f"{_where(path, i)}: index out of range")
            current = current[part]
        elif isinstance(current, dict) and str(part) in current:
            current = current[str(part)]
        else:
            raise Rejected("missing_field", f"{_where(path, i)} is missing from the response")
    return current


def _where(path: tuple[str | int, ...], i: int) -> str:
    """The path up to part ``i``, for an error (built only then: a node follows 10,000
    paths a poll)."""
    return ".".join(str(p) for p in path[: i + 1])


def _transient(exc: Exception) -> bool:
    return isinstance(exc, Rejected) and exc.reason in ("timeout", "http_5xx", "connection")


class HttpSource:
    def __init__(self, spec: HttpSourceSpec, session: aiohttp.ClientSession) -> None:
        self.spec = spec
        self.session = session
        #: What the request is, without the path read from its answer: feeds asking the
        #: same request in the same poll share one answer (oracle.node.feeds).
        self.request: tuple[str, float, int, float, int] = (
            spec.url,
            spec.timeout_s,
            spec.retries,
            spec.backoff_s,
            spec.max_body_bytes,
        )

    async def fetch(self) -> float:
        """One value, or Rejected with the reason of the last attempt. Only what may pass
        (a timeout, a 5xx, a refused connection) is retried."""
        return self.value_of(await self.fetch_body())

    async def fetch_body(self) -> Any:
        """The parsed JSON answer, or Rejected with the reason of the last attempt (only a
        timeout, a 5xx or a refused connection is retried)."""
        return await retry(
            self._once,
            backoff=Backoff(self.spec.backoff_s, 2.0),
            attempts=self.spec.retries + 1,
            retryable=_transient,
        )

    def value_of(self, data: Any) -> float:
        """The value at the spec's path in a parsed answer; Rejected if it is not one."""
        return to_number(follow(data, self.spec.path), what=".".join(map(str, self.spec.path)))

    async def _once(self) -> Any:
        spec = self.spec
        timeout = aiohttp.ClientTimeout(total=spec.timeout_s)
        try:
            async with self.session.get(spec.url, timeout=timeout) as resp:
                if resp.status >= 500:
                    raise Rejected("http_5xx", f"{spec.url} answered HTTP {resp.status}")
                if resp.status != 200:
                    raise Rejected("http_status", f"{spec.url} answered HTTP {resp.status}")
                if resp.content_length is not None and resp.content_length > spec.max_body_bytes:
                    raise Rejected(
                        "oversized",
                        f"body of {resp.content_length} bytes exceeds {spec.max_body_bytes}",
                    )
                body = await read_body(resp.content, spec.max_body_bytes)
                if len(body) > spec.max_body_bytes:
                    raise Rejected("oversized", f"body exceeds {spec.max_body_bytes} bytes")
        except TimeoutError as exc:
            raise Rejected(
                "timeout", f"{spec.url} did not answer within {spec.timeout_s} s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise Rejected("connection", f"{spec.url}: {exc}") from exc
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise Rejected("bad_json", f"{spec.url} returned invalid JSON: {exc}") from exc
        return data
