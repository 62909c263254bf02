"""What a worker has painted since it started, for the metrics of its device (bot/metrics.py).

The stepping loop adds a batch's size and seconds after each batched step (`stepped`: two
additions under a lock, nothing else); the memory is read, and a WorkerStats made, only when the
stats are sent: every STATS_INTERVAL seconds, on a thread of their own (`report_every`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from bot.protocol.messages import STATS_INTERVAL, WorkerStats


class PaintingStats:
    def __init__(
        self,
        device: str,
        batch_size: int,
        memory: Callable[[], tuple[int, int, int]],
        *,
        total: int = 0,
        limit: int | None = None,
    ):
        """`memory`: the bytes in use now, the peak since the last job started and the bytes
        reserved; `total` the device's memory, `limit` what jobs may take (None: no limit)."""
        self.device, self.batch_size, self._memory = device, batch_size, memory
        self.total, self.limit = total, limit
        self._lock = threading.Lock()
        self._busy, self._batches, self._job_steps, self._peak = 0.0, 0, 0, 0

    def stepped(self, jobs: int, seconds: float) -> None:
        """One batched step of `jobs` jobs took `seconds`."""
        with self._lock:
            self._busy += seconds
            self._batches += 1
            self._job_steps += jobs

    def snapshot(self) -> WorkerStats:
        in_use, peak, reserved = self._memory()
        with self._lock:
            self._peak = max(self._peak, peak, in_use)
            return WorkerStats(
                device=self.device,
                busy_seconds=self._busy,
                batches=self._batches,
                job_steps=self._job_steps,
                batch_size=self.batch_size,
                memory_bytes=in_use,
                memory_peak_bytes=self._peak,
                memory_reserved_bytes=reserved,
                memory_total_bytes=self.total,
                memory_limit_bytes=self.limit or 0,
            )

    def timed(self) -> Callable[[], None]:
        """An `after_step` for Painting.run (a job painted alone): each step counted with its
        seconds since the previous call."""
        last = time.perf_counter()

        def after_step() -> None:
            nonlocal last
            now = time.perf_counter()
            self.stepped(1, now - last)
            last = now

        return after_step


def report_every(
    stats: PaintingStats,
    send: Callable[[WorkerStats], None],
    stopped: threading.Event,
    interval: float = STATS_INTERVAL,
) -> threading.Thread:
    """A daemon thread that sends the stats every `interval` seconds while they change (and once
    at the start), until `stopped` is set or `send` raises (the other side is gone)."""

    def loop() -> None:
        last = None
        while True:
            now = stats.snapshot()
            if now != last:
                try:
                    send(now)
                except Exception:  # noqa: BLE001 (a closed pipe: the worker is ending)
                    return
                last = now
            if stopped.wait(interval):
                return

    thread = threading.Thread(target=loop, name="stylebot-stats", daemon=True)
    thread.start()
    return thread
