"""Speed measurements of the engine, for `stylebot bench` and the GPU check."""

from __future__ import annotations

import resource
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from bot.engine import colour
from bot.engine.devices import DevicePolicy
from bot.engine.painting import Painting
from bot.engine.params import StyleParams, check_pictures


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(policy: DevicePolicy, seconds: float = 1.0) -> float:
    """The best matmul rate at the policy's precision: the practical roofline of this device.
    On a CPU the side grows from 256 to 2048 only while a product takes under 0.1 s: a CPU that
    emulates bf16 (60x slower than fp32 on an AVX2-only EPYC) is measured in seconds, not
    minutes."""
    device = policy.device
    dtype = policy.autocast_dtype or torch.float32
    n = 256 if device.type == "cpu" else 8192
    while True:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        start = time.perf_counter()
        _ = a @ b
        synchronize(device)
        if device.type != "cpu" or n >= 2048 or time.perf_counter() - start > 0.1:
            break
        n *= 2
    with policy.applied():
        _ = a @ b
        synchronize(device)
        best = float("inf")
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            _ = a @ b
            synchronize(device)
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


# The convolution whose rate is this machine's limit for the step (issue 49): one of VGG-19's own
# 3x3 layers (conv3_1's shape, 128 -> 256 channels) on a 128 px square, forward: the work that is
# most of a step's FLOPs, in the step's precision and layout.
LIMIT_CONV = (128, 256, 128)  # in channels, out channels, side


def conv_gflops(policy: DevicePolicy, seconds: float = 1.0) -> float:
    """The best rate of a 3x3 convolution (LIMIT_CONV) at the policy's precision and memory
    layout, forward only: the rate the step's FLOPs could run at on this machine, so that the
    step's own rate over it (`limit_share`) says how close the step is to the machine's limit. A
    CPU that emulates bf16 is measured on a quarter of the side, in about the same seconds."""
    device = policy.device
    channels_in, channels_out, side = LIMIT_CONV
    dtype = policy.autocast_dtype or torch.float32
    layout = torch.channels_last if policy.channels_last else torch.contiguous_format
    conv = torch.nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False).to(device)
    conv = conv.to(memory_format=layout).requires_grad_(False)  # type: ignore[call-overload]
    with policy.applied(), torch.no_grad():
        for _ in range(3):  # the side a first call can afford (an emulated bf16 is 40x slower)
            x = torch.randn(1, channels_in, side, side, device=device).to(memory_format=layout)
            start = time.perf_counter()
            conv(x.to(dtype))
            synchronize(device)
            if device.type != "cpu" or time.perf_counter() - start < 0.05 or side <= 32:
                break
            side //= 2
        x = x.to(dtype)
        best = float("inf")
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            conv(x)
            synchronize(device)
            best = min(best, time.perf_counter() - start)
    return 2 * channels_in * channels_out * 9 * side * side / best / 1e9


def limit_share(result: dict, conv_rate: float) -> float:
    """The step's rate (its FLOPs over its whole time: the network, the losses, the optimiser)
    over the machine's convolution rate: 1 would be a step that runs at the limit."""
    return result["gflop_per_step"] / (result["step_ms"] / 1000) / conv_rate


def test_images(side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth content picture and a noisy style picture, (1, 3, side, side) on the CPU."""
    generator = torch.Generator().manual_seed(side)
    content = torch.rand(1, 3, max(2, side // 8), max(2, side // 8), generator=generator)
    content = torch.nn.functional.interpolate(content, size=(side, side), mode="bilinear")
    style = torch.rand(1, 3, side, side, generator=generator)
    return content, style


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def test_painting(model, side: int, steps: int, policy: DevicePolicy, plan=None) -> Painting:
    """A job of `side` px square (a smooth content, a noisy style), one pyramid level of `steps`
    steps: what a benchmark times, through the same Painting that jobs run."""
    content, style = test_images(side)
    params = StyleParams(size=side, steps=steps, seed=0, pyramid_levels=1)
    check_pictures(params.validate(), side, side, [(side, side)])  # a size from the command line
    return Painting(
        model, colour.to_image(content[0]), [colour.to_image(style[0])], params, policy, plan=plan
    )


def measure(model, side: int, steps: int, warmup: int, policy: DevicePolicy) -> dict:
    """Forward+backward alone and a whole job step (median ms), FLOPs and peak memory."""
    device = policy.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    painting = test_painting(model, side, warmup + steps, policy)
    objective, x = painting.objective, painting.x
    assert objective is not None and x is not None
    with policy.applied():
        fwd_bwd = []
        for _ in range(warmup + steps):
            synchronize(device)
            start = time.perf_counter()
            objective.gradient(x)
            synchronize(device)
            fwd_bwd.append(time.perf_counter() - start)
        with FlopCounterMode(display=False) as counter:  # it counts backward(), not grad()
            loss, _ = objective(x)
            loss.backward()
        x.grad = None
    stamps = [time.perf_counter()]

    def stamp() -> None:
        synchronize(device)
        stamps.append(time.perf_counter())

    painting.run(after_step=stamp)
    step_seconds = statistics.median(
        b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1 :], strict=False)
    )
    fwd_bwd_seconds = statistics.median(fwd_bwd[warmup:])
    flops = counter.get_total_flops()
    return {
        "side": side,
        "precision": policy.precision,
        "forward_backward_ms": fwd_bwd_seconds * 1000,
        "step_ms": step_seconds * 1000,
        "gflop_per_step": flops / 1e9,
        "gflops": flops / fwd_bwd_seconds / 1e9,
        "peak_memory_mb": peak_memory_mb(device),
    }


def time_default_job(model, side: int, policy: DevicePolicy) -> dict:
    """The default job (StyleParams' defaults: its levels, steps and early stop) on the test
    pictures at `side` px: its seconds from the pictures to the result, the work it did (full-size
    step equivalents) and where its last level converged. The time to today's default quality,
    where the default reaches it (docs/benchmarks.md); with random weights the early stop sees a
    different objective than with real ones."""
    content, style = test_images(side)
    params = StyleParams(size=side, seed=0)
    check_pictures(params.validate(), side, side, [(side, side)])  # a size from the command line
    synchronize(policy.device)
    started = time.perf_counter()
    painting = Painting(
        model, colour.to_image(content[0]), [colour.to_image(style[0])], params, policy
    )
    result = painting.run()
    synchronize(policy.device)
    return {
        "job_s": time.perf_counter() - started,
        "job_work": painting.work_done,
        "job_planned_work": painting.work,
        "job_converged_at": result.converged_at,
    }


def measure_painting(model, side: int, steps: int, policy: DevicePolicy, plan) -> dict:
    """A test painting run for `steps` steps with a memory plan (bot/engine/memory.py): seconds
    to set up (targets), median seconds per step after the first, and the peak memory of this
    process (run it alone in a fresh process)."""
    device = policy.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    baseline = peak_memory_mb(device)  # the process (CPU) or the model (CUDA) before the job
    started = time.perf_counter()
    painting = test_painting(model, side, steps, policy, plan)
    synchronize(device)
    setup = time.perf_counter() - started
    stamps = [time.perf_counter()]

    def stamp() -> None:
        synchronize(device)
        stamps.append(time.perf_counter())

    painting.run(after_step=stamp)
    per_step = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    tiles = painting.objective_tiles
    return {
        "side": side,
        "precision": policy.precision,
        "tile": plan.tile,
        "tiles": tiles,
        "history": plan.history,
        "estimate_mb": plan.bytes / 2**20,
        "setup_s": setup,
        "step_s": statistics.median(per_step[1:] or per_step),
        "peak_memory_mb": peak_memory_mb(device),
        "baseline_mb": baseline,
    }
