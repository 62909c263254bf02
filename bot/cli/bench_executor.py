"""`stylebot bench-executor`: jobs per minute through the local pool or Celery workers, waits,
start and progress latency, and the event loop's lag."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from bot.cli import CliError, UsageError, add_command
from bot.cli.common import add_model_options, weights_of
from bot.cli.job_mix import DEFAULT_SIZE, MIXES, describe, draw
from bot.engine.params import StyleParams, fit_size
from bot.media import imaging
from bot.protocol.messages import Job, JobDone, JobFailed, JobProgress, JobStarted, Terminal
from bot.threads import available_cores

# a long function (over 60 lines): one declaration per option, read as the command's manual
ABOUT = """jobs per minute through the local pool or Celery workers, waits, latency, event-loop lag

Queues JOBS jobs at once from several members, with content images of the given shapes (or a
named --mix of members' shapes and sizes), and waits for all of them; reports jobs a minute, the
waits and job times, and, for the local pool, the share of time the workers painted and the jobs
per batch; then runs --latency-jobs short jobs one at a time on idle workers to measure
submit-to-start latency. Exits 1 if any job did not finish.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "bench-executor", ABOUT, run)
    p.add_argument(
        "--executor",
        choices=("local", "celery"),
        default="local",
        help="local: worker processes of this command; celery: the `stylebot worker`s on "
        "STYLEBOT_REDIS_URL (or those --start-workers starts) (default: %(default)s)",
    )
    p.add_argument(
        "--start-workers",
        type=int,
        default=0,
        help="celery: start this many `stylebot worker --device cpu` processes here first "
        "(default: %(default)s: use the running ones)",
    )
    p.add_argument(
        "--batch-sizes",
        default="1",
        help="local: jobs each worker steps together; several (e.g. 1,8) run one after the other "
        "and are printed side by side (default: %(default)s)",
    )
    p.add_argument(
        "--worker-threads",
        type=int,
        default=None,
        help="celery: torch threads of each started worker (default: the cores shared between them)",
    )
    p.add_argument(
        "--latency-jobs",
        type=int,
        default=10,
        help="short jobs sent one at a time to measure submit-to-start latency (default: %(default)s)",
    )
    p.add_argument("--jobs", type=int, default=6, help="jobs queued at once (default: %(default)s)")
    p.add_argument(
        "--users",
        type=int,
        default=3,
        help="members the jobs come from, in turn (default: %(default)s)",
    )
    p.add_argument(
        "--size",
        type=int,
        default=None,
        help="output size (longest side) of each job (default: 128); with --mix, the size of "
        "its default jobs (default: 512), its other sizes in proportion",
    )
    p.add_argument(
        "--shapes",
        default="1x1",
        help="comma-separated aspect ratios of the content images, used in turn, e.g. "
        "1x1,4x3,3x4,16x9 (default: %(default)s)",
    )
    p.add_argument(
        "--mix",
        choices=tuple(MIXES),
        default=None,
        help="instead of --size and --shapes: each job's shape and size drawn from this mix of "
        "members' pictures (bot/cli/job_mix.py; members: phone photos 4:3 and 3:4, 16:9, 9:16, "
        "squares, screenshots, odd crops, mostly 512 px)",
    )
    p.add_argument(
        "--mix-seed", type=int, default=0, help="the seed of the mix's order (default: %(default)s)"
    )
    p.add_argument(
        "--steps",
        type=int,
        default=20,
        help="steps of each job; 0: its size's schedule, as a member's job without steps "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--workers", type=int, default=2, help="workers per device (default: %(default)s)"
    )
    p.add_argument(
        "--device",
        action="append",
        default=None,
        help="device for workers (repeatable; default: auto)",
    )
    add_model_options(p, precision=None, device=False)
    p.add_argument("--json", action="store_true", help="print one JSON object")


async def _lag_monitor(stop: asyncio.Event, samples: list[float], period: float = 0.01) -> None:
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(period)
        samples.append(time.perf_counter() - before - period)


def parse_shapes(text: str) -> list[tuple[int, int]]:
    try:
        shapes = [tuple(int(v) for v in s.lower().split("x")) for s in text.split(",") if s.strip()]
    except ValueError:
        shapes = []
    if not shapes or any(len(s) != 2 or min(s) < 1 for s in shapes):
        raise UsageError(f"--shapes takes ratios such as 1x1,4x3,16x9, not {text!r}")
    return shapes  # type: ignore[return-value]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def content_image(width: int, height: int) -> bytes:
    from bot.engine import colour
    from bot.engine.benchmark import test_images

    content, _ = test_images(max(width, height))
    return imaging.encode(colour.to_image(content).resize((width, height)), "png")


def job_pictures(args: argparse.Namespace) -> list[tuple[bytes, tuple[int, int], int]]:
    """Each job's content, its size as uploaded, and the job's size: from --mix, or --shapes at
    --size in turn."""
    if args.mix:
        mixed = draw(args.mix, args.jobs, args.mix_seed, default_size=args.size or DEFAULT_SIZE)
        shapes = sorted({(m.width, m.height) for m in mixed})
        pictures = {s: content_image(*s) for s in shapes}
        return [(pictures[(m.width, m.height)], (m.width, m.height), m.size) for m in mixed]
    args.size = args.size or 128
    shapes = [fit_size(w, h, args.size) for w, h in parse_shapes(args.shapes)]
    pictures = {s: content_image(*s) for s in set(shapes)}
    return [
        (pictures[s], s, args.size) for s in (shapes[i % len(shapes)] for i in range(args.jobs))
    ]


async def measure(args: argparse.Namespace) -> dict:
    from bot.engine import colour
    from bot.engine.benchmark import test_images
    from bot.executor.dispatch import ExecutorConfig

    pictures = job_pictures(args)
    style = imaging.encode(colour.to_image(test_images(max(p[2] for p in pictures))[1]), "png")
    config = ExecutorConfig(
        weights=weights_of(args),
        workers_per_device=args.workers,
        devices=tuple(args.device) if args.device else None,
        per_user_limit=args.jobs,
        max_queued=args.jobs,
        batch_size=args.batch_size,
    )
    workers = _start_celery_workers(args) if args.executor == "celery" else []
    try:
        return await _measure(args, config, pictures, style)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait()


# a long function (over 60 lines): one benchmark scenario, start to report, read in order
async def _measure(args, config, pictures, style) -> dict:
    from bot.executor.dispatch import Dispatcher
    from bot.metrics import BotMetrics

    metrics = BotMetrics()  # the workers' totals arrive here (busy share, jobs per batch)

    if args.executor == "celery":
        from bot.config import WorkerSettings, load_settings
        from bot.executor.celery.backend import CeleryBackend

        executor = Dispatcher(CeleryBackend(load_settings(WorkerSettings).celery), config, metrics)
    else:
        from bot.executor.pool import LocalExecutor

        executor = LocalExecutor(config, metrics)
    started = time.perf_counter()
    await executor.start()
    if args.executor == "celery":
        await _wait_for_celery_workers(executor, args.start_workers)
    start_seconds = time.perf_counter() - started
    workers = executor.backend.workers_ready()
    every = max(1, args.steps // 10) if args.steps else StyleParams().preview_every
    samples: list[float] = []
    stop = asyncio.Event()
    monitor = asyncio.create_task(_lag_monitor(stop, samples))
    waits: list[float] = []
    progress_lags: list[float] = []
    start_lags: list[float] = []
    try:
        began = time.perf_counter()
        handles = [
            await executor.submit(
                Job(
                    user_id=i % args.users,
                    guild_id=None,
                    content=content,
                    styles=(style,),
                    params=StyleParams(size=size, steps=args.steps, preview_every=every),
                    shape=shape,  # as the bot measures it (bot/jobs/intake.py)
                )
            )
            for i, (content, shape, size) in enumerate(pictures)
        ]

        async def drain(handle) -> Terminal:
            async for event in handle.events():
                if isinstance(event, JobStarted):
                    waits.append(time.perf_counter() - began)
                elif isinstance(event, JobProgress) and event.sent_at:
                    progress_lags.append(time.time() - event.sent_at)
            return await handle.result()

        results = await asyncio.gather(*(drain(h) for h in handles))
        wall = time.perf_counter() - began
        painted = await _painted(executor, metrics, wall, local=args.executor == "local")
        short = StyleParams(size=32, steps=1)
        for i in range(args.latency_jobs):  # one at a time, on idle workers
            sent = time.perf_counter()
            handle = await executor.submit(
                Job(user_id=i, guild_id=None, content=pictures[0][0], styles=(style,), params=short)
            )
            async for event in handle.events():
                if isinstance(event, JobStarted):
                    start_lags.append(time.perf_counter() - sent)
            await handle.result()
    finally:
        stop.set()
        await monitor
        await executor.shutdown()
    done = [r for r in results if isinstance(r, JobDone)]
    failed = [r for r in results if not isinstance(r, JobDone)]
    job_seconds = [r.seconds for r in done]
    return {
        "workers": workers,
        "jobs": args.jobs,
        "done": len(done),
        "failed": [
            f"{r.kind}: {r.message}" if isinstance(r, JobFailed) else f"cancelled: {r.reason}"
            for r in failed
        ],
        "size": args.size if not args.mix else None,
        "mix": describe(args.mix, args.size or DEFAULT_SIZE) if args.mix else None,
        "shapes": (
            sorted({f"{w}x{h}" for _, (w, h), _ in pictures})
            if args.mix
            else [s.strip() for s in args.shapes.split(",") if s.strip()]
        ),
        "steps": args.steps,
        "worker_start_seconds": start_seconds,
        "wall_seconds": wall,
        "jobs_per_minute": len(done) / wall * 60,
        "wait_p50_seconds": percentile(waits, 0.5),
        "wait_p95_seconds": percentile(waits, 0.95),
        "job_p50_seconds": percentile(job_seconds, 0.5),
        "job_p95_seconds": percentile(job_seconds, 0.95),
        "mean_job_seconds": statistics.fmean(job_seconds) if job_seconds else 0.0,
        "executor": args.executor,
        "batch_size": args.batch_size,
        "start_latency_p50_ms": percentile(start_lags, 0.5) * 1000,
        "start_latency_p95_ms": percentile(start_lags, 0.95) * 1000,
        "progress_latency_p50_ms": percentile(progress_lags, 0.5) * 1000,
        "progress_latency_p95_ms": percentile(progress_lags, 0.95) * 1000,
        "loop_lag_worst_ms": max(samples, default=0.0) * 1000,
        "loop_lag_p99_ms": percentile(samples, 0.99) * 1000,
        "cache_hits": sum(1 for r in done if r.cache_hit),
        **painted,
    }


async def _painted(executor, metrics, wall: float, *, local: bool) -> dict:
    """The share of `wall` the local workers spent stepping jobs, and their jobs per batch, from
    the totals they report (bot/worker/stats.py, after the last job's report has arrived); None
    for Celery workers, whose totals are on their own ports."""
    from bot.protocol.messages import STATS_INTERVAL

    if not local:
        return {"busy_share": None, "jobs_per_batch": None}
    await asyncio.sleep(STATS_INTERVAL + 0.5)
    registry = metrics.registry

    def total(name: str) -> float:
        return sum(
            s.value for family in registry.collect() for s in family.samples if s.name == name
        )

    workers = max(1, executor.backend.workers_ready())
    batches = total("stylebot_batches_total")
    return {
        "busy_share": total("stylebot_device_busy_seconds_total") / (wall * workers),
        "jobs_per_batch": total("stylebot_job_steps_total") / batches if batches else None,
    }


def run(args: argparse.Namespace) -> int:
    if (
        args.jobs < 1
        or args.users < 1
        or args.steps < 0
        or args.workers < 1
        or args.latency_jobs < 0
    ):
        raise UsageError("--jobs, --users and --workers must be at least 1, --steps at least 0")
    try:
        sizes = [int(v) for v in args.batch_sizes.split(",") if v.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise UsageError(f"--batch-sizes takes numbers such as 1,8, not {args.batch_sizes!r}")
    if args.executor == "celery" and sizes != [1]:
        raise UsageError(
            "--batch-sizes applies to the local pool (the Celery workers this command starts "
            "run on the CPU, with a batch of one)"
        )
    reports = []
    for size in sizes:
        args.batch_size = size
        reports.append(asyncio.run(measure(args)))
    if args.json:
        print(json.dumps(reports[0] if len(reports) == 1 else {"runs": reports}))
    else:
        for report in reports:
            _print(report)
        if len(reports) > 1:
            print("side by side:")
            print("  batch  jobs/min  wait p50/p95 s  job p50/p95 s  loop lag worst ms")
            for r in reports:
                print(
                    f"  {r['batch_size']:>5}  {r['jobs_per_minute']:>8.1f}  "
                    f"{r['wait_p50_seconds']:>6.1f} / {r['wait_p95_seconds']:<5.1f}  "
                    f"{r['job_p50_seconds']:>5.1f} / {r['job_p95_seconds']:<5.1f}  "
                    f"{r['loop_lag_worst_ms']:>8.1f}"
                )
    failed = [f for r in reports for f in r["failed"]]
    if failed:
        total = sum(r["jobs"] for r in reports)
        raise CliError(
            f"{len(failed)} of {total} jobs did not finish: " + "; ".join(sorted(set(failed)))
        )
    return 0


def _print(report: dict) -> None:
    print(
        f"{report['executor']}: {report['workers']} worker(s), batch {report['batch_size']}, "
        f"ready in {report['worker_start_seconds']:.1f} s"
    )
    what = f"{report['size']} px ({', '.join(report['shapes'])})"
    if report["mix"]:
        what = f"the mix {report['mix']}"
    print(
        f"{report['done']}/{report['jobs']} jobs of {what} x {report['steps']} steps in "
        f"{report['wall_seconds']:.1f} s: {report['jobs_per_minute']:.1f} jobs/min; "
        f"{report['cache_hits']} style-cache hits"
    )
    if report["busy_share"] is not None:
        per_batch = report["jobs_per_batch"]
        print(
            f"workers painting {100 * report['busy_share']:.0f} % of the time; "
            f"{per_batch or 0:.1f} jobs per batch (of {report['batch_size']})"
        )
    print(
        f"wait before start p50 {report['wait_p50_seconds']:.1f} s, p95 {report['wait_p95_seconds']:.1f} s; "
        f"job time p50 {report['job_p50_seconds']:.1f} s, p95 {report['job_p95_seconds']:.1f} s"
    )
    print(
        f"submit to start on an idle worker p50 {report['start_latency_p50_ms']:.0f} ms, "
        f"p95 {report['start_latency_p95_ms']:.0f} ms; progress from worker to bot "
        f"p50 {report['progress_latency_p50_ms']:.1f} ms, p95 {report['progress_latency_p95_ms']:.1f} ms"
    )
    print(
        f"event loop lag while jobs ran: worst {report['loop_lag_worst_ms']:.1f} ms, p99 {report['loop_lag_p99_ms']:.1f} ms"
    )


def _start_celery_workers(args: argparse.Namespace) -> list:
    """`stylebot worker --device cpu` processes, splitting this machine's cores between them."""
    import os
    import subprocess
    import sys

    count = args.start_workers
    threads = args.worker_threads or max(1, available_cores() // max(1, count))
    env = {**os.environ, "STYLEBOT_VGG19_WEIGHTS": weights_of(args)}
    return [
        subprocess.Popen(
            [sys.executable, "-m", "bot", "worker", "--device", "cpu", "--name", f"bench-{i}",
             "--threads", str(threads), "--log-level", "WARNING"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(count)
    ]  # fmt: skip


async def _wait_for_celery_workers(executor, wanted: int, timeout: float = 300) -> None:
    """Until `wanted` workers (at least one) have announced themselves."""
    deadline = time.perf_counter() + timeout
    while executor.backend.workers_ready() < max(1, wanted):
        if time.perf_counter() > deadline:
            raise CliError(
                f"only {executor.backend.workers_ready()} Celery worker(s) announced themselves in "
                f"{timeout:.0f} s; is `stylebot worker` running against STYLEBOT_REDIS_URL?"
            )
        await asyncio.sleep(0.5)
