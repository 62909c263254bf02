"""`stylebot bench-tiling`: peak memory and time of large pictures, whole and within a memory limit.

For each size, two runs, each in a fresh process (so that the peak memory is its own):
  - whole: the picture in one piece, with the longest L-BFGS history that this machine's memory
    holds (skipped, with the estimate, when not even 20 pairs fit);
  - limited: as a worker with STYLEBOT_GPU_MEMORY_LIMIT runs it (bot/engine/memory.py: a shorter
    history, then tiles).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from bot.cli import CliError, UsageError, add_command, parse_sizes
from bot.cli.common import add_model_options, weights_of

ABOUT = """measure peak memory and seconds per step of large pictures, whole and tiled

Runs a job of each size whole and within --memory-limit (tiled where it does not fit), each in a
fresh process, and prints the plan, seconds per step and peak memory side by side. Exits 1 if a run
failed.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "bench-tiling", ABOUT, run)
    p.add_argument(
        "--sizes", default="2048,4096", help="comma-separated square sizes (default: %(default)s)"
    )
    p.add_argument(
        "--memory-limit",
        type=float,
        default=8.0,
        metavar="GB",
        help="the limit of the limited runs, as STYLEBOT_GPU_MEMORY_LIMIT (default: %(default)s)",
    )
    p.add_argument(
        "--tile-size",
        type=int,
        default=None,
        metavar="PX",
        help="tiles of this size in the limited runs (default: as large as the limit allows)",
    )
    p.add_argument("--steps", type=int, default=3, help="steps per run (default: %(default)s)")
    add_model_options(p)
    p.add_argument(
        "--timeout", type=float, default=3600, help="seconds per run (default: %(default)s)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--one", nargs=2, metavar=("SIDE", "MODE"), help=argparse.SUPPRESS)


def _plan(mode: str, side: int, device, precision: str, limit: int, tile: int | None):
    """`whole`: the picture at once in what the machine holds; `limited`: the plan a worker with
    that memory limit makes (tiles if need be). None when it does not fit."""
    from bot.engine.devices import machine_memory, memory_budget
    from bot.engine.memory import DoesNotFit, plan_job
    from bot.engine.params import StyleParams

    params = StyleParams(size=side, pyramid_levels=1).validate()
    try:
        if mode == "limited":
            budget = memory_budget(device, limit)
            return plan_job(params, side, side, budget, precision=precision, tile=tile)
        return plan_job(params, side, side, machine_memory(device), precision=precision, tile=side)
    except DoesNotFit:
        return None


def _run_one(args: argparse.Namespace) -> int:
    from bot.engine.benchmark import measure_painting
    from bot.engine.devices import parse_device, policy_for
    from bot.engine.memory import job_bytes, size_text
    from bot.engine.vgg import load_vgg19

    side, mode = int(args.one[0]), args.one[1]
    device = parse_device(args.device)
    policy = policy_for(device, args.precision)
    found = _plan(
        mode, side, device, policy.precision, int(args.memory_limit * 2**30), args.tile_size
    )
    result: dict = {"side": side, "mode": mode}
    if found is None:
        need = job_bytes(side * side, optimizer="lbfgs", history=20, precision=policy.precision)
        where = (
            f"{size_text(int(args.memory_limit * 2**30))} limit" if mode == "limited" else "machine"
        )
        result["skipped"] = f"needs about {size_text(need)} whole: more than this {where} holds"
    else:
        model = load_vgg19(weights_of(args), device=device)
        result |= measure_painting(model, side, args.steps, policy, found)
    print(json.dumps(result))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.one:
        return _run_one(args)
    sizes = parse_sizes(args.sizes)
    if not sizes or args.steps < 2 or not args.memory_limit > 0:
        raise UsageError("--sizes needs a size, --steps at least 2, --memory-limit above 0")
    runs, failures = [], []
    for side in sizes:
        for mode in ("whole", "limited"):
            command = [
                sys.executable, "-m", "bot", "bench-tiling", "--one", str(side), mode,
                "--memory-limit", str(args.memory_limit), "--steps", str(args.steps),
                "--device", args.device, "--precision", args.precision, "--weights", weights_of(args),
                *(["--tile-size", str(args.tile_size)] if args.tile_size else []),
            ]  # fmt: skip
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                failures.append({"side": side, "mode": mode, "error": "timed out"})
                continue
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode != 0 or not lines:
                error = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
                failures.append({"side": side, "mode": mode, "error": error})
                continue
            runs.append(json.loads(lines[-1]))
    report = {"memory_limit_gb": args.memory_limit, "runs": runs, "failures": failures}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"memory limit of the limited runs: {args.memory_limit:g} GB")
        print(
            f"{'size':>6} {'mode':>8} {'tile':>6} {'tiles':>6} {'history':>8} {'setup s':>8} "
            f"{'s/step':>8} {'estimate MB':>12} {'peak MB':>9} {'before MB':>10}"
        )
        for r in runs:
            if "skipped" in r:
                print(f"{r['side']:>6} {r['mode']:>8}  skipped: {r['skipped']}")
                continue
            print(
                f"{r['side']:>6} {r['mode']:>8} {r['tile'] or '-':>6} {r['tiles'] or '-':>6} "
                f"{r['history']:>8} {r['setup_s']:>8.1f} {r['step_s']:>8.2f} "
                f"{r['estimate_mb']:>12.0f} {r['peak_memory_mb']:>9.0f} {r['baseline_mb']:>10.0f}"
            )
        for f in failures:
            print(f"{f['side']:>6} {f['mode']:>8}  FAILED: {f['error']}")
    if failures:
        raise CliError(f"bench-tiling: {len(failures)} run(s) failed")
    return 0
