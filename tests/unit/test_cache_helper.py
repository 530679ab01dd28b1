"""The one best-effort JSON cache (`aiteacher.cache.cached_json` and friends): a hit round-trips the
declared type, and a cache that is away or holds an older shape is a miss, never an error."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from pydantic import BaseModel


class Item(BaseModel):
    name: str
    size: int = 0


class BrokenRedis:
    """Every command fails as a Redis that went away does."""

    def __getattr__(self, name: str):
        from redis.exceptions import ConnectionError as RedisConnectionError

        def fail(*_args, **_kwargs):
            raise RedisConnectionError("Connection refused")

        return fail


def _key() -> str:
    return f"test-cache:{uuid.uuid4().hex}"


def test_a_value_is_computed_once_then_served_as_its_declared_type() -> None:
    from aiteacher.cache import cached_json

    key, calls = _key(), []

    def compute() -> list[Item]:
        calls.append(1)
        return [Item(name="heap", size=3)]

    first = cached_json(key, 60, compute, list[Item])
    second = cached_json(key, 60, compute, list[Item])
    assert first == ([Item(name="heap", size=3)], False)
    assert second == ([Item(name="heap", size=3)], True)
    assert isinstance(second[0][0], Item) and len(calls) == 1


def test_an_empty_result_is_cached_too() -> None:
    from aiteacher.cache import cached_json

    key, calls = _key(), []
    for _ in range(2):
        cached_json(key, 60, lambda: calls.append(1) or [], list[Item])
    assert len(calls) == 1


def test_ttl_zero_never_touches_the_cache(monkeypatch) -> None:
    from aiteacher import cache

    monkeypatch.setattr(cache, "get_redis", lambda: pytest.fail("no cache read or write with ttl 0"))
    assert cache.cached_json(_key, 0, lambda: 7) == (7, False)
    cache.set_json(_key(), {"a": 1}, 0)


def test_a_cache_that_is_away_is_a_miss_and_a_log_line(monkeypatch, caplog) -> None:
    from aiteacher import cache

    monkeypatch.setattr(cache, "get_redis", lambda: BrokenRedis())
    with caplog.at_level(logging.WARNING, logger="aiteacher.cache"):
        assert cache.cached_json(_key(), 60, lambda: {"x": 1}) == ({"x": 1}, False)
        assert cache.cached_json(lambda: "k:" + str(cache.get_redis().get("v")), 60, lambda: 2) == (2, False)
        assert cache.get_json(_key()) is None
        assert cache.get_many_json([_key(), _key()]) == [None, None]
        cache.set_json(_key(), {"x": 1}, 60)
        cache.forget(_key())
    assert sum("cache" in record.getMessage() for record in caplog.records) >= 6


def test_a_value_of_an_older_shape_is_a_miss() -> None:
    from aiteacher.cache import cached_json, get_redis

    key = _key()
    get_redis().set(key, b'[{"title": "an older release wrote this"}]', ex=60)
    assert cached_json(key, 60, lambda: [Item(name="fresh")], list[Item]) == ([Item(name="fresh")], False)
    assert cached_json(key, 60, lambda: [], list[Item]) == ([Item(name="fresh")], True)  # replaced
    get_redis().set(key, b"not json", ex=60)
    assert cached_json(key, 60, lambda: [Item(name="again")], list[Item])[1] is False


def test_forget_drops_values_and_the_async_twins_share_the_format() -> None:
    from aiteacher import cache

    key = _key()
    cache.set_json(key, {"answer": "ok"}, 60)

    async def read() -> object:
        return await cache.get_json_async(key)

    assert asyncio.run(read()) == {"answer": "ok"}
    cache.forget(key)
    assert cache.get_json(key) is None

    async def write_then_read() -> object:
        await cache.set_json_async(key, {"answer": "again"}, 60)
        return await cache.get_json_async(key)

    assert asyncio.run(write_then_read()) == {"answer": "again"}
    assert cache.get_json(key) == {"answer": "again"}


def test_the_async_cached_json_computes_once_shares_the_sync_format_and_survives_a_cache_away(
    monkeypatch, caplog
) -> None:
    from aiteacher import cache

    key, calls = _key(), []

    async def compute() -> list[Item]:
        calls.append(1)
        return [Item(name="a", size=2)]

    async def name() -> str:
        return key

    async def twice() -> list[tuple[object, bool]]:
        return [await cache.cached_json_async(name, 60, compute, list[Item]) for _ in range(2)]

    assert asyncio.run(twice()) == [([Item(name="a", size=2)], False), ([Item(name="a", size=2)], True)]
    assert calls == [1]
    assert cache.cached_json(key, 60, lambda: pytest.fail("written by the async twin"), list[Item])[1] is True

    async def no_cache() -> tuple[object, bool]:
        return await cache.cached_json_async(_key(), 0, compute)

    monkeypatch.setattr(cache, "get_async_redis", lambda: pytest.fail("no cache read or write with ttl 0"))
    assert asyncio.run(no_cache()) == ([Item(name="a", size=2)], False)
    monkeypatch.setattr(cache, "get_async_redis", lambda: BrokenRedis())

    async def away() -> tuple[object, bool]:
        return await cache.cached_json_async(_key(), 60, compute)

    with caplog.at_level(logging.WARNING, logger="aiteacher.cache"):
        assert asyncio.run(away()) == ([Item(name="a", size=2)], False)
    assert any("cache read failed" in record.getMessage() for record in caplog.records)


def test_new_redis_connections_do_not_read_package_metadata(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """redis-py resolves its own version (`importlib.metadata`, a METADATA file parsed by the email package) for
    every new connection unless it is given a driver_info. A burst of turns opens a pool's connections all at
    once, so the replica resolves it once per process and every connection still announces it."""
    import redis.utils

    from aiteacher import cache, registry

    reads = []
    real = redis.utils.get_lib_version
    monkeypatch.setattr(redis.utils, "get_lib_version", lambda: reads.append(1) or real())
    resolved = getattr(cache, "driver_info", None)  # resolved once per process: forget it for this test
    if resolved is not None:
        resolved.cache_clear()
    registry.reset()

    async def burst() -> list[bytes]:
        client = cache.get_async_redis()
        # Concurrent commands on a fresh pool: each takes a new connection.
        await asyncio.gather(*(client.execute_command("BLPOP", _key(), 0.05) for _ in range(6)))
        infos = await asyncio.gather(*(client.execute_command("CLIENT", "INFO") for _ in range(3)))
        await client.aclose()
        return infos

    infos = asyncio.run(burst())
    sync_client = cache.get_redis()
    for _ in range(3):
        connection = sync_client.connection_pool.make_connection()
        connection.connect()
        connection.disconnect()
    from aiteacher.queue import worker_connection

    worker = worker_connection()
    worker.ping()
    worker.close()
    assert len(reads) <= 1, f"{len(reads)} metadata reads for 9+ new connections"
    version = real()
    pool = sync_client.connection_pool
    assert pool.connection_kwargs["driver_info"].lib_version == version
    assert worker.connection_pool.connection_kwargs["driver_info"] is cache.driver_info()
    # A server with CLIENT SETINFO (Redis >= 7.2, Valkey) lists what each connection announced.
    announced = [info for info in infos if b"lib-name=" in info]
    assert all(b"lib-name=redis-py" in info and b"lib-ver=" + version.encode() in info for info in announced), infos
    registry.reset()
