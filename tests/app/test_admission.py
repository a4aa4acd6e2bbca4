"""The upload budget's bookkeeping (facever.app.admission.UploadBudget): first come, first served, and
a request that gives up waiting leaves nothing reserved. The server's behaviour is in test_memory.py."""

from __future__ import annotations

import asyncio

from facever.app.admission import UploadBudget


def test_a_waiting_reservation_is_granted_when_room_is_given_back():
    async def scenario():
        budget = UploadBudget(100)
        assert await budget.acquire(60, timeout=0)
        waiting = asyncio.create_task(budget.acquire(60, timeout=5))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        budget.release(60)
        assert await waiting
        return budget.in_use

    assert asyncio.run(scenario()) == 60


def test_reservations_are_granted_in_arrival_order():
    async def scenario():
        budget = UploadBudget(100)
        assert await budget.acquire(90, timeout=0)
        large = asyncio.create_task(budget.acquire(80, timeout=5))
        await asyncio.sleep(0.01)
        small = asyncio.create_task(budget.acquire(5, timeout=5))  # fits, but arrived after `large`
        await asyncio.sleep(0.05)
        assert not small.done()
        budget.release(90)
        return await large, await small, budget.in_use

    assert asyncio.run(scenario()) == (True, True, 85)


def test_a_reservation_that_times_out_leaves_nothing_and_lets_the_next_in():
    async def scenario():
        budget = UploadBudget(100)
        assert await budget.acquire(50, timeout=0)
        first = asyncio.create_task(budget.acquire(100, timeout=0.1))  # needs all of it: gives up
        await asyncio.sleep(0.01)
        second = asyncio.create_task(budget.acquire(40, timeout=5))
        return await first, await second, budget.in_use

    assert asyncio.run(scenario()) == (False, True, 90)


def test_a_body_larger_than_the_budget_waits_for_all_of_it():
    budget = UploadBudget(100)
    assert budget.size_of(500) == 100 and budget.size_of(30) == 30
