"""Reading an HTTP body up to a size limit, whole.

``StreamReader.read(n)`` returns what is buffered, at most ``n`` bytes: for a body larger
than one TCP read (a 64 KiB p2p message, a 250 KB price list) it returns a prefix, and the
caller saw a truncated body. :func:`read_body` reads until the end of the body or until it
holds more than ``limit`` bytes, so memory stays bounded and "too large" stays detectable.
"""

from __future__ import annotations

from aiohttp import StreamReader


async def read_body(stream: StreamReader, limit: int) -> bytes:
    """The whole body if it is at most ``limit`` bytes; else its first ``limit + 1`` bytes
    (the caller refuses it as oversized)."""
    body = bytearray()
    while len(body) <= limit:
        chunk = await stream.read(limit + 1 - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)
