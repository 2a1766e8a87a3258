"""Send pacing, on an event loop with a virtual clock so no test depends on the machine's speed.

`_VirtualClockLoop` is a real selector loop whose `time()` only moves when the loop would
otherwise sleep: it then jumps straight to the next timer. aiolimiter schedules its wake-ups
with `loop.call_at` and reads `loop.time()`, so its pacing is exact and instant here.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from bot.channels import rate_limit
from bot.channels.rate_limit import ChatRateLimiter


class _SkippingSelector(selectors.DefaultSelector):
    """Polls instead of blocking, and moves the loop's clock forward by the would-be wait."""

    def __init__(self, loop: _VirtualClockLoop) -> None:
        super().__init__()
        self._clock = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            # Nothing scheduled: only another thread could wake us. Tests wrap their body in
            # asyncio.wait_for, so this happens only while asyncio.run shuts down.
            return super().select(timeout)
        # Time always moves a little, as a real clock would: aiolimiter's float arithmetic can
        # ask to be woken "now" again, which would otherwise spin forever.
        self._clock.now += max(timeout, 1e-6)
        return super().select(0)


class _VirtualClockLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_SkippingSelector(self))

    def time(self) -> float:
        return self.now


T = TypeVar("T")


def _run(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    async def bounded() -> T:
        # Virtual seconds: a deadlock fails fast instead of hanging the suite.
        return await asyncio.wait_for(make(), timeout=3600)

    with asyncio.Runner(loop_factory=_VirtualClockLoop) as runner:
        return runner.run(bounded())


async def _send(
    limiter: ChatRateLimiter, chat: str | int, log: list[tuple[str, float]], *, group: bool
) -> None:
    async with limiter.slot(chat, group=group):
        log.append((str(chat), asyncio.get_running_loop().time()))


def _times(log: list[tuple[str, float]], chat: str) -> list[float]:
    return [t for c, t in log if c == chat]


def test_the_virtual_clock_skips_sleeps() -> None:
    async def go() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(500)
        return loop.time() - start

    assert _run(go) == pytest.approx(500)


def test_one_chat_is_paced_to_one_per_second() -> None:
    async def go() -> list[tuple[str, float]]:
        limiter = ChatRateLimiter()
        log: list[tuple[str, float]] = []
        await asyncio.gather(*(_send(limiter, 42, log, group=False) for _ in range(5)))
        return log

    times = _times(_run(go), "42")
    assert times == pytest.approx([0, 1, 2, 3, 4], abs=0.01)


def test_sends_to_one_chat_leave_in_order_and_one_at_a_time() -> None:
    async def go() -> list[str]:
        limiter = ChatRateLimiter(per_chat_per_s=100)
        events: list[str] = []

        async def send(i: int) -> None:
            async with limiter.slot("c", group=False):
                events.append(f"start {i}")
                await asyncio.sleep(0.5)  # a slow request
                events.append(f"end {i}")

        await asyncio.gather(*(send(i) for i in range(3)))
        return events

    assert _run(go) == ["start 0", "end 0", "start 1", "end 1", "start 2", "end 2"]


def test_a_waiting_chat_does_not_delay_other_chats() -> None:
    async def go() -> list[tuple[str, float]]:
        limiter = ChatRateLimiter()
        log: list[tuple[str, float]] = []
        busy = [_send(limiter, "busy", log, group=False) for _ in range(3)]
        others = [_send(limiter, f"other{i}", log, group=False) for i in range(10)]
        await asyncio.gather(*busy, *others)
        return log

    log = _run(go)
    busy = _times(log, "busy")
    assert busy == pytest.approx([0, 1, 2], abs=0.01)
    others = [t for c, t in log if c.startswith("other")]
    assert len(others) == 10
    assert max(others) < busy[1]  # all went out before the busy chat's second send
    assert max(others) == pytest.approx(0, abs=0.01)


def test_chats_waiting_for_their_pace_hold_no_global_capacity() -> None:
    async def go() -> list[tuple[str, float]]:
        # A tight global limit (1/s) and a slow chat pace (one per 10 s): five chats send two
        # messages each. Their second messages wait for their own pace; a chat that starts at
        # 5.5 s must find the global bucket free, not queue behind them.
        limiter = ChatRateLimiter(per_chat_per_s=0.1, overall_per_s=1)
        log: list[tuple[str, float]] = []

        async def late() -> None:
            await asyncio.sleep(5.5)
            await _send(limiter, "late", log, group=False)

        busy = [_send(limiter, f"busy{i % 5}", log, group=False) for i in range(10)]
        await asyncio.gather(*busy, late())
        return log

    assert _times(_run(go), "late") == pytest.approx([5.5], abs=0.01)


def test_chat_ids_as_int_and_str_share_one_limiter() -> None:
    async def go() -> list[tuple[str, float]]:
        limiter = ChatRateLimiter()
        log: list[tuple[str, float]] = []
        await asyncio.gather(
            _send(limiter, 7, log, group=False), _send(limiter, "7", log, group=False)
        )
        return log

    assert _times(_run(go), "7") == pytest.approx([0, 1], abs=0.01)


def test_global_cap_after_the_burst() -> None:
    async def go() -> list[tuple[str, float]]:
        limiter = ChatRateLimiter()
        log: list[tuple[str, float]] = []
        await asyncio.gather(*(_send(limiter, i, log, group=False) for i in range(90)))
        return log

    times = sorted(t for _, t in _run(go))
    # A burst of 30, then 30 per second: the 90th send leaves at 2 s.
    assert times[:30] == pytest.approx([0] * 30, abs=0.01)
    assert times[30:] == pytest.approx([(k + 1) / 30 for k in range(60)], abs=0.01)


def test_group_gets_its_burst_then_one_every_three_seconds() -> None:
    async def go() -> list[tuple[str, float]]:
        # A fast chat pace isolates the group limiter.
        limiter = ChatRateLimiter(per_chat_per_s=1000)
        log: list[tuple[str, float]] = []
        await asyncio.gather(*(_send(limiter, "g", log, group=True) for _ in range(23)))
        return log

    times = _times(_run(go), "g")
    assert times[19] < 0.1  # the documented burst of 20
    assert times[20:] == pytest.approx([3, 6, 9], abs=0.05)


def test_group_keeps_the_one_per_second_chat_pace() -> None:
    async def go() -> list[tuple[str, float]]:
        limiter = ChatRateLimiter()
        log: list[tuple[str, float]] = []
        await asyncio.gather(*(_send(limiter, "g", log, group=True) for _ in range(4)))
        return log

    assert _times(_run(go), "g") == pytest.approx([0, 1, 2, 3], abs=0.01)


def test_group_limit_is_per_group() -> None:
    async def go() -> list[tuple[str, float]]:
        limiter = ChatRateLimiter(per_chat_per_s=1000)
        log: list[tuple[str, float]] = []
        await asyncio.gather(
            *(_send(limiter, "g1", log, group=True) for _ in range(21)),
            *(_send(limiter, "g2", log, group=True) for _ in range(5)),
        )
        return log

    log = _run(go)
    assert _times(log, "g1")[-1] == pytest.approx(3, abs=0.05)
    assert max(_times(log, "g2")) < 0.1


def test_drained_chats_are_evicted_and_busy_ones_kept() -> None:
    async def go() -> tuple[int, int, int]:
        limiter = ChatRateLimiter()
        log: list[tuple[str, float]] = []
        await asyncio.gather(*(_send(limiter, i, log, group=i % 2 == 0) for i in range(1000)))
        kept_before = len(limiter)

        release = asyncio.Event()

        async def hold() -> None:
            async with limiter.slot("held", group=False):
                await release.wait()

        holder = asyncio.create_task(hold())
        await asyncio.sleep(120)  # every bucket has drained
        await _send(limiter, "new", log, group=False)
        kept_after = len(limiter)  # "held" (in use) and "new"

        release.set()
        await holder
        await asyncio.sleep(120)
        await _send(limiter, "later", log, group=False)
        return kept_before, kept_after, len(limiter)

    kept_before, kept_after, kept_last = _run(go)
    assert kept_before == 1000
    assert kept_after == 2
    assert kept_last == 1


def test_a_group_is_not_evicted_before_its_bucket_drains(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rate_limit, "_SWEEP_EVERY_S", 0.0)

    async def go() -> list[tuple[str, float]]:
        limiter = ChatRateLimiter(per_chat_per_s=1000)
        log: list[tuple[str, float]] = []
        await asyncio.gather(*(_send(limiter, "g", log, group=True) for _ in range(20)))
        await asyncio.sleep(30)  # half drained: 10 of 20 left
        await asyncio.gather(*(_send(limiter, "g", log, group=True) for _ in range(11)))
        return log

    times = _times(_run(go), "g")
    # Had the entry been dropped, all 11 would have gone at 30 s.
    assert times[29] < 30.1
    assert times[30] == pytest.approx(33, abs=0.05)


def test_failed_send_releases_the_chat() -> None:
    async def go() -> list[tuple[str, float]]:
        limiter = ChatRateLimiter()
        log: list[tuple[str, float]] = []
        with pytest.raises(RuntimeError):
            async with limiter.slot(1, group=False):
                raise RuntimeError("send failed")
        await _send(limiter, 1, log, group=False)
        return log

    assert _times(_run(go), "1") == pytest.approx([1], abs=0.01)


def test_cancelled_waiter_does_not_block_the_chat() -> None:
    async def go() -> list[tuple[str, float]]:
        limiter = ChatRateLimiter()
        log: list[tuple[str, float]] = []
        await _send(limiter, 1, log, group=False)
        waiter = asyncio.create_task(_send(limiter, 1, log, group=False))
        await asyncio.sleep(0.5)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await _send(limiter, 1, log, group=False)
        return log

    assert _times(_run(go), "1") == pytest.approx([0, 1], abs=0.01)


@pytest.mark.parametrize(
    "kwargs",
    [{"per_chat_per_s": 0}, {"per_group_per_min": 0.5}, {"overall_per_s": -1}],
)
def test_rejects_rates_a_bucket_cannot_hold(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        ChatRateLimiter(**kwargs)


def test_real_clock_smoke() -> None:
    """The same pacing on the default loop, with generous margins for a slow machine."""

    async def go() -> tuple[list[float], list[float]]:
        limiter = ChatRateLimiter(per_chat_per_s=5)
        log: list[tuple[str, float]] = []
        await asyncio.gather(
            *(_send(limiter, "a", log, group=False) for _ in range(3)),
            *(_send(limiter, f"b{i}", log, group=False) for i in range(10)),
        )
        start = min(t for _, t in log)
        return [t - start for t in _times(log, "a")], [
            t - start for c, t in log if c.startswith("b")
        ]

    a_times, b_times = asyncio.run(go())
    assert a_times[2] >= 0.39  # two full periods of 0.2 s
    assert max(b_times) < a_times[1]
