"""One thread budget per painting process, and threads that sleep instead of spinning.

A host shares its cores: the bot, the workers, a database, other programs. OpenMP's threads
(torch's intra-op pool) busy-wait between parallel regions by default, and a pool wider than the
cores it gets fights itself and everything else: a 48-frame clip that painted in 2.2 s alone took
39 s while four other processes kept the two cores busy (18x slower for 3x less CPU); with
OMP_WAIT_POLICY=PASSIVE 10 s, with one thread 8.3 s. So every process that paints:
- asks OpenMP for passive waiting, before torch is imported (`quiet_openmp`; a host's own
  OMP_WAIT_POLICY is kept);
- uses one budget of threads for torch's intra-op pool (one inter-op thread), OpenCV's optical
  flow and PyAV's codecs (`apply_budget`), taken from the cores this process may run on
  (`available_cores`: its CPU affinity and its cgroup's quota, not the machine's core count).
No torch at the top: the bot side imports this module too.
"""

from __future__ import annotations

import math
import os

_codec_threads = 0  # PyAV's thread_count: 0 lets FFmpeg choose (before a budget is applied)


def quiet_openmp() -> None:
    """OpenMP threads sleep when idle (OMP_WAIT_POLICY=PASSIVE) unless the host said otherwise.
    OpenMP reads it once, when torch loads: call this before importing torch."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def available_cores() -> int:
    """The cores this process may use: its CPU affinity, capped by its cgroup's CPU quota
    (cgroup v2 cpu.max, as Docker's --cpus and Kubernetes' limits set it)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as limit:
            quota, period = limit.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def default_budget() -> int:
    """A process's budget when none is given: $OMP_NUM_THREADS where the host set it, else every
    core this process may use."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else available_cores()


def apply_budget(threads: int) -> int:
    """Give torch (intra-op; one inter-op thread), OpenCV and PyAV's codecs `threads` threads
    each: they run one after another in a painting process, never at once. Returns `threads`."""
    global _codec_threads
    threads = max(1, threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # for what starts OpenMP after this
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or inter-op work already ran: it keeps its pool
        pass
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:  # the engine extra brings it; a bare test install may not
        pass
    _codec_threads = threads
    return threads


def codec_threads() -> int:
    """PyAV's thread_count for decoders and encoders (0: FFmpeg's choice, before a budget)."""
    return _codec_threads
