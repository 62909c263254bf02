"""The images as a host runs them: build both targets of the Dockerfile, then run them together on
the host network against the tests' fake Discord and this machine's Redis.

    python scripts/docker_check.py [--base IMAGE] [--skip-build]

Checks, each printed as one line (exit 1 if any failed):
- `--target bot` has no torch and stays under 500 MB; the worker has torch;
- a `/stylize` through the bot container and a worker container (`--device cpu`, random weights)
  ends with the picture;
- both serve Prometheus metrics that prometheus_client's parser reads: the bot's /metrics counts
  the job, the worker's own port (STYLEBOT_METRICS_PORT) its steps;
- `docker stop` of each exits 0 within its grace;
- `stylebot stylize -o` into a mounted folder writes a file that every user of the host can read,
  with no network and no weights named (the image holds the original VGG-19), and the worker image
  credits the weights.

Needs a Docker daemon (on a machine without a container registry, ../shared/tools/docker-standin-base
starts one and prints a base to pass with --base), Redis on 127.0.0.1:6379 (database 13) and the
project's test install (the fake Discord lives in tests/).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.cogs.fake_discord import FakeDiscord  # noqa: E402
from tests.cogs.harness import stylize_pictures, text_of  # noqa: E402
from tests.conftest import gradient_image, noise_image  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/13"
BOT, WORKER = "stylebot-bot:check", "stylebot-worker:check"
results: list[tuple[bool, str]] = []


def check(ok: bool, what: str) -> bool:
    results.append((ok, what))
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
    return ok


def docker(*args: str, timeout: float = 1800, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, **kwargs
    )


def build(base: str) -> None:
    for target, tag in (("bot", BOT), ("worker", WORKER)):
        started = time.monotonic()
        done = subprocess.run(
            ["docker", "build", "--network", "host", "--build-arg", f"PYTHON_IMAGE={base}"]
            + ["--target", target, "-t", tag, str(ROOT)],
            capture_output=True,
            text=True,
        )
        seconds = time.monotonic() - started
        if not check(done.returncode == 0, f"docker build --target {target} ({seconds:.0f} s)"):
            print(done.stdout[-3000:], done.stderr[-3000:])
            sys.exit(1)


def image_facts() -> None:
    size = int(docker("image", "inspect", BOT, "--format", "{{.Size}}").stdout.strip())
    check(size < 500e6, f"the bot image is {size / 1e6:.0f} MB (under 500 MB)")
    no_torch = docker("run", "--rm", BOT, "python", "-c", "import torch")
    check(no_torch.returncode != 0, "the bot image has no torch")
    user = docker("run", "--rm", BOT, "id", "-u").stdout.strip()
    check(user == "10001", f"the bot image runs as uid {user} (not root)")
    size = int(docker("image", "inspect", WORKER, "--format", "{{.Size}}").stdout.strip())
    torch = docker("run", "--rm", WORKER, "python", "-c", "import torch; print(torch.__version__)")
    check(
        torch.returncode == 0,
        f"the worker image ({size / 1e9:.1f} GB) has torch {torch.stdout.strip()}",
    )
    notice = docker("run", "--rm", WORKER, "cat", "/app/NOTICE").stdout
    label = docker("image", "inspect", WORKER, "--format", "{{json .Config.Labels}}").stdout
    check(
        "CC BY 4.0" in notice and "Simonyan" in notice and "CC-BY-4.0" in label,
        "the worker image credits the VGG-19 weights (NOTICE and its licence label)",
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(name: str, grace: int) -> None:
    started = time.monotonic()
    docker("stop", "-t", str(grace), name, timeout=grace + 60)
    seconds = time.monotonic() - started
    code = docker("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip()
    logs = docker("logs", "--tail", "3", name)
    last = (logs.stdout + logs.stderr).strip().splitlines()[-1:] or ["(no output)"]
    check(
        code == "0" and seconds < grace,
        f"docker stop {name}: exit {code} in {seconds:.1f} s (grace {grace} s); last line: {last[0]}",
    )


async def a_job_through_both_containers() -> None:
    fake = FakeDiscord()
    await fake.start()
    queue = f"docker-check-{uuid.uuid4().hex[:8]}"
    tag = uuid.uuid4().hex[:6]
    bot, worker = f"stylebot-check-bot-{tag}", f"stylebot-check-worker-{tag}"
    common = ["--network", "host", "-e", f"STYLEBOT_REDIS_URL={REDIS_URL}"]
    common += ["-e", f"STYLEBOT_CELERY_QUEUE={queue}"]
    health_port, metrics_port = free_port(), free_port()
    try:
        docker(
            "run", "-d", "--name", worker, *common, "-e", "STYLEBOT_VGG19_WEIGHTS=random",
            "-e", f"STYLEBOT_METRICS_PORT={metrics_port}", "-e", "STYLEBOT_METRICS_HOST=127.0.0.1",
            WORKER, "stylebot", "worker", "--device", "cpu", "--name", "docker-check",
        )  # fmt: skip
        docker(
            "run", "-d", "--name", bot, *common,
            "-e", "STYLEBOT_DISCORD_TOKEN=fake-token-for-tests",
            "-e", f"STYLEBOT_DISCORD_API_BASE={fake.api_base}",
            "-e", f"STYLEBOT_DISCORD_GATEWAY_URL={fake.gateway_url}",
            "-e", "STYLEBOT_ATTACHMENT_HOSTS=127.0.0.1",
            "-e", f"STYLEBOT_HEALTH_PORT={health_port}",
            BOT,
        )  # fmt: skip
        await asyncio.wait_for(fake.identified.wait(), 120)
        token = await stylize_pictures(fake, steps=5, size=64)
        done = await fake.wait_for(
            lambda f: [e for e in f.edits(token) if "Done in" in text_of(e)], timeout=300
        )
        check(bool(done[-1].files), f"/stylize through both containers: {text_of(done[-1])[:70]}")
        await both_serve_metrics(health_port, metrics_port)
        stop(bot, 60)
        stop(worker, 120)
    except Exception as exc:
        check(False, f"/stylize through both containers: {exc.__class__.__name__} {exc}")
        for name in (bot, worker):
            print(f"--- {name}\n" + docker("logs", "--tail", "30", name).stderr)
    finally:
        docker("rm", "-f", bot, worker)
        await fake.stop()


async def scrape(port: int) -> dict[tuple, float]:
    """A /metrics on this machine, parsed by prometheus_client: {(name, outcome or worker
    label): value, summed over the other labels} (every label set is there from the start)."""
    from collections import Counter

    from prometheus_client.parser import text_string_to_metric_families

    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as answer,
    ):
        text = await answer.text()
    found: Counter[tuple] = Counter()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, s.labels.get("outcome") or s.labels.get("worker"))] += s.value
    return found


async def both_serve_metrics(health_port: int, metrics_port: int) -> None:
    try:
        bot = await scrape(health_port)
        for _ in range(20):  # the worker's totals are refreshed every 2 s
            worker = await scrape(metrics_port)
            if worker.get(("stylebot_job_steps_total", "docker-check"), 0) >= 5:
                break
            await asyncio.sleep(0.5)
    except (aiohttp.ClientError, ValueError) as exc:
        check(False, f"metrics of both containers: {exc.__class__.__name__} {exc}")
        return
    done = bot.get(("stylebot_jobs_total", "done"), 0)
    steps = worker.get(("stylebot_job_steps_total", "docker-check"), 0)
    check(
        done == 1 and steps >= 5,
        f"metrics: the bot's /metrics counts {done:.0f} job done, the worker's port {steps:.0f} steps",
    )


def a_file_written_to_a_mounted_folder() -> None:
    """Also: with no network and no weights named, the worker image paints with the bundled
    original VGG-19 (nothing to download)."""
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o777)  # the container's user (uid 10001) writes here
        gradient_image(64, 48).save(Path(folder) / "content.png")
        noise_image(32, 32).save(Path(folder) / "style.png")
        done = docker(
            "run", "--rm", "--network", "none", "-v", f"{folder}:/work", WORKER,
            "stylebot", "stylize", "/work/content.png", "/work/style.png", "-o", "/work/out.png",
            "--size", "48", "--steps", "2", "--device", "cpu",
        )  # fmt: skip
        out = Path(folder) / "out.png"
        mode = out.stat().st_mode & 0o777 if out.exists() else 0
        check(
            done.returncode == 0 and mode & 0o044 == 0o044,
            f"stylize -o in a mounted folder: mode {mode:o} (readable by the host's users)"
            + ("" if done.returncode == 0 else f"; {done.stderr.strip()[-200:]}"),
        )
        check(
            "the original VGG-19" in done.stderr,
            "offline, with no weights named, the worker image paints with the bundled VGG-19",
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="python:3.11-slim-bookworm", help="PYTHON_IMAGE")
    parser.add_argument("--skip-build", action="store_true", help="use the images built last")
    args = parser.parse_args()
    if docker("info", timeout=30).returncode != 0:
        print("no Docker daemon answers: nothing checked", file=sys.stderr)
        return 1
    if not args.skip_build:
        build(args.base)
    image_facts()
    asyncio.run(a_job_through_both_containers())
    a_file_written_to_a_mounted_folder()
    failed = [what for ok, what in results if not ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
