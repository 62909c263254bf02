"""`stylebot gpu-check`: everything a maintainer needs to know about a CUDA machine, in one JSON.

1. `stylize` once per optimiser and precision: each output finite and different from the content,
   scored with the quality measure against the fp32 L-BFGS output; and the `stylize` command
   itself once, as a person runs it;
2. `bench` at 512, 1024 and 2048 px in fp32, TF32 and bf16, and the whole default job at 512 and
   1024 px in the default precision;
3. `bench-executor` with the `members` mix of shapes and sizes (bot/cli/job_mix.py), batching
   off and on: jobs a minute, waits, the share of time the GPU paints, jobs per batch;
4. `bench-tiling` at 2048 and 4096 px, whole and within an 8 GB limit (tiled);
5. `bench-clip`: a 16-frame clip at 384 px, frames alone and steady, seconds per frame against
   a still of the same size;
6. the tests marked `gpu`.
Each part runs in its own process, so one crash does not hide the others. Exits 1 if any part
failed. `--quick` runs the same parts at tiny sizes (how CI checks this command on the CPU).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bot.cli import CliError, add_command
from bot.cli.common import weights_of
from bot.engine.params import WEIGHTS_ENV
from bot.executor.pool import WorkerStartError, check_device

FULL = {
    "stylize_size": 512,
    "stylize_steps": 100,
    "bench_sizes": "512,1024,2048",
    "bench_steps": 5,
    "job_sizes": "512,1024",
    "executor_jobs": 64,
    "executor_size": 512,
    "executor_steps": 0,  # the default job: its size's schedule
    "batch_sizes": "1,16",
    "precisions": "fp32,tf32,bf16",
    "tiling_sizes": "2048,4096",
    "tiling_tile": None,
    "clip_frames": 16,
    "clip_size": 384,
    "clip_steps": 50,
}
QUICK = {
    "stylize_size": 48,
    "stylize_steps": 4,
    "bench_sizes": "32",
    "bench_steps": 2,
    "job_sizes": "32",
    "executor_jobs": 3,
    "executor_size": 96,  # the mix's smallest jobs are half of it
    "executor_steps": 3,
    "batch_sizes": "1,2",
    "precisions": "fp32,bf16",
    "tiling_sizes": "160",
    "tiling_tile": "64",
    "clip_frames": 3,
    "clip_size": 32,
    "clip_steps": 2,
}
MIX = "members"


ABOUT_GPU_CHECK = """run the GPU checks and benchmarks on this machine and print one JSON summary

Runs stylize per optimiser and precision, bench at 512-2048 px, bench-executor with a mix of shapes,
bench-tiling at 2048 and 4096 px within 8 GB and the tests marked gpu; prints one JSON object;
exits 1 if any part failed. About 3 minutes on one H200.
"""


ABOUT_GPU_CHECK_STYLIZE = """Part of gpu-check (internal): stylize per optimiser and precision.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "gpu-check", ABOUT_GPU_CHECK, run)
    p.add_argument("--device", default="cuda", help="the device to check (default: %(default)s)")
    p.add_argument(
        "--weights",
        default=None,
        help=f"VGG-19 weights for the stylize runs (default: ${WEIGHTS_ENV}, else the bundled "
        "original VGG-19; random: the quality figures then say nothing about real pictures)",
    )
    p.add_argument(
        "--quick", action="store_true", help="tiny sizes: checks this command itself, e.g. on a CPU"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=300,
        help="seconds each part may take (default: %(default)s)",
    )
    p = add_command(
        subparsers, "gpu-check-stylize", ABOUT_GPU_CHECK_STYLIZE, run_stylize_matrix, listed=False
    )
    p.add_argument("--device", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--precisions", required=True)
    p.add_argument("--folder", required=True, help="where the pictures are written")


# a long function (over 60 lines): the GPU check's matrix of runs and their figures, read in order
def run_stylize_matrix(args: argparse.Namespace) -> int:
    """Every optimiser x precision in this process (one model load), then the CLI once."""
    import numpy as np
    import torch

    from bot.engine import colour
    from bot.engine.benchmark import synchronize, test_images
    from bot.engine.devices import parse_device
    from bot.engine.params import Optimizer, StyleParams
    from bot.engine.quality import evaluate
    from bot.engine.transfer import stylize
    from bot.engine.vgg import load_vgg19
    from bot.media import imaging

    device = parse_device(args.device)
    model = load_vgg19(args.weights, device=device)
    content_t, style_t = test_images(args.size)
    content = colour.to_image(content_t).resize((args.size, args.size * 3 // 4))
    style = colour.to_image(style_t)
    folder = Path(args.folder)
    runs, failures = [], []
    for optimizer in Optimizer:
        for precision in args.precisions.split(","):
            name = f"{optimizer}-{precision}"
            try:
                synchronize(device)
                started = time.perf_counter()
                result = stylize(
                    model,
                    content,
                    [style],
                    StyleParams(size=args.size, steps=args.steps, seed=0, optimizer=optimizer),
                    precision=precision,
                )
                seconds = time.perf_counter() - started
            except Exception as exc:
                failures.append(f"{name}: {exc.__class__.__name__}: {exc}")
                continue
            change = float(
                np.abs(
                    np.asarray(result.image, np.float32) - np.asarray(content, np.float32)
                ).mean()
            )
            quality = evaluate(model, content, style, result.image)
            result.image.save(folder / f"{name}.png")
            runs.append(
                {
                    "run": name,
                    "precision": result.precision,
                    "seconds": round(seconds, 2),
                    "losses": result.losses,
                    "mean_change": round(change, 2),
                    "style_distance": quality.style_distance,
                    "content_distance": quality.content_distance,
                }
            )
            if change < 1.0:
                failures.append(
                    f"{name}: the output is the content image (mean change {change:.2f} of 255)"
                )
    for entry in runs:  # quality against the fp32 run of the same optimiser
        reference = next(
            (r for r in runs if r["run"] == entry["run"].split("-")[0] + "-fp32"), None
        )
        if reference is not None:
            entry["style_distance_vs_fp32"] = entry["style_distance"] / max(
                reference["style_distance"], 1e-12
            )
    content_path, style_path = folder / "content.png", folder / "style.png"
    content_path.write_bytes(imaging.encode(content, "png"))
    style_path.write_bytes(imaging.encode(style, "png"))
    cli = _stylebot(
        "stylize",
        str(content_path),
        str(style_path),
        "-o",
        str(folder / "cli.png"),
        "-q",
        "--device",
        args.device,
        "--weights",
        args.weights,
        "--size",
        str(args.size),
        "--steps",
        str(args.steps),
        timeout=300,
    )
    if not cli["ok"]:
        failures.append(f"the stylize command: {cli.get('error')}")
    print(json.dumps({"torch": torch.__version__, "runs": runs, "cli": cli, "failures": failures}))
    if failures:
        raise CliError("; ".join(failures))
    return 0


def _stylebot(*args: str, timeout: float) -> dict:
    """Run one `stylebot` command in a fresh process; its JSON output (or the error) and seconds."""
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bot", *args], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s", "seconds": timeout}
    seconds = time.perf_counter() - started
    result: dict = {"ok": done.returncode == 0, "seconds": round(seconds, 1)}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if lines:
        result["result"] = json.loads(lines[-1])
    if done.returncode != 0:
        result["error"] = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
    return result


def _gpu_tests(timeout: float) -> dict:
    root = Path(__file__).resolve().parents[2]
    if not (root / "tests").is_dir():
        return {"ok": False, "error": f"no tests folder at {root} (run from a checkout)"}
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests"],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=root,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    summary = (done.stdout.strip().splitlines() or ["no output"])[-1]
    # exit 5: nothing ran (every gpu test deselected or skipped on a machine without CUDA)
    return {
        "ok": done.returncode in (0, 5),
        "summary": summary,
        "seconds": round(time.perf_counter() - started, 1),
    }


# a long function (over 60 lines): the GPU check's parts in the order they run, one script
def run(args: argparse.Namespace) -> int:
    try:  # one line and exit 3 on a machine without the device, before any of the runs
        check_device(args.device)
    except WorkerStartError as exc:
        raise CliError(f"--device {args.device}: {exc}", 3) from None
    sizes = QUICK if args.quick else FULL
    weights = weights_of(args)
    started = time.perf_counter()
    report: dict = {"device": args.device, "weights": weights, "quick": args.quick}
    with tempfile.TemporaryDirectory(prefix="stylebot-gpu-check-") as folder:
        report["stylize"] = _stylebot(
            "gpu-check-stylize",
            "--device",
            args.device,
            "--weights",
            weights,
            "--size",
            str(sizes["stylize_size"]),
            "--steps",
            str(sizes["stylize_steps"]),
            "--precisions",
            sizes["precisions"],
            "--folder",
            folder,
            timeout=args.timeout,
        )
    report["bench"] = _stylebot(
        "bench",
        "--json",
        "--device",
        args.device,
        "--sizes",
        sizes["bench_sizes"],
        "--precision",
        sizes["precisions"],
        "--steps",
        str(sizes["bench_steps"]),
        "--warmup",
        "2",
        "--no-job",  # the default job at every size and precision: over 200 s on an H200
        timeout=args.timeout,
    )
    report["bench_job"] = _stylebot(  # the whole default job, as members get it (precision auto)
        "bench",
        "--json",
        "--device",
        args.device,
        "--sizes",
        sizes["job_sizes"],
        "--steps",
        "2",
        "--warmup",
        "1",
        timeout=args.timeout,
    )
    report["bench_executor"] = _stylebot(
        "bench-executor",
        "--json",
        "--device",
        args.device,
        "--workers",
        "1",
        "--jobs",
        str(sizes["executor_jobs"]),
        "--users",
        "8",
        "--size",
        str(sizes["executor_size"]),
        "--steps",
        str(sizes["executor_steps"]),
        "--mix",
        MIX,
        "--batch-sizes",
        sizes["batch_sizes"],  # batching off and on, side by side
        "--latency-jobs",
        "1" if args.quick else "5",
        timeout=args.timeout,
    )
    tile = sizes["tiling_tile"]
    report["bench_tiling"] = _stylebot(
        "bench-tiling",
        "--json",
        "--device",
        args.device,
        "--sizes",
        str(sizes["tiling_sizes"]),
        "--memory-limit",
        "8",  # a consumer GPU
        *(["--tile-size", str(tile)] if tile else []),
        "--steps",
        "3",
        timeout=args.timeout,
    )
    report["bench_clip"] = _stylebot(  # a moving picture: seconds per frame against a still
        "bench-clip",
        "--json",
        "--device",
        args.device,
        "--frames",
        str(sizes["clip_frames"]),
        "--size",
        str(sizes["clip_size"]),
        "--steps",
        str(sizes["clip_steps"]),
        timeout=args.timeout,
    )
    report["gpu_tests"] = _gpu_tests(args.timeout)
    report["seconds"] = round(time.perf_counter() - started, 1)
    failed = [
        part
        for part in (
            "stylize",
            "bench",
            "bench_job",
            "bench_executor",
            "bench_tiling",
            "bench_clip",
            "gpu_tests",
        )
        if not report[part]["ok"]
    ]
    report["ok"] = not failed
    print(json.dumps(report, indent=1))
    if failed:
        raise CliError(f"gpu-check: {', '.join(failed)} failed")
    return 0
