"""A chat turn's short transactions run on a small executor, in arrival order, with the caller's context."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

from aiteacher.tutor import service

REQUEST = contextvars.ContextVar("request", default="none")


def test_the_transaction_executor_keeps_the_callers_context_and_never_exceeds_the_pool() -> None:
    service._transaction_pool.cache_clear()
    try:
        pool = service._transaction_pool()
        settings = service.get_settings()
        assert 1 <= pool._max_workers <= settings.db_pool_size + settings.db_max_overflow

        def work(index: int) -> tuple[int, str, str]:
            time.sleep(0.01)
            return index, REQUEST.get(), threading.current_thread().name

        async def turn(index: int) -> tuple[int, str, str]:
            REQUEST.set(f"req-{index}")
            return await service.in_transaction_pool(work, index)

        async def burst() -> list[tuple[int, str, str]]:
            return await asyncio.gather(*(turn(i) for i in range(20)))

        results = asyncio.run(burst())
        assert [(i, request) for i, request, _ in results] == [(i, f"req-{i}") for i in range(20)]
        threads = {name for *_, name in results}
        assert all(name.startswith("tutor-tx") for name in threads)
        assert len(threads) <= pool._max_workers
    finally:
        service._transaction_pool().shutdown(wait=True)
        service._transaction_pool.cache_clear()
