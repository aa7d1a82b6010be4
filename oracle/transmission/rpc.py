"""A pool of JSON-RPC endpoints for one chain, with health checks and failover.

Every answer is checked before anyone acts on it. An endpoint that cannot be reached,
answers something that is not JSON-RPC, serves another chain, lags far behind the
others, or returns data that cannot be right (a receipt for another transaction, an
absurd fee) is demoted: taken out of rotation for ``demote_seconds`` and re-admitted only
after a clean health check. A well-formed JSON-RPC error (a revert, "nonce too low") is
the node's answer, not a fault of the endpoint, and is raised to the caller as is.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import structlog

from oracle.http_body import read_body
from oracle.http_keepalive import Attempt, fresh_session, resend_if_found_closed, reuse_trace
from oracle.transmission.errors import BadRpcResponse, JsonRpcError, RpcUnavailable
from oracle.transmission.metrics import TxMetrics

T = TypeVar("T")
log = structlog.get_logger("mira.transmission.rpc")

_MAX_BODY = 8 * 1024 * 1024
_HEADERS = {"Content-Type": "application/json"}


class Invalid(Exception):
    """Raised by a validator: the answer is wrong in a way that blames the endpoint."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def redact_url(url: str) -> str:
    """``url`` without credentials, path or query (RPC URLs often carry API keys)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, "", "", ""))


@dataclass
class Endpoint:
    url: str
    name: str
    demoted_until: float = 0.0
    reason: str | None = None
    detail: str | None = None
    head: int | None = None
    checked: bool = False

    @property
    def demoted(self) -> bool:
        return self.reason is not None


def parse_quantity(value: Any, what: str) -> int:
    """A JSON-RPC QUANTITY ("0x…" hex, no leading zeros required) as an int."""
    if not isinstance(value, str) or not value.startswith("0x") or len(value) > 66:
        raise Invalid("malformed-result", f"{what} is not a hex quantity: {value!r:.80}")
    try:
        return int(value, 16)
    except ValueError:
        raise Invalid("malformed-result", f"{what} is not a hex quantity: {value!r:.80}") from None


def parse_data(value: Any, what: str, length: int | None = None) -> bytes:
    """JSON-RPC DATA ("0x…" hex bytes), optionally of an exact length."""
    if not isinstance(value, str) or not value.startswith("0x") or len(value) % 2:
        raise Invalid("malformed-result", f"{what} is not hex data: {value!r:.80}")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise Invalid("malformed-result", f"{what} is not hex data: {value!r:.80}") from None
    if length is not None and len(raw) != length:
        raise Invalid("malformed-result", f"{what} has {len(raw)} bytes, expected {length}")
    return raw


class RpcPool:
    """Endpoints in order of preference; requests go to the first one in rotation."""

    def __init__(
        self,
        urls: Sequence[str],
        chain_id: int,
        metrics: TxMetrics,
        *,
        timeout: float = 5.0,
        max_lag_blocks: int = 20,
        demote_seconds: float = 30.0,
    ) -> None:
        if not urls:
            raise ValueError("an RPC pool needs at least one URL")
        for url in urls:
            if urlsplit(url).scheme not in ("http", "https"):
                raise ValueError(f"RPC URL {redact_url(url)} must be http or https")
        self.endpoints = [Endpoint(u, redact_url(u)) for u in urls]
        self.chain_id = chain_id
        self.metrics = metrics
        self.timeout = timeout
        self.max_lag_blocks = max_lag_blocks
        self.demote_seconds = demote_seconds
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)
        self._preferred: Endpoint | None = None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers=_HEADERS,
                # kept-alive connections: a request the server's idle close raced is sent
                # once more instead of demoting a healthy endpoint (oracle.http_keepalive)
                trace_configs=[reuse_trace()],
            )
        await self.check_health()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- health ---------------------------------------------------------------------------

    async def check_health(self) -> None:
        """Probe every endpoint (chain id, head); demote the bad and the lagging, re-admit
        demoted ones whose time is up and that now answer well."""
        now = time.monotonic()
        due = [e for e in self.endpoints if not e.demoted or now >= e.demoted_until]
        results = await asyncio.gather(*(self._probe(e) for e in due))
        heads = [h for h in results if h is not None]
        reference = _reference_head(heads)
        for endpoint, head in zip(due, results, strict=True):
            if head is None:
                continue
            if reference is not None and reference - head > self.max_lag_blocks:
                self.demote(
                    endpoint,
                    "lagging",
                    f"head {head} is {reference - head} blocks behind the pool's {reference}",
                )
            elif reference is not None and head - reference > self.max_lag_blocks:
                self.demote(
                    endpoint,
                    "ahead",
                    f"head {head} is {head - reference} blocks ahead of the pool's {reference}",
                )
            elif endpoint.demoted:
                log.info("rpc_readmitted", rpc=endpoint.name, head=head)
                endpoint.reason = endpoint.detail = None
        self.metrics.rpc_healthy.set(sum(not e.demoted for e in self.endpoints))

    async def _probe(self, endpoint: Endpoint) -> int | None:
        try:
            chain = parse_quantity(await self._post(endpoint, "eth_chainId", []), "eth_chainId")
            if chain != self.chain_id:
                raise Invalid("wrong-chain-id", f"serves chain {chain}, expected {self.chain_id}")
            head = parse_quantity(await self._post(endpoint, "eth_blockNumber", []), "head")
        except Invalid as exc:
            self.demote(endpoint, exc.reason, exc.detail)
            return None
        except BadRpcResponse as exc:
            self.demote(endpoint, exc.reason, exc.detail)
            return None
        except JsonRpcError as exc:
            self.demote(endpoint, "rpc-error", str(exc))
            return None
        endpoint.head = head
        endpoint.checked = True
        return head

    def demote(self, endpoint: Endpoint, reason: str, detail: str) -> None:
        first = endpoint.reason != reason
        endpoint.reason, endpoint.detail = reason, detail
        endpoint.demoted_until = time.monotonic() + self.demote_seconds
        if first:
            log.warning("rpc_demoted", rpc=endpoint.name, reason=reason, detail=detail)
            self.metrics.demotion(reason).inc()
        self.metrics.rpc_healthy.set(sum(not e.demoted for e in self.endpoints))

    def health(self) -> dict[str, Any]:
        return {
            e.name: {"ok": True, "head": e.head}
            if not e.demoted
            else {"ok": False, "reason": e.reason, "detail": e.detail}
            for e in self.endpoints
        }

    @property
    def live(self) -> list[Endpoint]:
        return [e for e in self.endpoints if not e.demoted]

    # -- requests -------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        params: list[Any],
        validate: Callable[[Any], T],
    ) -> T:
        """Send to the preferred live endpoint; on a transport fault or a bad answer,
        demote it and fail over to the next. JSON-RPC errors are raised unchanged."""
        tried: list[str] = []
        for endpoint in self.live:
            tried.append(endpoint.name)
            try:
                result = validate(await self._post(endpoint, method, params))
            except Invalid as exc:
                self.demote(endpoint, exc.reason, f"{method}: {exc.detail}")
                continue
            except BadRpcResponse as exc:
                self.demote(endpoint, exc.reason, f"{method}: {exc.detail}")
                continue
            if self._preferred is not endpoint:
                if self._preferred is not None:
                    self.metrics.failovers.inc()
                    log.warning("rpc_failover", to=endpoint.name, method=method)
                self._preferred = endpoint
            return result
        raise RpcUnavailable(
            f"no RPC endpoint for chain {self.chain_id} answered {method} "
            f"(tried {', '.join(tried) or 'none: all demoted'})"
        )

    async def request_each(
        self, method: str, params: list[Any], validate: Callable[[Any], T]
    ) -> list[T]:
        """Ask every live endpoint; return the valid answers (bad ones demote)."""

        async def one(endpoint: Endpoint) -> list[T]:
            try:
                return [validate(await self._post(endpoint, method, params))]
            except (Invalid, BadRpcResponse) as exc:
                reason = exc.reason
                self.demote(endpoint, reason, f"{method}: {exc.detail}")
            except JsonRpcError:
                pass
            return []

        answers: list[list[T]] = await asyncio.gather(*(one(e) for e in self.live))
        return [a for batch in answers for a in batch]

    async def _post(self, endpoint: Endpoint, method: str, params: list[Any]) -> Any:
        """One JSON-RPC call. Transport faults and malformed answers raise BadRpcResponse."""
        if self._session is None:
            raise RpcUnavailable("the RPC pool is not started")
        request_id = next(self._ids)
        payload = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        data = json.dumps(payload)
        session = self._session
        timeout = aiohttp.ClientTimeout(total=self.timeout)

        async def send(
            on: aiohttp.ClientSession, attempt: Attempt | None, within: aiohttp.ClientTimeout
        ) -> tuple[int, bytes]:
            async with on.post(
                endpoint.url, data=data, trace_request_ctx=attempt, timeout=within
            ) as resp:
                return resp.status, await read_body(resp.content, _MAX_BODY)

        async def resend(left: aiohttp.ClientTimeout) -> tuple[int, bytes]:
            async with fresh_session(headers=_HEADERS) as fresh:
                return await send(fresh, None, left)

        try:
            status, body = await resend_if_found_closed(
                lambda attempt: send(session, attempt, timeout), resend, timeout
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            detail = f"{method}: {type(exc).__name__}: {exc}"
            raise BadRpcResponse(endpoint.name, "unreachable", detail) from None
        if len(body) > _MAX_BODY:
            raise BadRpcResponse(endpoint.name, "oversized", f"{method} answer over {_MAX_BODY} B")
        try:
            answer = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRpcResponse(
                endpoint.name, "malformed-json", f"{method} (HTTP {status}): {exc}"
            ) from None
        if not isinstance(answer, dict) or answer.get("id") != request_id:
            raise BadRpcResponse(
                endpoint.name, "malformed-json", f"{method}: not a JSON-RPC answer to our request"
            )
        if "error" in answer:
            error = answer["error"]
            if (
                not isinstance(error, dict)
                or not isinstance(error.get("code"), int)
                or not isinstance(error.get("message"), str)
            ):
                raise BadRpcResponse(endpoint.name, "malformed-json", f"{method}: bad error object")
            raise JsonRpcError(
                endpoint.name, method, error["code"], error["message"], error.get("data")
            )
        if "result" not in answer:
            raise BadRpcResponse(endpoint.name, "malformed-json", f"{method}: no result")
        if status != 200:
            raise BadRpcResponse(endpoint.name, "http-status", f"{method}: HTTP {status}")
        return answer["result"]


def _reference_head(heads: list[int]) -> int | None:
    """The head the pool measures lag against.

    With three or more answers, the median: one endpoint claiming a head far in the future
    cannot make the honest majority look "lagging" (it is demoted as "ahead" instead). With
    one or two there is no majority to trust, so the highest head is the reference.
    """
    if not heads:
        return None
    if len(heads) < 3:
        return max(heads)
    return int(statistics.median_high(heads))
