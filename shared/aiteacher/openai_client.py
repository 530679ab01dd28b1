"""The one way an `openai.OpenAI` client is built (embeddings and the LLM provider share it)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

#: Sent as the bearer token to an OpenAI-compatible server that needs none (the client insists on one).
NO_KEY = "unused"


def build_client(*, api_key: str, base_url: str, timeout: float, max_retries: int) -> Any:
    """An explicit timeout and retry budget (the SDK retries 429 and 5xx with backoff)."""
    import openai

    return openai.OpenAI(api_key=api_key or NO_KEY, base_url=base_url or None, timeout=timeout, max_retries=max_retries)


def build_async_client(*, api_key: str, base_url: str, timeout: float, max_retries: int) -> Any:
    """The asyncio twin of `build_client` (same timeout and retries); one per event loop."""
    return _async_client_class()(
        api_key=api_key or NO_KEY,
        base_url=base_url or None,
        timeout=timeout,
        max_retries=max_retries,
        http_client=_async_http_client(),
    )


@lru_cache(maxsize=1)
def _async_client_class() -> type[Any]:
    import openai

    class AsyncClient(openai.AsyncOpenAI):
        """The SDK's backoff between retries waits off the replica's Python slot (`aiteacher.scheduling`)."""

        async def _sleep_for_retry(self, *args: Any, **kwargs: Any) -> None:
            from aiteacher.scheduling import off_cpu

            async with off_cpu():
                await super()._sleep_for_retry(*args, **kwargs)

    return AsyncClient


def endpoint_label(base_url: str) -> str:
    """Host of the server, for error messages (never the key or the full URL)."""
    return urlsplit(base_url).netloc if base_url else "api.openai.com"


class _StackPool:
    """An httpcore connection pool that finds a connection in O(1): idle HTTP/1.1 connections kept per origin
    on a stack, the most recent reused first.

    httpcore's own pool re-examines every connection (and probes every idle socket) on each request and each
    response close. With a slow model, a replica holds one connection per turn in flight, so at a few hundred
    turns that scan was the largest CPU cost of a turn. Here a request probes only the connection it takes,
    and each response close probes the oldest idle one (an expired connection is closed then). The wire work
    (HTTP/1.1, TLS, timeouts) is httpcore's `AsyncHTTPConnection`, as before."""

    def __init__(self, *, ssl_context: Any, max_connections: int, max_keepalive: int, keepalive_expiry: float) -> None:
        import asyncio
        from collections import deque

        self._ssl_context = ssl_context
        self._max_keepalive = max_keepalive
        self._keepalive_expiry = keepalive_expiry
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[Any, deque[Any]] = {}
        self._deque = deque

    def _take(self, origin: Any) -> Any:
        import httpcore2

        idle = self._idle.get((origin.scheme, origin.host, origin.port))
        while idle:
            connection = idle.pop()
            if connection.is_idle() and not connection.has_expired():
                return connection
            self._discard(connection)
        return httpcore2.AsyncHTTPConnection(
            origin=origin,
            ssl_context=self._ssl_context,
            keepalive_expiry=self._keepalive_expiry,
            network_backend=_asyncio_backend(),
        )

    def _discard(self, connection: Any) -> None:
        import asyncio

        task = asyncio.ensure_future(connection.aclose())
        task.add_done_callback(lambda done: done.cancelled() or done.exception())

    def _give_back(self, origin: Any, connection: Any) -> None:
        self._slots.release()
        if not connection.is_idle():
            self._discard(connection)
            return
        idle = self._idle.setdefault((origin.scheme, origin.host, origin.port), self._deque())
        if idle and idle[0].has_expired():  # sweep the oldest: nothing stays open past its keep-alive
            self._discard(idle.popleft())
        if len(idle) >= self._max_keepalive:
            self._discard(idle.popleft())
        idle.append(connection)

    async def handle_async_request(self, request: Any) -> Any:
        import asyncio

        import httpcore2

        from aiteacher.scheduling import SHORT_WAIT, off_cpu

        timeout = (request.extensions.get("timeout") or {}).get("pool")
        async with off_cpu(SHORT_WAIT):  # all connections busy: wait off the replica's slot (aiteacher.scheduling)
            try:
                await asyncio.wait_for(self._slots.acquire(), timeout)
            except TimeoutError as exc:
                raise httpcore2.PoolTimeout("No connection became free in time") from exc
        origin = request.url.origin
        for _attempt in range(3):  # a kept connection may have been taken by the server meanwhile
            connection = self._take(origin)
            try:
                async with off_cpu():  # the request goes out and its answer's head comes back
                    response = await connection.handle_async_request(request)
            except httpcore2.ConnectionNotAvailable:
                self._discard(connection)
                continue
            except BaseException:
                self._discard(connection)
                self._slots.release()
                raise
            return httpcore2.Response(
                status=response.status,
                headers=response.headers,
                content=_ReturningStream(response.stream, lambda c=connection: self._give_back(origin, c)),
                extensions=response.extensions,
            )
        self._slots.release()
        raise httpcore2.ConnectError("No connection could take the request")

    async def aclose(self) -> None:
        for idle in self._idle.values():
            while idle:
                await idle.pop().aclose()

    async def __aenter__(self) -> _StackPool:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


class _ReturningStream:
    """A response body that hands its connection back to the pool once read (or closed), exactly once."""

    def __init__(self, stream: Any, give_back: Any) -> None:
        self._stream = stream
        self._give_back = give_back

    async def __aiter__(self) -> Any:
        from aiteacher.scheduling import SHORT_WAIT, iterate_off_cpu

        async for part in iterate_off_cpu(self._stream, SHORT_WAIT):  # a streamed answer arrives over seconds
            yield part

    async def aclose(self) -> None:
        give_back, self._give_back = self._give_back, None
        try:
            if hasattr(self._stream, "aclose"):
                await self._stream.aclose()
        finally:
            if give_back is not None:
                give_back()


@lru_cache(maxsize=1)
def _asyncio_backend() -> Any:
    """httpcore's network backend on asyncio's own streams. httpcore reaches asyncio through anyio, whose
    cancel scope, task-state lookups and checkpoints around every read and write cost more CPU than the socket
    work itself: 0.13-0.18 ms of a 1 ms model call alone, 1.1-2 ms of a 9 ms tutor turn in a loaded replica
    (docs/benchmarks.md). Timeouts and errors map to httpcore's as anyio's backend maps them, so httpx and the
    SDK see the same exceptions."""
    import asyncio
    import ssl

    import httpcore2
    from httpcore2._exceptions import map_exceptions
    from httpcore2._utils import is_socket_readable

    # Timeouts first: asyncio's TimeoutError is an OSError too.
    reading: dict[type[Exception], type[Exception]] = {
        TimeoutError: httpcore2.ReadTimeout,
        OSError: httpcore2.ReadError,
    }
    writing: dict[type[Exception], type[Exception]] = {
        TimeoutError: httpcore2.WriteTimeout,
        OSError: httpcore2.WriteError,
    }
    # ssl.SSLError is an OSError too.
    connecting: dict[type[Exception], type[Exception]] = {
        TimeoutError: httpcore2.ConnectTimeout,
        OSError: httpcore2.ConnectError,
    }

    class Stream(httpcore2.AsyncNetworkStream):
        def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._reader, self._writer = reader, writer

        async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            with map_exceptions(reading):
                async with asyncio.timeout(timeout):
                    return await self._reader.read(max_bytes)

        async def write(self, buffer: bytes, timeout: float | None = None) -> None:
            if not buffer:
                return
            if self._writer.is_closing():
                raise httpcore2.WriteError("The connection is closed")
            with map_exceptions(writing):
                self._writer.write(buffer)
                if self._writer.transport.get_write_buffer_size():  # only a full socket buffer makes it wait
                    async with asyncio.timeout(timeout):
                        await self._writer.drain()

        async def aclose(self) -> None:
            self._writer.close()

        async def start_tls(
            self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
        ) -> httpcore2.AsyncNetworkStream:
            try:
                with map_exceptions(connecting):
                    async with asyncio.timeout(timeout):
                        await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
            except BaseException:
                self._writer.close()
                raise
            return self

        def get_extra_info(self, info: str) -> Any:
            if info == "is_readable":  # an idle connection with bytes (or EOF) waiting was closed by the server
                return is_socket_readable(self._writer.get_extra_info("socket"))
            if info in ("ssl_object", "socket"):
                return self._writer.get_extra_info(info)
            if info == "client_addr":
                return self._writer.get_extra_info("sockname")
            if info == "server_addr":
                return self._writer.get_extra_info("peername")
            return None

    async def connected(opening: Any, timeout: float | None) -> Stream:
        with map_exceptions(connecting):
            async with asyncio.timeout(timeout):
                return Stream(*await opening)

    class Backend(httpcore2.AsyncNetworkBackend):
        async def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Any = None,
        ) -> httpcore2.AsyncNetworkStream:
            local = (local_address, 0) if local_address else None
            stream = await connected(asyncio.open_connection(host, port, local_addr=local), timeout)
            for option in socket_options or ():
                stream.get_extra_info("socket").setsockopt(*option)
            return stream

        async def connect_unix_socket(
            self, path: str, timeout: float | None = None, socket_options: Any = None
        ) -> httpcore2.AsyncNetworkStream:
            return await connected(asyncio.open_unix_connection(path), timeout)

        async def sleep(self, seconds: float) -> None:
            await asyncio.sleep(seconds)

    return Backend()


def _async_http_client() -> Any:
    """The SDK's default async httpx client (its timeout, limits, redirects, proxies from the environment),
    its direct transport on the O(1) pool above."""
    import httpx2
    import openai
    from openai._constants import DEFAULT_CONNECTION_LIMITS

    limits = DEFAULT_CONNECTION_LIMITS
    transport = httpx2.AsyncHTTPTransport(limits=limits)
    transport._pool = _StackPool(  # type: ignore[assignment]  # httpcore errors still mapped to httpx ones
        ssl_context=httpx2.create_ssl_context(),
        max_connections=limits.max_connections or 1000,
        max_keepalive=limits.max_connections or 1000,
        keepalive_expiry=limits.keepalive_expiry or 5.0,
    )
    return openai.DefaultAsyncHttpxClient(transport=transport)
