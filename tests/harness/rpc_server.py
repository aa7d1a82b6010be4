"""A JSON-RPC server for the clients' keep-alive tests (oracle.http_keepalive): it can
drop a request on a kept-alive connection, stall one, answer an HTTP error or close idle
connections."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable


class RpcServer:
    """A JSON-RPC server on 127.0.0.1 speaking just enough HTTP/1.1 (keep-alive,
    Content-Length bodies) that answers eth_blockNumber, recording the connection (the
    client's address) of every request it answers or drops; with ``chain_id``, eth_chainId
    too (the transaction manager's pool asks it first).

    ``drop(n)``: whether a connection's request, after ``n`` answered on it, is dropped
    unanswered and the connection closed, as by a server closing a kept-alive connection
    just as the client reuses it; ``stall(n)``: whether it is left unanswered until the
    client gives up; ``status``: the HTTP status answered; ``idle_s``: a
    connection idle this long is closed."""

    def __init__(
        self,
        drop: Callable[[int], bool] = lambda n: False,
        stall: Callable[[int], bool] = lambda n: False,
        *,
        status: int = 200,
        idle_s: float | None = None,
        chain_id: int | None = None,
    ) -> None:
        self.drop, self.stall, self.status, self.idle_s = drop, stall, status, idle_s
        self.chain_id = chain_id
        self.seen: list[tuple[tuple[str, int], bool]] = []  # (connection, answered)
        self._writers: set[asyncio.StreamWriter] = set()
        self._serving: set[asyncio.Task[None]] = set()

    @property
    def answered(self) -> list[tuple[str, int]]:
        return [peer for peer, answered in self.seen if answered]

    @property
    def dropped(self) -> list[tuple[str, int]]:
        return [peer for peer, answered in self.seen if not answered]

    @property
    def connections(self) -> int:
        return len({peer for peer, _ in self.seen})

    @property
    def open_connections(self) -> int:
        """Connections the client holds open now."""
        return len(self._writers)

    async def wait_all_closed(self, timeout_s: float = 5.0) -> None:
        """Until the client has closed every connection (AssertionError after ``timeout_s``)."""
        for _ in range(int(timeout_s / 0.01)):
            if not self._writers:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{len(self._writers)} connection(s) still open")

    async def __aenter__(self) -> RpcServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *_: object) -> None:
        self._server.close()
        for writer in self._writers:
            writer.close()
        await asyncio.wait_for(asyncio.gather(*self._serving), 10)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self._serving.add(task)
        peer = writer.get_extra_info("peername")
        served = 0
        try:
            while True:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.idle_s)
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                assert length is not None
                request = json.loads(await reader.readexactly(int(length[1])))
                if self.drop(served) or self.stall(served):
                    self.seen.append((peer, False))
                    if self.stall(served):
                        await reader.read()  # until the client closes the connection
                    return
                served += 1
                self.seen.append((peer, True))
                result = len(self.answered)
                if self.chain_id is not None and request["method"] == "eth_chainId":
                    result = self.chain_id
                body = json.dumps(
                    {"jsonrpc": "2.0", "id": request["id"], "result": hex(result)}
                ).encode()
                writer.write(
                    f"HTTP/1.1 {self.status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass  # the client closed, or the connection idled out
        finally:
            self._writers.discard(writer)
            self._serving.discard(task)
            writer.close()
