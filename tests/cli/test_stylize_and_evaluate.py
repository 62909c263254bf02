"""The `stylebot` command as a person runs it: a real subprocess, exit codes and messages."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from tests.cli.helpers import stylebot
from tests.conftest import gradient_image, noise_image


@pytest.fixture
def pictures(tmp_path):
    content, style = tmp_path / "content.jpg", tmp_path / "style.png"
    gradient_image(60, 40).save(content, quality=95)
    noise_image(32, 32).save(style)
    return tmp_path, content, style


def test_stylize_writes_an_image_and_intermediates(pictures):
    folder, content, style = pictures
    out = folder / "out.png"
    done = stylebot(
        "stylize",
        str(content),
        str(style),
        "-o",
        str(out),
        "--size",
        "48",
        "--steps",
        "4",
        "--save-every",
        "2",
        "--seed",
        "3",
    )
    assert done.returncode == 0, done.stderr
    assert Image.open(out).size == (48, 32)
    assert (folder / "out-0002.png").exists() and (folder / "out-0004.png").exists()
    umask = os.umask(0)
    os.umask(umask)
    for written in ("out.png", "out-0002.png"):  # as any new file: readable by others (0644)
        assert (folder / written).stat().st_mode & 0o777 == 0o666 & ~umask, written
    assert "RANDOM" in done.stderr  # random weights are never silent
    assert "4/4" in done.stderr and "ETA" in done.stderr and "seed 3" in done.stderr


def test_several_styles_and_jpeg_output(pictures):
    folder, content, style = pictures
    out = folder / "out.jpg"
    done = stylebot(
        "stylize",
        str(content),
        str(style),
        str(style),
        "-o",
        str(out),
        "--size",
        "32",
        "--steps",
        "2",
        "--style-blend",
        "1,3",
        "--preserve-colors",
        "match",
        "--optimizer",
        "adam",
        "-q",
    )
    assert done.returncode == 0, done.stderr
    assert Image.open(out).format == "JPEG"
    assert "ETA" not in done.stderr  # quiet: the random-weights warning, what it wrote, the seed
    lines = done.stderr.strip().splitlines()
    assert [line for line in lines if "RANDOM" not in line] == [lines[-1]] and lines[-1].startswith(
        f"stylebot: wrote {out}, seed "
    )


def test_a_tiled_run_from_the_command_line(pictures):
    folder, content, style = pictures
    out = folder / "tiled.png"
    args = ("stylize", str(content), str(style), "-o", str(out), "--size", "160", "--steps", "2")
    args += ("--precision", "fp32")  # the estimate below is fp32's (bf16's is smaller)
    done = stylebot(*args, "--tile-size", "64", "--seed", "1")
    assert done.returncode == 0, done.stderr
    assert (
        "160x107" in done.stderr
        and "2 steps on cpu in " in done.stderr
        and "tiles of 64 px" in done.stderr
    )
    assert Image.open(out).size == (160, 107)
    # a memory limit that a whole 160 px picture with 100 L-BFGS pairs does not fit
    done = stylebot(*args, "--memory-limit", "0.06", "-o", str(folder / "short.png"))
    assert done.returncode == 0, done.stderr
    assert "L-BFGS history 20 (about 58 MB)" in done.stderr


def test_help_shows_each_default_once():
    text = stylebot("stylize", "--help").stdout
    flat = " ".join(text.split())  # argparse wraps lines
    assert "512 px: 80 after a coarser level of 80" in flat and "(default: 0)" in flat
    assert "(default: relu1_1,relu2_1,relu3_1,relu4_1,relu5_1)" in flat
    for option in text.split("\n  -"):
        assert option.count("default") <= 1, option


def test_version():
    from importlib.metadata import version

    done = stylebot("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"stylebot {version('stylebot')}"


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--size", "4"], 2, "size must be between"),
        (["--style-blend", "1,2"], 2, "2 weights but there are 1 style images"),
        (["--content-weight", "1"], 2, "give both"),
        (["--device", "tpu"], 2, "device"),
        (["--style-layers", "relu7_1"], 2, "unknown layer"),
        (["--seed", str(2**64)], 2, "seed must be between"),
        (["--memory-limit", "0"], 2, "--memory-limit must be above 0"),
        (["--tile-size", "10"], 2, "--tile-size must be at least 64"),
        (
            ["--size", "512", "--memory-limit", "0.01"],
            2,
            "a 512x341 picture does not fit in the 10 MB this device allows, not even in tiles "
            "(whole, it needs about 0.5 GB): the largest size that fits is 64 px",
        ),
    ],
)
def test_bad_options_give_one_line_and_an_exit_code(pictures, args, code, message):
    folder, content, style = pictures
    done = stylebot("stylize", str(content), str(style), "-o", str(folder / "o.png"), *args)
    assert done.returncode == code
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_bad_images_and_paths(pictures):
    folder, content, style = pictures
    text = folder / "notes.png"
    text.write_text("not an image")
    done = stylebot("stylize", str(text), str(style), "-o", str(folder / "o.png"))
    assert done.returncode == 2 and "content image" in done.stderr and "not an image" in done.stderr
    assert "Traceback" not in done.stderr
    done = stylebot("stylize", str(folder / "missing.png"), str(style), "-o", str(folder / "o.png"))
    assert done.returncode == 2 and "cannot read" in done.stderr
    done = stylebot("stylize", str(content), str(style), "-o", str(folder / "o.gif"))
    assert done.returncode == 2 and "must end in" in done.stderr
    done = stylebot("stylize", str(content), str(style), "-o", str(folder / "nowhere" / "o.png"))
    assert done.returncode == 2 and "does not exist" in done.stderr
    assert not (folder / "o.png").exists()


def test_missing_weights_say_what_to_do(pictures, tmp_path):
    folder, content, style = pictures
    done = stylebot(
        "stylize",
        str(content),
        str(style),
        "-o",
        str(folder / "o.png"),
        env_weights="torchvision",
        extra_env={"TORCH_HOME": str(tmp_path / "empty-torch-home")},
    )
    assert done.returncode == 3  # as `stylebot run` exits for missing weights
    assert "stylebot download-weights" in done.stderr and "bundled original" in done.stderr
    assert "Traceback" not in done.stderr
    done = stylebot(
        "stylize", str(content), str(style), "-o", "x.png", "--weights", "caffe:nope.pth"
    )
    assert done.returncode == 3 and "nope.pth" in done.stderr


def test_nothing_named_paints_with_the_original_vgg19(pictures):
    """A new user names no weights: the bundled original VGG-19, said in the header."""
    folder, content, style = pictures
    out = folder / "original.png"
    done = stylebot(
        "stylize", str(content), str(style), "-o", str(out), "--size", "32", "--steps", "2",
        env_weights=None,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "weights the original VGG-19 (Caffe's, bundled; BGR 0-255)" in done.stderr
    assert "RANDOM" not in done.stderr and out.exists()


def test_usage_errors_exit_2():
    done = stylebot("stylize")
    assert done.returncode == 2 and "usage" in done.stderr
    assert stylebot("--help").returncode == 0


def test_bench_exits_1_and_says_what_failed():
    done = stylebot(
        "bench", "--sizes", "8,32", "--steps", "2", "--warmup", "0", "--precision", "fp32",
        "--no-job", "--json",
    )  # fmt: skip
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert [r["side"] for r in report["sizes"]] == [32] and report["failures"][0]["side"] == 8
    assert "8 px fp32 failed" in done.stderr and "Traceback" not in done.stderr


def test_bench_executor_prints_json_with_mixed_shapes():
    done = stylebot(
        "bench-executor",
        "--jobs",
        "3",
        "--size",
        "32",
        "--steps",
        "2",
        "--workers",
        "1",
        "--shapes",
        "1x1,16x9,3x4",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (
        report["done"] == 3 and report["jobs_per_minute"] > 0 and report["loop_lag_worst_ms"] >= 0
    )
    assert (
        report["shapes"] == ["1x1", "16x9", "3x4"]
        and report["wait_p95_seconds"] >= report["wait_p50_seconds"]
    )


def test_bench_executor_through_celery_workers_it_starts():
    import redis

    url = "redis://127.0.0.1:6379/12"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).flushdb()
    except redis.ConnectionError:
        pytest.skip("needs Redis on 127.0.0.1:6379")
    done = stylebot(
        "bench-executor", "--executor", "celery", "--start-workers", "1", "--jobs", "2",
        "--size", "32", "--steps", "2", "--latency-jobs", "2", "--json",
        extra_env={"STYLEBOT_REDIS_URL": url, "STYLEBOT_CELERY_QUEUE": "stylebot-bench-test"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["executor"] == "celery" and report["workers"] == 1 and report["done"] == 2
    assert report["start_latency_p95_ms"] > 0 and report["progress_latency_p50_ms"] > 0


def test_worker_refuses_an_unknown_device():
    done = stylebot("worker", "--device", "tpu:0")
    assert done.returncode == 2 and "unknown device 'tpu:0'" in done.stderr
    assert "Traceback" not in done.stderr


def test_bench_executor_exits_1_when_jobs_fail():
    done = stylebot(
        "bench-executor", "--jobs", "2", "--size", "8", "--steps", "2", "--workers", "1", "--json"
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["done"] == 0
    assert "2 of 2 jobs did not finish" in done.stderr and "bad_input" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--strength", "inf"],
        ["--strength", "nan"],
        ["--style-layer-weights", "inf,1,1,1,1"],
        ["--lr", "inf"],
        ["--content-weight", "1", "--style-weight", "nan"],
    ],
)
def test_non_finite_numbers_are_refused(pictures, args):
    folder, content, style = pictures
    done = stylebot("stylize", str(content), str(style), "-o", str(folder / "o.png"), *args)
    assert done.returncode == 2 and "finite" in done.stderr, done.stderr
    assert not (folder / "o.png").exists()


def test_a_loss_that_overflows_writes_nothing(pictures):
    folder, content, style = pictures
    done = stylebot(
        "stylize",
        str(content),
        str(style),
        "-o",
        str(folder / "o.png"),
        "--size",
        "32",
        "--steps",
        "3",
        "--content-weight",
        "1e38",
        "--style-weight",
        "1e38",
    )
    assert done.returncode == 2, done.stderr
    assert "infinite or NaN" in done.stderr and "lower the strength" in done.stderr
    assert not (folder / "o.png").exists()


def test_evaluate_scores_outputs(pictures):
    folder, content, style = pictures
    out = folder / "out.png"
    assert (
        stylebot(
            "stylize",
            str(content),
            str(style),
            "-o",
            str(out),
            "--size",
            "48",
            "--steps",
            "20",
            "-q",
            "--strength",
            "5",
        ).returncode
        == 0
    )
    done = stylebot("evaluate", str(content), str(style), str(content), str(out), "--json")
    assert done.returncode == 0, done.stderr
    scores = json.loads(done.stdout)["outputs"]
    assert scores[str(content)]["content_distance"] == pytest.approx(
        0.0, abs=1e-3
    )  # the content is its own match
    assert scores[str(out)]["style_distance"] < scores[str(content)]["style_distance"]
    assert scores[str(out)]["content_distance"] > 0
    assert set(scores[str(out)]["style_layers"]) == {
        "relu1_1",
        "relu2_1",
        "relu3_1",
        "relu4_1",
        "relu5_1",
    }


# 128 s alone on a CPU that emulates bf16 (its bf16 runs), 237 s beside other tests: it also
# checks what bench and bench-executor print (the steps in both precisions, the default job, a
# mix of members' pictures batched and not)
@pytest.mark.timeout(600)
def test_gpu_check_runs_its_parts_in_quick_mode_on_the_cpu():
    done = stylebot("gpu-check", "--device", "cpu", "--quick", "--weights", "random")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert (
        report["ok"]
        and report["stylize"]["ok"]
        and report["bench"]["ok"]
        and report["bench_executor"]["ok"]
    )
    runs = report["stylize"]["result"]["runs"]
    assert [r["run"] for r in runs] == ["lbfgs-fp32", "lbfgs-bf16", "adam-fp32", "adam-bf16"]
    assert all(r["mean_change"] >= 1 and "style_distance_vs_fp32" in r for r in runs)
    assert report["stylize"]["result"]["cli"]["ok"]
    assert {(r["side"], r["precision"]) for r in report["bench"]["result"]["sizes"]} == {
        (32, "fp32"),
        (32, "bf16"),
    }
    for r in report["bench"]["result"]["sizes"]:  # the step in each precision, no job
        assert r["forward_backward_ms"] > 0 and r["step_ms"] > 0 and r["gflop_per_step"] > 0
        assert r["matmul_gflops"] > 0 and r["roofline_ratio"] > 0 and "job_s" not in r
        # the machine's own limit for this work, and how close the step is (issue 49)
        assert r["conv_gflops"] > 0 and 0 < r["limit_share"] < 10
        rate = r["gflop_per_step"] / (r["step_ms"] / 1000)
        assert abs(r["limit_share"] - rate / r["conv_gflops"]) < 1e-6 * r["limit_share"] + 1e-12
    assert report["bench"]["result"]["failures"] == []
    (job,) = report["bench_job"]["result"]["sizes"]  # the whole default job, in `auto`
    assert job["side"] == 32 and job["job_s"] > 0
    assert 0 < job["job_work"] <= job["job_planned_work"]
    runs = report["bench_executor"]["result"]["runs"]  # batching off and on, side by side
    assert [(r["batch_size"], r["done"]) for r in runs] == [(1, 3), (2, 3)]
    for r in runs:  # the members' mix: their uploads' sizes, the worker's own totals
        assert r["mix"].startswith("4032x3024") and all("x" in shape for shape in r["shapes"])
        assert 0 < r["busy_share"] <= 1.05 and 1 <= r["jobs_per_batch"] <= r["batch_size"]
    runs = report["bench_tiling"]["result"]["runs"]  # whole, then in tiles of 64 px
    assert [(r["mode"], r["tile"], r["tiles"]) for r in runs] == [
        ("whole", None, 0),
        ("limited", 64, 9),
    ]
    assert all(r["step_s"] > 0 and r["peak_memory_mb"] > r["baseline_mb"] > 0 for r in runs)
    clip = report["bench_clip"]["result"]  # frames alone, then steady
    assert clip["frames"] == 3 and clip["still_step_ms"] > 0
    assert [r["temporal_weight"] for r in clip["runs"]][0] == 0
    assert all(r["frame_step_ms"] > 0 and r["flicker"] >= 0 for r in clip["runs"])
    assert report["gpu_tests"]["ok"]


def test_the_output_is_written_through_a_fresh_temporary_file(pictures):
    """A symlink where the output goes is replaced, never written through, and no temporary file stays."""
    folder, content, style = pictures
    precious = folder / "precious.txt"
    precious.write_text("keep me")
    out = folder / "out.png"
    out.symlink_to(precious)
    done = stylebot(
        "stylize", str(content), str(style), "-o", str(out), "--size", "32", "--steps", "1", "-q"
    )
    assert done.returncode == 0, done.stderr
    assert precious.read_text() == "keep me"
    assert not out.is_symlink() and Image.open(out).size == (32, 21)
    assert sorted(p.name for p in folder.iterdir()) == [
        "content.jpg",
        "out.png",
        "precious.txt",
        "style.png",
    ]


def test_evaluate_runs_a_configuration_over_a_folder_of_pairs(tmp_path):
    """Each pair is painted as a job paints it; work counts a step at a quarter of the pixels as
    a quarter (64 px over two levels: 8 steps at 32 px and 4 at 64 px are about 6 full-size
    steps, less the rounding of odd sides); more steps bring the result closer to the style; the
    curve scores the picture on the way."""
    pairs, saved = tmp_path / "pairs", tmp_path / "saved"
    saved.mkdir()
    for name, seed in (("portrait", 0), ("landscape", 1)):
        (pairs / name).mkdir(parents=True)
        size = (32, 48) if name == "portrait" else (48, 32)
        gradient_image(*size, seed=seed).save(pairs / name / "content.png")
        noise_image(40, 40, seed=seed).save(pairs / name / "style.jpg")

    def evaluate(steps: int, *extra: str) -> dict:
        done = stylebot(
            "evaluate", "--pairs", str(pairs), "--size", "64", "--steps", str(steps),
            "--levels", "2", "--tolerance", "0", "--init", "content", "--json", *extra,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    short = evaluate(4, "--coarse-steps", "8", "--save", str(saved), "--curve", "0.9,3")
    sheet = tmp_path / "sheet.png"
    long = evaluate(40, "--coarse-steps", "0", "--sheet", str(sheet), "--beside", str(saved))
    assert set(short["pairs"]) == {"portrait", "landscape"}
    assert all(row["work"] == pytest.approx(6.0, rel=0.03) for row in short["pairs"].values())
    assert long["average"]["work"] == pytest.approx(50.0, rel=0.03)
    for name, points in short["curves"].items():
        works = [p["work"] for p in points]
        assert len(works) == 3 and works[0] >= 0.9 and works[1] >= 3 and works == sorted(works)
        assert works[-1] == short["pairs"][name]["work"]
        assert points[-1]["style_distance"] == short["pairs"][name]["style_distance"]
    for key in ("style_distance", "content_distance", "seconds"):
        rows = short["pairs"].values()
        assert short["average"][key] == pytest.approx(sum(r[key] for r in rows) / 2)
    assert long["average"]["style_distance"] < short["average"]["style_distance"]
    # a gentler strength, against the first run as the baseline: the bar per pair
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(short))
    gentle = evaluate(4, "--coarse-steps", "8", "--strength", "0.2", "--against", str(baseline))
    assert gentle["config"]["strength"] == 0.2
    assert gentle["average"]["content_distance"] < short["average"]["content_distance"]
    against = gentle["against"]
    assert against["compared"] == 2
    for name, change in against["pairs"].items():
        mine, base = gentle["pairs"][name], short["pairs"][name]
        style = mine["style_distance"] / base["style_distance"] - 1
        content = mine["content_distance"] / base["content_distance"] - 1
        assert change["style_change"] == pytest.approx(style)
        assert change["content_change"] == pytest.approx(content)
        assert change["within"] == (style <= 0 and content <= 0.02)
    assert against["within"] == sum(p["within"] for p in against["pairs"].values())
    printed = stylebot(
        "evaluate", "--pairs", str(pairs), "--size", "64", "--steps", "4", "--levels", "2",
        "--coarse-steps", "8", "--against", str(baseline),
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    # the baseline's own configuration again: no change (CPU runs repeat bit for bit)
    assert re.search(r"style +[+-]0\.0% +content +[+-]0\.0% +within +portrait", printed.stdout)
    assert "2 of 2 pairs within the bar" in printed.stdout
    baseline.write_text("{}")
    refused = stylebot("evaluate", "--pairs", str(pairs), "--against", str(baseline))
    assert refused.returncode != 0
    assert "is not the --json output of `stylebot evaluate --pairs`" in refused.stderr
    assert short["config"] == {
        "size": 64, "steps": 4, "coarse_steps": 8, "levels": 2, "strength": 1.0, "optimizer": "lbfgs",
        "init": "content", "tolerance": 0.0, "precision": "fp32", "seed": 0,
        "shape_buckets": False,
    }  # fmt: skip
    assert sorted(p.name for p in saved.iterdir()) == ["landscape.png", "portrait.png"]
    # content, style, the earlier run's result and this run's, for each of the two pairs; each
    # row as tall as its tallest picture (the results: 43x64 and 64x43), under a label
    assert Image.open(sheet).size == (4 * 328 + 8, 16 + (64 + 24) + (43 + 24))
    (pairs / "empty").mkdir()
    refused = stylebot("evaluate", "--pairs", str(pairs))
    assert refused.returncode != 0
    assert "empty needs one content.* and one style.* picture" in refused.stderr


def test_sigterm_stops_stylize_and_says_so(pictures):
    folder, content, style = pictures
    out = folder / "never.png"
    env = {k: v for k, v in os.environ.items() if k != "STYLEBOT_VGG19_WEIGHTS"}
    env["STYLEBOT_VGG19_WEIGHTS"] = "random"
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "stylize", str(content), str(style), "-o", str(out),
         "--size", "48", "--steps", "5000", "--device", "cpu"],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        header = ""  # the header comes once the model is loaded (after the RANDOM warning)
        while not header.startswith("stylebot: "):
            header = process.stderr.readline()
            assert header, "stylize ended before painting"
        time.sleep(1)
        process.send_signal(signal.SIGTERM)
        rest = process.stderr.read()
        assert process.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        process.kill()
    assert "stylebot: stopped (SIGTERM); nothing written" in rest
    assert "Traceback" not in rest and not out.exists()


def test_quiet_still_says_what_it_wrote(pictures):
    folder, content, style = pictures
    out = folder / "quiet.png"
    done = stylebot(
        "stylize", str(content), str(style), "-o", str(out), "--size", "32", "--steps", "1", "-q"
    )
    assert done.returncode == 0
    assert done.stderr.strip().splitlines()[-1].startswith(f"stylebot: wrote {out}, seed ")
