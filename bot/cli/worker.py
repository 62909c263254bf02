"""`stylebot worker`: a Celery worker for one GPU (or the CPU), for STYLEBOT_EXECUTOR=celery.

Run one per GPU, on any host that reaches Redis (and the broker):

    STYLEBOT_REDIS_URL=redis://queue-host:6379/0 stylebot worker --device cuda:0

With a batch of one (the default on the CPU) it is Celery's prefork pool: the main process never
imports torch, and the one child that runs jobs loads VGG-19 once. With a larger batch (the
default on CUDA) it is the threads pool: each task thread hands its job to one in-process
Batcher, which steps them together. Either way the worker announces itself in Redis, with as many
slots as its batch, once the model is loaded. Settings come from the same STYLEBOT_* variables as
the bot's.
"""

from __future__ import annotations

import argparse
import logging
import re
import socket

from bot.cli import CliError, add_command, add_log_level
from bot.extras import require
from bot.protocol.messages import CUDA_BATCH_SIZE, default_batch_size

EXIT_SETTINGS, EXIT_ENVIRONMENT = 2, 3


ABOUT = """run a Celery worker for one GPU (the bot with STYLEBOT_EXECUTOR=celery sends it jobs)

Takes jobs from the Celery queue (STYLEBOT_REDIS_URL, STYLEBOT_BROKER_URL) and runs them on one
device until SIGTERM, which lets the running jobs end. Exits 2 on bad settings and 3 when the
device or the VGG-19 weights cannot be used.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "worker", ABOUT, run)
    p.add_argument(
        "--device",
        default="auto",
        help="the device it runs jobs on: auto (the first CUDA GPU, else MPS, else the CPU), "
        "cuda:N, mps or cpu",
    )
    p.add_argument(
        "--name",
        default=None,
        help="its name in Redis and in Celery (default: HOST/DEVICE); unique per worker",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for torch, OpenCV and the video codecs (default: the cores this process may use)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"jobs stepped together (default: {CUDA_BATCH_SIZE} on CUDA, 1 elsewhere). 1: Celery's prefork pool, "
        "with its soft and hard time limits; more: a thread per job feeding one batcher (the "
        "job time limit is then enforced by the job itself)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve this worker's Prometheus metrics here (GET /metrics); overrides "
        "STYLEBOT_METRICS_PORT (default: off)",
    )
    p.add_argument(
        "--metrics-host",
        default=None,
        help="the address the metrics listen on; overrides STYLEBOT_METRICS_HOST (default "
        "127.0.0.1; 0.0.0.0 in a container)",
    )
    add_log_level(p)


def listen_for_metrics(host: str, port: int) -> socket.socket:
    """The metrics port, bound and listening from the first second (before the model loads, so
    that of two workers started together on one port the second stops at once); the worker's
    metrics server serves on this very socket (bot/worker/celery_task.py). CliError (exit 2)
    when another process has it: Prometheus would see only that one."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart reuses it at once
    try:
        listener.bind((host, port))
        listener.listen()
    except OSError as exc:
        listener.close()
        raise CliError(
            f"the metrics port {host}:{port} is taken ({exc.strerror or exc}): give each worker "
            "on a host its own STYLEBOT_METRICS_PORT or --metrics-port",
            EXIT_SETTINGS,
        ) from None
    return listener


# a long function (over 60 lines): checks, then the Celery worker's start, in the order a host reads them
def run(args: argparse.Namespace) -> int:
    require("celery", "stylebot worker")
    from bot.config import (
        ConfigError,
        WorkerSettings,
        load_settings,
        precision_cache_file,
        unknown_variables,
    )
    from bot.engine.weights import WeightsError, resolve_weights
    from bot.executor.pool import WorkerStartError, check_device
    from bot.logs import LogConfig, configure_logging
    from bot.protocol.messages import RunnerSpec

    try:
        settings = load_settings(WorkerSettings)
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_SETTINGS) from None
    weights = settings.vgg19_weights
    try:
        resolve_weights(weights)  # found, not loaded: the worker process loads them
    except WeightsError as exc:
        raise CliError(f"STYLEBOT_VGG19_WEIGHTS: {exc}", EXIT_ENVIRONMENT) from None
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", args.device):
        raise CliError(
            f"unknown device {args.device!r}; use auto, cuda:N, cpu or mps", EXIT_SETTINGS
        )
    try:  # in a short-lived process, before this one imports torch (bot/worker/)
        device = check_device(args.device)
    except WorkerStartError as exc:
        raise CliError(f"--device {args.device}: {exc}", EXIT_ENVIRONMENT) from None
    batch = args.batch_size or default_batch_size(device)
    if batch < 1:
        raise CliError("--batch-size must be at least 1", EXIT_SETTINGS)
    if args.metrics_port is not None and not 1 <= args.metrics_port <= 65535:
        raise CliError("--metrics-port must be between 1 and 65535", EXIT_SETTINGS)
    metrics_port = args.metrics_port or settings.metrics_port
    metrics_host = args.metrics_host or settings.metrics_host
    # held from now on (a prefork child inherits it): two workers on one port cannot both start
    metrics_listener = listen_for_metrics(metrics_host, metrics_port) if metrics_port else None
    level = args.log_level or settings.log_level
    name = args.name or f"{socket.gethostname()}/{device}"
    configure_logging(
        LogConfig(
            level=getattr(logging, level),
            json=settings.log_format == "json",
            who=f"worker {name}",
        )
    )
    for warning in unknown_variables(cls=WorkerSettings):
        logging.getLogger("stylebot.worker").warning("%s", warning)
    from bot.worker.celery_task import WorkerIdentity, make_worker_app  # imports torch

    identity = WorkerIdentity(
        name=name,
        spec=RunnerSpec(
            device=device,
            weights=weights,
            threads=args.threads,
            limits=settings.image_limits,
            memory_limit=settings.memory_limit_bytes,
            shape_buckets=settings.shape_buckets and batch > 1,
            precision=settings.precision,
            precision_cache=str(precision_cache_file()),
        ),
        config=settings.celery,
        batch_size=batch,
        metrics_listener=metrics_listener,
    )
    app = make_worker_app(identity)
    app.worker_main(
        [
            "worker",
            # one process runs the jobs of this device: a prefork child for one job at a time,
            # or this process, whose task threads feed one batcher
            "--pool=prefork" if batch == 1 else "--pool=threads",
            f"--concurrency={batch}",
            f"--queues={identity.config.queue}",
            f"--hostname={name.replace('/', '-')}@%h",
            f"--loglevel={level}",
            "--without-gossip",
            "--without-mingle",
        ]
    )
    return 0
