"""`stylebot bench`: how fast one style-transfer step is here, against this device's roofline."""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys

from bot.cli import CliError, UsageError, add_command, parse_sizes
from bot.cli.bench_load import under_load
from bot.cli.common import add_model_options, precision_for, weights_of
from bot.engine.params import PRECISIONS

ABOUT = """measure ms per step, FLOPs, GFLOP/s against the matmul roofline, peak memory, and the default job's
time

Times the VGG-19 forward and backward pass alone, a whole L-BFGS step, and the whole default job
(its pyramid levels, steps and early stop) at each size and precision. Exits 1 if any measurement
failed.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "bench", ABOUT, run)
    p.add_argument(
        "--sizes",
        default="256,512",
        help="comma-separated square sizes in pixels (default: %(default)s)",
    )
    p.add_argument(
        "--steps", type=int, default=10, help="timed steps per size (default: %(default)s)"
    )
    p.add_argument(
        "--warmup", type=int, default=3, help="untimed steps first (default: %(default)s)"
    )
    add_model_options(p, several_precisions=True)
    p.add_argument(
        "--no-job",
        dest="job",
        action="store_false",
        help="skip timing the whole default job at each size (its levels, steps and early stop)",
    )
    p.add_argument(
        "--load",
        type=int,
        default=0,
        metavar="N",
        help="also time each step again while N busy processes compete for the cores, and print "
        "the slowdown against the share of the CPU they take (goal: at most 1.3 times it)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args: argparse.Namespace) -> int:
    import torch

    from bot.engine.benchmark import (
        conv_gflops,
        limit_share,
        matmul_gflops,
        measure,
        time_default_job,
    )
    from bot.engine.devices import parse_device, policy_for
    from bot.engine.vgg import load_vgg19
    from bot.threads import apply_budget, available_cores, default_budget

    device = parse_device(args.device)
    sizes = parse_sizes(args.sizes)
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    if (
        not precisions
        or any(p not in PRECISIONS for p in precisions)
        or args.steps < 2
        or args.warmup < 0
        or args.load < 0
    ):
        raise UsageError(
            f"--precision takes {', '.join(PRECISIONS)}; --steps at least 2; --warmup and --load 0 "
            "or more"
        )
    apply_budget(default_budget())  # as a worker runs: its thread budget (bot/threads.py)
    model = load_vgg19(weights_of(args), device=device)
    results, failures, chosen = [], [], {}
    for asked in precisions:
        precision, why = precision_for(device, asked, model)
        if asked == "auto":
            chosen = {"auto": precision, "why": why}
        policy = dataclasses.replace(policy_for(device, precision), sync_interval=0.0)
        roofline = matmul_gflops(policy)
        limit = conv_gflops(policy)
        for side in sizes:
            try:
                result = measure(model, side, args.steps, args.warmup, policy)
                if args.load:
                    result["under_load"] = under_load(
                        lambda: measure(model, side, args.steps, args.warmup, policy)["step_ms"],  # noqa: B023
                        args.load, torch.get_num_threads(), available_cores(),
                    )  # fmt: skip
                if args.job:
                    result |= time_default_job(model, side, policy)
            except (
                Exception
            ) as exc:  # one size failing (out of memory, a backend error) is reported
                failures.append(
                    {
                        "side": side,
                        "precision": policy.precision,
                        "error": f"{exc.__class__.__name__}: {exc}",
                    }
                )
                continue
            result["matmul_gflops"] = roofline
            result["roofline_ratio"] = result["gflops"] / roofline
            result["conv_gflops"] = limit
            result["limit_share"] = limit_share(result, limit)
            results.append(result)
    report = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{device.type} ({platform.processor() or platform.machine()})",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "auto": chosen or None,  # what `auto` chose here, and why
        "sizes": results,
        "failures": failures,
    }
    if args.json:
        print(json.dumps(report))
    else:
        _print_table(report)
    if failures:
        raise CliError(
            "; ".join(f"{f['side']} px {f['precision']} failed: {f['error']}" for f in failures)
        )
    return 0


def _print_table(report: dict) -> None:
    print(f"device {report['device']}, torch {report['torch']}, {report['threads']} threads")
    if report["auto"]:
        print(f"auto is {report['auto']['auto']} here: {report['auto']['why']}")
    print(
        f"{'size':>6} {'precision':>9} {'fwd+bwd ms':>11} {'step ms':>9} {'GFLOP':>8} {'GFLOP/s':>9} "
        f"{'matmul GFLOP/s':>15} {'of roofline':>12} {'conv GFLOP/s':>13} {'limit share':>12} "
        f"{'peak MB':>9}"
    )
    for r in report["sizes"]:
        print(
            f"{r['side']:>6} {r['precision']:>9} {r['forward_backward_ms']:>11.1f} {r['step_ms']:>9.1f} "
            f"{r['gflop_per_step']:>8.1f} {r['gflops']:>9.1f} {r['matmul_gflops']:>15.1f} "
            f"{r['roofline_ratio']:>12.2f} {r['conv_gflops']:>13.1f} {r['limit_share']:>12.2f} "
            f"{r['peak_memory_mb']:>9.0f}"
        )
    for r in report["sizes"]:
        if load := r.get("under_load"):
            print(
                f"{r['side']:>6} {r['precision']:>9} with {load['load']} busy processes: "
                f"{load['step_ms_alone']:.0f} -> {load['step_ms_loaded']:.0f} ms a step, "
                f"{load['slowdown']:.2f}x slower where the CPU share lost explains "
                f"{load['share_lost']:.2f}x ({load['of_share_lost']:.2f} of it; goal at most 1.3: "
                f"{'met' if load['within_goal'] else 'NOT met'})"
            )
    jobs = [r for r in report["sizes"] if "job_s" in r]
    if jobs:
        print("the default job at each size, from the pictures to the result:")
    for r in jobs:
        converged = r["job_converged_at"]
        print(
            f"{r['side']:>6} {r['precision']:>9} {r['job_s']:>8.1f} s  {r['job_work']:.0f} of "
            f"{r['job_planned_work']:.0f} full-size steps' work"
            + (f", converged at step {converged}" if converged else "")
        )
    sys.stdout.flush()
