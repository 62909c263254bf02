"""`stylebot bench-executor`: jobs per minute through the local pool, and the event loop's lag."""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from bot.engine import images
from bot.engine.params import StyleParams
from bot.executor.local import ExecutorConfig, LocalExecutor
from bot.executor.protocol import Job, JobDone


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench-executor", help="jobs per minute through the local worker pool and the event loop's worst lag",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--jobs", type=int, default=6, help="jobs queued at once (from 3 users)")
    p.add_argument("--size", type=int, default=128, help="output size of each job")
    p.add_argument("--steps", type=int, default=20, help="steps of each job")
    p.add_argument("--workers", type=int, default=2, help="workers per device")
    p.add_argument("--device", action="append", default=None, help="device for workers (repeatable); default: auto")
    p.add_argument("--weights", default="random", help="VGG-19 weights (speed does not depend on them)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


async def _lag_monitor(stop: asyncio.Event, samples: list[float], period: float = 0.01) -> None:
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(period)
        samples.append(time.perf_counter() - before - period)


async def measure(args: argparse.Namespace) -> dict:
    config = ExecutorConfig(weights=args.weights, workers_per_device=args.workers,
                            devices=tuple(args.device) if args.device else None,
                            per_user_limit=args.jobs, max_queued=args.jobs)
    executor = LocalExecutor(config)
    started = time.perf_counter()
    await executor.start()
    start_seconds = time.perf_counter() - started
    content = images.encode(images.to_image(_pattern(args.size, 0)), "png")
    style = images.encode(images.to_image(_pattern(args.size, 1)), "png")
    params = StyleParams(size=args.size, steps=args.steps, preview_every=5).to_dict()
    samples: list[float] = []
    stop = asyncio.Event()
    monitor = asyncio.create_task(_lag_monitor(stop, samples))
    try:
        began = time.perf_counter()
        handles = [await executor.submit(Job(user_id=i % 3, guild_id=None, content=content, styles=(style,), params=params))
                   for i in range(args.jobs)]

        async def drain(handle):
            async for _ in handle.events():
                pass
            return await handle.result()

        results = await asyncio.gather(*(drain(h) for h in handles))
        wall = time.perf_counter() - began
    finally:
        stop.set()
        await monitor
        await executor.shutdown()
    done = [r for r in results if isinstance(r, JobDone)]
    return {
        "workers": executor.worker_count,
        "jobs": args.jobs,
        "done": len(done),
        "size": args.size,
        "steps": args.steps,
        "worker_start_seconds": start_seconds,
        "wall_seconds": wall,
        "jobs_per_minute": len(done) / wall * 60,
        "mean_job_seconds": sum(r.seconds for r in done) / max(1, len(done)),
        "loop_lag_worst_ms": max(samples, default=0.0) * 1000,
        "loop_lag_p99_ms": sorted(samples)[int(len(samples) * 0.99)] * 1000 if samples else 0.0,
        "cache_hits": sum(1 for r in done if r.cache_hit),
    }


def _pattern(side: int, seed: int):
    import torch

    generator = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, max(2, side // 8), max(2, side // 8), generator=generator)
    return torch.nn.functional.interpolate(small, size=(side, side), mode="bilinear")


def run(args: argparse.Namespace) -> int:
    report = asyncio.run(measure(args))
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{report['workers']} worker(s), started in {report['worker_start_seconds']:.1f} s")
    print(f"{report['done']}/{report['jobs']} jobs of {report['size']} px x {report['steps']} steps in {report['wall_seconds']:.1f} s: "
          f"{report['jobs_per_minute']:.1f} jobs/min (mean {report['mean_job_seconds']:.1f} s on a worker; "
          f"{report['cache_hits']} style-cache hits)")
    print(f"event loop lag while jobs ran: worst {report['loop_lag_worst_ms']:.1f} ms, p99 {report['loop_lag_p99_ms']:.1f} ms")
    return 0
