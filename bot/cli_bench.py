"""`stylebot bench`: how fast one style-transfer step is here, against this machine's roofline."""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time

import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from bot.engine import images
from bot.engine.params import StyleParams
from bot.engine.transfer import PRECISIONS, Objective, stylize
from bot.engine.vgg import load_vgg19, parse_device


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench", help="measure ms per step, FLOPs, GFLOP/s against the matmul roofline, and peak memory",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--sizes", default="256,512", help="comma-separated square sizes in pixels")
    p.add_argument("--steps", type=int, default=10, help="timed L-BFGS steps per size")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="CUDA precision")
    p.add_argument("--weights", default="random",
                   help="VGG-19 weights (speed does not depend on them; default random)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(handler=run)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device: torch.device, seconds: float = 2.0) -> float:
    """Best fp32 (strict, no TF32) matmul rate: the practical roofline of this device."""
    n = 2048 if device.type == "cpu" else 8192
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        a @ b
        _synchronize(device)
        best = float("inf")
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            a @ b
            _synchronize(device)
            best = min(best, time.perf_counter() - start)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    return 2 * n**3 / best / 1e9


def _test_images(side: int) -> tuple[Image.Image, Image.Image]:
    generator = torch.Generator().manual_seed(side)
    content = torch.rand(1, 3, side // 8, side // 8, generator=generator)
    content = torch.nn.functional.interpolate(content, size=(side, side), mode="bilinear")
    style = torch.rand(1, 3, side, side, generator=generator)
    return images.to_image(content), images.to_image(style)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure_size(model, side: int, steps: int, warmup: int, device: torch.device, precision: str) -> dict:
    content, style = _test_images(side)
    params = StyleParams(size=side, steps=warmup + steps, seed=0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    stamps: list[float] = []
    stylize(model, content, [style], params, on_progress=lambda p: stamps.append(time.perf_counter()),
            precision=precision)
    per_step = statistics.median(b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1 :], strict=False))
    content_t = images.to_tensor(content).to(device)
    objective = Objective(model, params, content_t, [images.to_tensor(style).to(device)], (1.0,), None)
    x = content_t.clone().requires_grad_(True)
    with FlopCounterMode(display=False) as counter:
        loss, _ = objective(x)
        loss.backward()
    flops = counter.get_total_flops()
    return {
        "side": side,
        "ms_per_step": per_step * 1000,
        "gflop_per_step": flops / 1e9,
        "gflops": flops / per_step / 1e9,
        "peak_memory_mb": _peak_memory_mb(device),
    }


def run(args: argparse.Namespace) -> int:
    device = parse_device(args.device)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    model = load_vgg19(args.weights, device=device)
    roofline = matmul_gflops(device)
    results = [measure_size(model, side, args.steps, args.warmup, device, args.precision) for side in sizes]
    for r in results:
        r["roofline_ratio"] = r["gflops"] / roofline
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()})",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "precision": args.precision if device.type == "cuda" else "fp32",
        "matmul_fp32_gflops": roofline,
        "sizes": results,
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"device {report['device']}, torch {report['torch']}, {report['threads']} threads, precision {report['precision']}")
    print(f"fp32 matmul roofline: {roofline:.1f} GFLOP/s")
    print(f"{'size':>6} {'ms/step':>9} {'GFLOP/step':>11} {'GFLOP/s':>9} {'of roofline':>12} {'peak MB':>9}")
    for r in results:
        print(f"{r['side']:>6} {r['ms_per_step']:>9.1f} {r['gflop_per_step']:>11.2f} {r['gflops']:>9.1f} "
              f"{r['roofline_ratio']:>12.2f} {r['peak_memory_mb']:>9.0f}")
    sys.stdout.flush()
    return 0
