"""Oldest request first (`aiteacher.scheduling`, the chat function's replicas): a burst is served in arrival
order instead of round-robin, a request waiting on the network or a thread lets the others run, and no path
(cancellation, a task left behind, two tasks of one request) loses or duplicates a slot.

A "step" blocks the event loop for a few milliseconds, as a request's Python work does; a round trip is an
`off_cpu(SHORT_WAIT)` around a 1 ms asyncio sleep, a model call an `off_cpu()`. The tests compare orders, never
durations."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from aiteacher.scheduling import SHORT_WAIT, OldestFirst, off_cpu

STEP_SECONDS = 0.003
WAIT_SECONDS = 0.001


def _free(gate: OldestFirst) -> bool:
    return gate._free == gate.slots and gate.waiting == 0


async def _request(gate: OldestFirst | None, name: int, log: list[tuple[int, int]], steps: int = 3) -> None:
    async def work() -> None:
        for step in range(steps):
            time.sleep(STEP_SECONDS)  # Python work: the loop runs nothing else meanwhile
            log.append((name, step))
            async with off_cpu(SHORT_WAIT):
                await asyncio.sleep(WAIT_SECONDS)  # a round trip

    if gate is None:
        await work()
    else:
        async with gate.admitted():
            await work()


def _burst(gate: OldestFirst | None, size: int = 10) -> list[tuple[int, int]]:
    log: list[tuple[int, int]] = []

    async def scenario() -> None:
        await asyncio.gather(*(_request(gate, name, log) for name in range(size)))

    asyncio.run(scenario())
    return log


def test_round_robin_finishes_the_first_request_of_a_burst_only_with_the_last() -> None:
    log = _burst(None)
    assert log.index((0, 2)) > log.index((9, 1)), "the old behaviour: every request waits behind all the others"


@pytest.mark.parametrize("slots", [1, 2])
def test_oldest_first_finishes_the_first_requests_before_the_last_ones_start_again(slots: int) -> None:
    gate = OldestFirst(slots)
    log = _burst(gate)
    assert log.index((0, 2)) < log.index((9, 1)), log
    finished = [name for name, step in log if step == 2]
    assert finished == list(range(10)) if slots == 1 else sorted(finished[:2]) == [0, 1]
    assert _free(gate)


def _race(slow_wait) -> list[str]:  # type: ignore[no-untyped-def]
    """A request that waits on `slow_wait()` and one that arrives after it, one slot: the second finishes first."""
    gate = OldestFirst(1)
    order: list[str] = []

    async def scenario() -> None:
        async def slow() -> None:
            async with gate.admitted():
                await slow_wait()
                order.append("slow")

        async def quick() -> None:
            await asyncio.sleep(0.05)
            async with gate.admitted():
                order.append("quick")

        await asyncio.gather(slow(), quick())

    asyncio.run(scenario())
    assert _free(gate)
    return order


def test_a_request_gives_its_slot_up_once_a_short_wait_turns_out_slow() -> None:
    async def stalled_round_trip() -> None:
        async with off_cpu(SHORT_WAIT):
            await asyncio.sleep(0.3)  # a Redis that stopped answering

    assert _race(stalled_round_trip) == ["quick", "slow"]


def test_a_request_waiting_off_cpu_lets_the_others_run_to_the_end() -> None:
    gate = OldestFirst(1)
    order: list[str] = []

    async def scenario() -> None:
        release = asyncio.Event()

        async def slow() -> None:
            async with gate.admitted():
                async with off_cpu():
                    await release.wait()  # the model thinking
                order.append("slow")

        async def quick(name: str) -> None:
            async with gate.admitted():
                order.append(name)

        first = asyncio.ensure_future(slow())
        await asyncio.sleep(0)
        await asyncio.gather(quick("a"), quick("b"))
        release.set()
        await first

    asyncio.run(scenario())
    assert order == ["a", "b", "slow"]
    assert _free(gate)


def test_a_request_cancelled_while_waiting_for_a_slot_takes_none() -> None:
    gate = OldestFirst(1)

    async def scenario() -> list[str]:
        order: list[str] = []
        hold = asyncio.Event()

        async def holder() -> None:
            async with gate.admitted():
                await hold.wait()  # keeps the slot: a wait the gate does not know of
                order.append("holder")

        async def waiter(name: str) -> None:
            async with gate.admitted():
                order.append(name)

        tasks = [asyncio.ensure_future(holder())]
        await asyncio.sleep(0)
        tasks += [asyncio.ensure_future(waiter("cancelled")), asyncio.ensure_future(waiter("next"))]
        await asyncio.sleep(0)
        assert gate.waiting == 2
        tasks[1].cancel()
        hold.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        return order

    assert asyncio.run(scenario()) == ["holder", "next"]
    assert _free(gate)


def test_a_slot_handed_to_a_request_that_is_cancelled_at_once_passes_on() -> None:
    gate = OldestFirst(1)

    async def scenario() -> list[str]:
        order: list[str] = []

        async def waiter(name: str) -> None:
            async with gate.admitted():
                order.append(name)

        holding = gate.admitted()
        await holding.__aenter__()
        doomed, next_ = asyncio.ensure_future(waiter("doomed")), asyncio.ensure_future(waiter("next"))
        await asyncio.sleep(0)
        assert gate.waiting == 2
        await holding.__aexit__(None, None, None)  # hands the slot to "doomed", which has not resumed yet
        doomed.cancel()
        await asyncio.gather(doomed, next_, return_exceptions=True)
        return order

    assert asyncio.run(scenario()) == ["next"]
    assert _free(gate)


def test_two_tasks_of_one_request_share_its_one_slot() -> None:
    gate = OldestFirst(1)

    async def scenario() -> None:
        async def branch(after: float) -> None:
            for _ in range(3):
                async with off_cpu(after):
                    await asyncio.sleep(WAIT_SECONDS)

        async def request() -> None:
            async with gate.admitted():
                await asyncio.gather(branch(0.0), branch(SHORT_WAIT))  # moderation next to retrieval

        await asyncio.gather(*(request() for _ in range(4)))

    asyncio.run(scenario())
    assert _free(gate), "a slot was lost or taken twice"


def test_two_tasks_of_one_request_waiting_for_its_slot_together_take_one() -> None:
    gate = OldestFirst(1)

    async def scenario() -> None:
        async def request() -> None:
            async with gate.admitted():

                async def round_trip() -> None:  # keeps the slot: it gives it up only when it turns out slow
                    async with off_cpu(SHORT_WAIT):
                        await asyncio.sleep(0.002)

                async def model_call() -> None:  # gives the slot up at once
                    async with off_cpu():
                        await asyncio.sleep(0.001)

                await asyncio.gather(round_trip(), model_call())  # both end while another request holds the slot

        async def other() -> None:
            await asyncio.sleep(0)
            async with gate.admitted():
                await asyncio.sleep(0.01)  # holds the slot across the first request's two waits

        await asyncio.gather(request(), other())

    asyncio.run(scenario())
    assert _free(gate), "the request took a second slot and gave one back"


def test_a_wait_that_fails_takes_the_slot_back_and_a_cancelled_one_does_not() -> None:
    gate = OldestFirst(1)
    seen: list[bool] = []

    async def scenario() -> None:
        async with gate.admitted():
            with pytest.raises(ConnectionError):
                async with off_cpu():
                    raise ConnectionError("the model went away")
            seen.append(gate._free == 0)  # the error handler runs holding the slot

            async def listener() -> None:  # a disconnect listener, cancelled when the answer is sent
                async with off_cpu(SHORT_WAIT):
                    await asyncio.Event().wait()

            task = asyncio.ensure_future(listener())
            await asyncio.sleep(0.05)  # long enough for its timer to give the slot up
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            seen.append(gate._free == 1)  # not taken back by the cancelled task

    asyncio.run(scenario())
    assert seen == [True, True]
    assert _free(gate)


def test_a_task_the_request_left_behind_takes_no_slot() -> None:
    gate = OldestFirst(1)

    async def scenario() -> None:
        later = asyncio.Event()

        async def orphan() -> None:
            await later.wait()
            async with off_cpu():
                await asyncio.sleep(0)

        async with gate.admitted():
            left = asyncio.ensure_future(orphan())  # copies the request's context
        later.set()
        await left
        async with gate.admitted():  # the next request still gets the slot
            pass

    asyncio.run(scenario())
    assert _free(gate)


def test_outside_a_gated_request_off_cpu_does_nothing() -> None:
    async def scenario() -> int:
        async with off_cpu():
            return 1

    assert asyncio.run(scenario()) == 1


# --- the served app ---------------------------------------------------------------------------------


@pytest.fixture
def one_slot(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from aiteacher.config import reset_caches

    monkeypatch.setenv("OLDEST_FIRST_SLOTS", "1")
    reset_caches()
    yield
    monkeypatch.delenv("OLDEST_FIRST_SLOTS")
    reset_caches()


def _served(oldest_first: bool) -> tuple[object, list[tuple[int, int]]]:
    from aiteacher.serve import ShippedApp
    from aiteacher.web import create_app

    app = create_app("scheduling-test", "test", oldest_first=oldest_first)
    log: list[tuple[int, int]] = []

    @app.post("/work/{name}")
    async def work(name: int) -> dict[str, int]:
        await _request(None, name, log)  # the request's own gate is the app's
        return {"name": name}

    return ShippedApp(app, None, "scheduling-test"), log


def _http_burst(shipped: object, size: int = 10) -> list[int]:
    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=shipped)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            replies = await asyncio.gather(*(client.post(f"/work/{name}") for name in range(size)))
            assert (await client.get("/healthz")).status_code in (200, 404)
        return [reply.status_code for reply in replies]

    return asyncio.run(scenario())


@pytest.mark.usefixtures("one_slot")
def test_the_chat_app_kind_serves_a_burst_over_http_in_arrival_order() -> None:
    shipped, log = _served(oldest_first=True)
    assert shipped.gate is not None and shipped.gate.slots == 1  # type: ignore[attr-defined]
    assert _http_burst(shipped) == [200] * 10
    assert log.index((0, 2)) < log.index((9, 1)), log
    assert _free(shipped.gate)  # type: ignore[attr-defined]


@pytest.mark.usefixtures("one_slot")
def test_an_app_that_did_not_ask_is_served_as_before() -> None:
    shipped, _ = _served(oldest_first=False)
    assert shipped.gate is None  # type: ignore[attr-defined]
    assert _http_burst(shipped) == [200] * 10


def test_zero_slots_turns_the_gate_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiteacher.config import reset_caches

    monkeypatch.setenv("OLDEST_FIRST_SLOTS", "0")
    reset_caches()
    try:
        shipped, _ = _served(oldest_first=True)
        assert shipped.gate is None  # type: ignore[attr-defined]
    finally:
        monkeypatch.delenv("OLDEST_FIRST_SLOTS")
        reset_caches()


def test_the_chat_function_asks_for_it() -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "functions" / "chat" / "handler.py"
    spec = importlib.util.spec_from_file_location("chat_handler_for_scheduling", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.app.state.oldest_first is True


# --- real waits: the model's retry backoff, a slow Redis command ----------------------------------------


def test_the_models_retry_backoff_waits_off_the_slot() -> None:
    from aiteacher.llm.openai_provider import OpenAIProvider
    from tests.fakes.openai_server import FakeOpenAIServer

    with FakeOpenAIServer() as fake:
        fake.queue_error("moderations", 429, headers={"retry-after-ms": "400"})
        provider = OpenAIProvider(model="gpt-test", api_key="sk-test", base_url=fake.url, max_retries=1)

        async def moderate() -> None:
            assert (await provider.moderate_async("what is a heap?")).flagged is False

        assert _race(moderate) == ["quick", "slow"]
        assert len(fake.requests_to("moderations")) == 2


def test_the_sdk_still_has_the_backoff_hook_we_gate() -> None:
    import openai

    assert callable(getattr(openai.AsyncOpenAI, "_sleep_for_retry", None))


def test_a_slow_redis_command_waits_off_the_slot() -> None:
    from aiteacher.cache import get_async_redis

    async def blocking_pop() -> None:
        assert await get_async_redis().blpop(["aiteacher-test:nothing-here"], timeout=0.4) is None

    assert _race(blocking_pop) == ["quick", "slow"]
