"""Supervised background tasks: one that fails or ends is reported down and started again."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.engine.health import Health


async def test_a_task_that_fails_is_reported_down_then_started_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    health, stop = Health(), asyncio.Event()
    runs: list[int] = []
    second_run = asyncio.Event()
    seen_down: list[dict[str, bool]] = []

    async def work() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("one bad input")
        second_run.set()
        await stop.wait()

    async def watch() -> None:
        while not second_run.is_set():
            if health.report() == {"jobs": False}:
                seen_down.append(health.report())
            await asyncio.sleep(0.01)

    with caplog.at_level(logging.INFO):
        supervised = asyncio.create_task(health.supervise("jobs", work, stop))
        await asyncio.wait_for(asyncio.gather(second_run.wait(), watch()), timeout=10)
        assert health.report() == {"jobs": True} and seen_down and runs == [0, 1]
        stop.set()
        await asyncio.wait_for(supervised, timeout=5)
    messages = [r.getMessage() for r in caplog.records]
    assert "task.restarting" in messages and any("task.failed" in m for m in messages)


async def test_a_task_that_ends_by_itself_is_started_again_but_not_after_stop() -> None:
    health, stop = Health(), asyncio.Event()
    runs: list[int] = []

    async def work() -> None:
        runs.append(1)
        if len(runs) == 2:
            stop.set()

    await asyncio.wait_for(health.supervise("sweep", work, stop), timeout=10)
    assert runs == [1, 1] and health.report() == {"sweep": True}


def test_parts_of_every_source_are_reported_and_sources_without_health_skipped() -> None:
    class Modems:
        def health(self) -> dict[str, bool]:
            return {"gsm:modem-1": True, "gsm:modem-2": False}

    health = Health()
    health.watch(Modems())
    health.watch(object())  # a channel with nothing to report (the web site)
    assert health.report() == {"gsm:modem-1": True, "gsm:modem-2": False}
