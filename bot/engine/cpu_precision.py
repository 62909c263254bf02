"""fp32 or bf16 on a CPU, decided by measuring the step itself on this machine.

A table of CPU flags guessed wrong (AVX512-BF16 without AMX was slower on one Xeon and 2.1-2.4x
faster on a Zen 4 EPYC), so `auto` on a CPU times a job's own forward and backward pass through
VGG-19 at PROBE_SIDE px in both precisions, with the threads the worker will use, and takes bf16
where it is clearly faster (CLEARLY_FASTER) and agrees with fp32 on the cost and its gradient.
The answer is kept in a JSON file, one entry per CPU model, its flags, torch version and thread
count: a second or two once per machine, nothing after.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

PROBE_SIDE = 128  # px: a few hundred ms a pass on a 2-core CPU, shaped like a job's step
CLEARLY_FASTER = 0.8  # bf16 takes at most this share of fp32's time
MAX_COST_GAP = 0.02  # bf16's J within 2 % of fp32's
MIN_GRADIENT_COSINE = 0.95  # and its gradient pointing the same way
TIMED_PASSES = 3
SURELY_SLOWER = 2.0  # bf16 matmuls this many times slower than fp32: not worth a pass
FLAGS_THAT_MATTER = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


@dataclass(frozen=True)
class CpuPrecision:
    """The precision `auto` gives on this CPU, and why (for headers, ready lines and bench)."""

    precision: str  # "fp32" or "bf16"
    why: str
    fp32_ms: float | None = None
    bf16_ms: float | None = None

    def describe(self) -> str:
        return f"{self.precision} ({self.why})"


def machine_key(threads: int) -> str:
    """What the measurement depends on: the CPU model and its flags, torch, the threads."""
    model, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                name, _, value = line.partition(":")
                if name.strip() == "model name" and model == "unknown CPU":
                    model = value.strip()
                elif name.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:  # not Linux
        pass
    present = ",".join(f for f in FLAGS_THAT_MATTER if f in flags) or "-"
    return f"{model} [{present}] torch {torch.__version__} threads {threads}"


def decide(fp32_ms: float, bf16_ms: float, cost_gap: float, cosine: float) -> CpuPrecision:
    """The rule, apart from the measuring (tests give it any figures)."""
    ratio = bf16_ms / fp32_ms
    pace = f"a {PROBE_SIDE} px pass: bf16 {bf16_ms:.0f} ms, fp32 {fp32_ms:.0f} ms"
    if cost_gap > MAX_COST_GAP or cosine < MIN_GRADIENT_COSINE:
        why = f"bf16 disagreed with fp32 here (cost {cost_gap:.1%} apart, gradient cosine {cosine:.3f})"
        return CpuPrecision("fp32", why, fp32_ms, bf16_ms)
    if ratio <= CLEARLY_FASTER:
        return CpuPrecision(
            "bf16", f"measured {1 / ratio:.1f}x faster than fp32 here; {pace}", fp32_ms, bf16_ms
        )
    return CpuPrecision("fp32", f"bf16 not clearly faster here; {pace}", fp32_ms, bf16_ms)


def matmul_ratio(side: int = 384, repeats: int = 5) -> float:
    """bf16 matmul time over fp32's (best of `repeats`): a few milliseconds that spare the probe
    on CPUs whose bf16 is emulated (7x slower a pass on an AVX2-only EPYC)."""
    best = {}
    a = torch.randn(side, side)
    for dtype in (torch.float32, torch.bfloat16):
        x = a.to(dtype)
        _ = x @ x
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            _ = x @ x
            times.append(time.perf_counter() - start)
        best[dtype] = min(times)
    return best[torch.bfloat16] / best[torch.float32]


def measure(model: torch.nn.Module) -> CpuPrecision:
    """Time the forward and backward pass of a PROBE_SIDE px job in both precisions, one warm-up
    each, then TIMED_PASSES rounds taken in turn (so that both see the same load from other
    processes; the median of each), and compare their cost and gradient. A bf16 pass slower than
    twice fp32's ends the timing at once: a CPU without bf16 units takes 7x longer."""
    from bot.engine.benchmark import test_painting
    from bot.engine.devices import policy_for

    ratio = matmul_ratio()
    if ratio > SURELY_SLOWER:
        return CpuPrecision("fp32", f"bf16 matmuls {ratio:.1f}x slower than fp32 here")
    runs = {}
    for precision in ("fp32", "bf16"):
        policy = policy_for(torch.device("cpu"), precision)
        painting = test_painting(model, PROBE_SIDE, 1, policy)
        assert painting.objective is not None and painting.x is not None
        runs[precision] = (policy, painting.objective, painting.x)
    seconds: dict[str, list[float]] = {"fp32": [], "bf16": []}
    outcome: dict[str, tuple[float, torch.Tensor]] = {}
    for round_ in range(1 + TIMED_PASSES):
        for precision, (policy, objective, x) in runs.items():
            policy.prepare_model(model)
            with policy.applied():
                start = time.perf_counter()
                gradient, terms = objective.gradient(x)
                elapsed = time.perf_counter() - start
            if round_ == 0:
                outcome[precision] = (float(terms["total"].detach()), gradient.flatten().float())
            else:
                seconds[precision].append(elapsed)
        if seconds["bf16"] and seconds["bf16"][-1] > 2 * statistics.median(seconds["fp32"]):
            break
    policy_for(torch.device("cpu"), "fp32").prepare_model(model)  # as fp32 callers expect it
    (fp32_cost, fp32_grad), (bf16_cost, bf16_grad) = outcome["fp32"], outcome["bf16"]
    gap = abs(bf16_cost - fp32_cost) / max(abs(fp32_cost), 1e-30)
    cosine = float(torch.nn.functional.cosine_similarity(fp32_grad, bf16_grad, dim=0))
    fp32_ms = statistics.median(seconds["fp32"]) * 1000
    return decide(fp32_ms, statistics.median(seconds["bf16"]) * 1000, gap, cosine)


def choose(
    model: torch.nn.Module, cache_file: Path | None, threads: int | None = None
) -> CpuPrecision:
    """This machine's answer: from `cache_file` if it holds one for this machine, else measured
    (and kept there). No file: measured every time."""
    key = machine_key(threads or torch.get_num_threads())
    kept = _read(cache_file)
    choice = _kept_choice(kept.get(key))
    if choice is not None:
        return CpuPrecision(
            choice.precision, f"{choice.why}; kept in {cache_file}", choice.fp32_ms, choice.bf16_ms
        )
    choice = measure(model)
    if cache_file is not None:
        _write(cache_file, {**kept, key: asdict(choice)})
    return choice


KEPT_PRECISIONS = ("fp32", "bf16")  # what `measure` answers, the only answers a file may hold


def _kept_choice(entry: object) -> CpuPrecision | None:
    """A kept entry as `measure` wrote it, or None for anything else (an older or newer
    version's layout, a precision this version does not measure such as tf32 or auto, a hand
    edit): measured again, never trusted and never a failure at start."""
    if not isinstance(entry, dict):
        return None
    try:
        choice = CpuPrecision(**entry)
    except TypeError:
        return None
    timings_ok = all(
        t is None or (isinstance(t, int | float) and not isinstance(t, bool))
        for t in (choice.fp32_ms, choice.bf16_ms)
    )
    if choice.precision not in KEPT_PRECISIONS or not isinstance(choice.why, str) or not timings_ok:
        return None
    return choice


def _read(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict) -> None:
    """Atomically (two workers may measure at once: the last one's file stands, whole)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".precision-")
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=1)
        os.replace(tmp, path)
    except OSError:  # a read-only home: measured again next time, no harm
        pass
