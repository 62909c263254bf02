"""`stylebot bench --load N`: the same step timed again while N busy processes compete for the
cores, and the slowdown set against the share of the CPU the load takes away.

With C cores this process may use, T threads of its own and N busy processes, a fair scheduler
gives each of the T + N runnable threads C / (T + N) of a core: the step can only be slower by
min(T, C) / min(min(T, C), T C / (T + N)), the share lost. More than that is the threads fighting
(spinning, waiting on each other); the goal is at most 1.3 times the share lost.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

GOAL = 1.3  # the slowdown under load, at most this many times what the share lost explains
SPIN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass"


@contextlib.contextmanager
def busy_processes(count: int, seconds: float = 1200) -> Iterator[None]:
    """`count` processes that each keep one core busy, ended on leaving (and by themselves after
    `seconds`, whatever happens to this one)."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", SPIN.format(seconds=seconds)]) for _ in range(count)
    ]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
        for spinner in spinners:
            spinner.wait()


def share_lost(threads: int, cores: int, load: int) -> float:
    """How much slower a step can be for the CPU the load takes: the fair-share bound above."""
    alone = min(threads, cores)
    loaded = min(alone, threads * cores / (threads + load))
    return alone / loaded


def under_load(measure_step, load: int, threads: int, cores: int) -> dict:
    """`measure_step()` (ms a step) alone, then with `load` busy processes: both times, the
    slowdown, the share lost and whether the slowdown is within GOAL of it."""
    alone = measure_step()
    with busy_processes(load):
        loaded = measure_step()
    slowdown = loaded / alone
    bound = share_lost(threads, cores, load)
    return {
        "load": load,
        "step_ms_alone": alone,
        "step_ms_loaded": loaded,
        "slowdown": slowdown,
        "share_lost": bound,
        "of_share_lost": slowdown / bound,
        "within_goal": slowdown <= GOAL * bound,
    }
