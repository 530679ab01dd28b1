"""The admission round trip (rate limit + deny-list + profile, one Redis call on the event loop) survives a busy
event loop. Under CPU saturation a replica's loop resumes a waiting request late; with the asyncio client on the
threads' 1 s timeout, a reply that had long arrived counted as a Redis timeout, twice (with the retry), and the
request was answered 503. At N = 200 concurrent tutor turns that was about 100 of 400 turns."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import uuid

from aiteacher import ratelimit
from aiteacher.cache import get_async_redis
from aiteacher.config import get_settings


class _SlowReplies:
    """A TCP proxy in front of Redis (in a thread) that hands each reply on after `delay` seconds: a command is
    still in flight when the event loop stalls."""

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        self.target, self.delay = target, delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream, 0.0), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, self.delay), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket, delay: float) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                time.sleep(delay)
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.close()

    def close(self) -> None:
        self.listener.close()


def _stall(loop: asyncio.AbstractEventLoop, seconds: float, times: int) -> None:
    """Block the loop (other requests' CPU work, as far as the loop can tell), then again shortly after."""
    time.sleep(seconds)
    if times > 1:
        loop.call_later(0.05, _stall, loop, seconds, times - 1)


def test_admission_is_not_refused_while_the_event_loop_is_busy(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from urllib.parse import urlsplit

    from aiteacher.config import reset_caches

    url = urlsplit(get_settings().redis_url)
    proxy = _SlowReplies((url.hostname or "127.0.0.1", url.port or 6379), delay=0.2)
    credentials = url.netloc.rsplit("@", 1)[0] + "@" if "@" in url.netloc else ""  # a real Redis may need AUTH
    monkeypatch.setenv("REDIS_URL", f"{url.scheme}://{credentials}127.0.0.1:{proxy.port}{url.path}")
    reset_caches()
    stall = get_settings().redis_timeout_seconds * 1.5  # each stall outlasts the threads' 1 s timeout

    async def scenario() -> ratelimit.Decision:
        await get_async_redis().ping()  # a pooled connection, as on a warm replica
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, _stall, loop, stall, 2)  # while the reply is on its way, and on the retry's
        return await ratelimit.hit_async(f"chat:user:{uuid.uuid4()}", 10, 60)  # was ServiceUnavailable (503)

    try:
        decision = asyncio.run(scenario())
    finally:
        proxy.close()
        monkeypatch.undo()
        reset_caches()
    assert decision.allowed and decision.remaining == 9


def test_a_redis_that_is_down_still_fails_at_once(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from aiteacher.config import reset_caches
    from aiteacher.errors import ServiceUnavailable

    with socket.socket() as probe:  # a port nobody listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{port}/0")
    reset_caches()
    try:

        async def scenario() -> float:
            began = time.monotonic()
            try:
                await ratelimit.hit_async("chat:user:down", 10, 60)
            except ServiceUnavailable:
                return time.monotonic() - began
            raise AssertionError("a refused connection must be a 503")

        assert asyncio.run(scenario()) < get_settings().redis_timeout_seconds
    finally:
        monkeypatch.undo()
        reset_caches()
