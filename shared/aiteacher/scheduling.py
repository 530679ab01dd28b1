"""Oldest request first: a replica's Python work runs in arrival order, not shared round-robin.

An asyncio server shares its one thread round-robin: every `await` sends a request to the back of the queue. When
a burst arrives together (N students whose model replies all came back at once), every request of the burst waits
at each of its steps behind all the others, so all of them finish near the end of the burst. Served in arrival
order, the first finishes after its own work, the median after half the burst, and the next burst arrives spread
out instead of all at once.

`OldestFirst` lets at most `slots` requests run at once. A request keeps its slot through its short waits (Redis and
database round trips), so the requests of a burst go through their reads in arrival order, and gives it up while it
waits on the model (`off_cpu()`) or on anything that turns out slow (`off_cpu(SHORT_WAIT)`). When it resumes it goes
before every request that arrived after it. Requests that the gate does not know (another app, a background task)
are not affected.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

SHORT_WAIT = 0.01
"""Seconds a wait may last before its request gives its slot up (a local round trip takes well under 1 ms)."""


@dataclass
class _Hold:
    """One request's place at the gate, shared by all of its tasks (moderation runs next to retrieval)."""

    gate: OldestFirst
    seq: int
    held: bool = False
    done: bool = False
    turn: asyncio.Future[None] | None = None
    """While the request waits for a slot: resolved when it has one (every task of the request waits on it)."""


_hold: ContextVar[_Hold | None] = ContextVar("aiteacher_oldest_first", default=None)


class OldestFirst:
    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self.slots = slots
        self._free = slots
        self._waiting: list[tuple[int, int, _Hold]] = []
        self._arrivals = itertools.count()
        self._tiebreak = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for *_, hold in self._waiting if not hold.done)

    async def _acquire(self, hold: _Hold) -> None:
        if hold.done or hold.held:  # a task the request left behind runs ungated; a held slot is the request's
            return
        if hold.turn is None:
            if self._free:  # a free slot means nobody waits: a release hands its slot to the oldest waiter
                self._free -= 1
                hold.held = True
                return
            hold.turn = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (hold.seq, next(self._tiebreak), hold))
        # Shielded: a task cancelled while it waits leaves the request's place in line; a slot handed to the
        # request then is the request's, given back when it next waits or ends.
        await asyncio.shield(hold.turn)

    def _release(self) -> None:
        while self._waiting:
            *_, hold = heapq.heappop(self._waiting)
            turn, hold.turn = hold.turn, None
            if hold.done:
                continue
            hold.held = True  # the slot passes straight to the oldest waiting request
            if turn is not None:  # shielded: never cancelled
                turn.set_result(None)
            return
        self._free += 1

    def _give_up(self, hold: _Hold) -> None:
        if hold.held:
            hold.held = False
            self._release()

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """Around one request: it waits for a slot in arrival order and runs holding it."""
        hold = _Hold(self, next(self._arrivals))
        try:
            await self._acquire(hold)
            token = _hold.set(hold)
            try:
                yield
            finally:
                _hold.reset(token)
        finally:  # also when cancelled in line: a slot handed over later skips a finished request
            hold.done = True
            self._give_up(hold)


@asynccontextmanager
async def off_cpu(after: float = 0.0) -> AsyncIterator[None]:
    """Around a wait on the network or a thread. The slot goes to the next request once the wait has lasted
    `after` seconds (at once by default: a model call), and the request takes it back before any younger one.
    A short wait (a Redis or database round trip, `after=SHORT_WAIT`) keeps the slot, so a burst goes through
    its round trips in arrival order; a slow one (a Redis that is away) still lets the others run.
    Outside a gated request, or while another task of the same request has given the slot up, it does nothing."""
    hold = _hold.get()
    if hold is None or not hold.held:
        yield
        return
    gate = hold.gate
    timer = asyncio.get_running_loop().call_later(after, gate._give_up, hold) if after > 0 else None
    if timer is None:
        gate._give_up(hold)
    cancelled = False
    try:
        yield
    except asyncio.CancelledError:  # the task is ending (a disconnect listener, a deadline): no slot to take back
        cancelled = True
        raise
    finally:
        if timer is not None:
            timer.cancel()
        if not cancelled and not hold.held:  # an error still goes on to its handler: it takes the slot back
            await gate._acquire(hold)


async def iterate_off_cpu(parts: AsyncIterator[T], after: float = 0.0) -> AsyncIterator[T]:
    """`parts` (a response body arriving over the network), each wait for the next part an `off_cpu(after)`."""
    iterator = parts.__aiter__()
    while True:
        async with off_cpu(after):
            try:
                part = await iterator.__anext__()
            except StopAsyncIteration:
                return
        yield part
