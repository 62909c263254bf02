"""One thread budget per painting process, passive OpenMP waiting, and the load benchmark."""

import json
import os
import subprocess
import sys

import psutil

from bot import threads
from bot.cli.bench_load import busy_processes, share_lost
from bot.protocol.entry import run_entry

SEEN: dict[str, str | None] = {}


def record_wait_policy() -> None:
    SEEN["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY")


def test_a_worker_entry_asks_for_passive_waiting_before_torch(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    run_entry("tests.test_threads:record_wait_policy")
    assert SEEN["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # a host's own choice stands
    run_entry("tests.test_threads:record_wait_policy")
    assert SEEN["OMP_WAIT_POLICY"] == "ACTIVE"


def test_the_budget_comes_from_the_cores_this_process_may_use(monkeypatch):
    assert 1 <= threads.available_cores() <= (os.cpu_count() or 1)
    assert threads.available_cores() <= len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.default_budget() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert threads.default_budget() == threads.available_cores()


def test_applying_a_budget_sets_torch_opencv_and_the_codecs(monkeypatch):
    import cv2
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", str(before))  # restored after the test
    try:
        assert threads.apply_budget(1) == 1
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
        assert threads.codec_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    finally:
        threads.apply_budget(before)


def test_the_share_lost_bound():
    assert share_lost(threads=2, cores=2, load=4) == 3.0  # 2 of 6 runnable threads' worth
    assert share_lost(threads=1, cores=2, load=1) == 1.0  # a core each: nothing lost
    assert share_lost(threads=1, cores=1, load=1) == 2.0


def test_busy_processes_end_with_the_block():
    me = psutil.Process()
    before = {p.pid for p in me.children()}  # under xdist a test process may have others
    with busy_processes(2, seconds=60):
        spinners = [p for p in me.children() if p.pid not in before]
        assert len(spinners) == 2 and all(p.is_running() for p in spinners)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in spinners)


def test_bench_under_load_reports_the_slowdown_against_the_share_lost():
    done = subprocess.run(
        [sys.executable, "-m", "bot", "bench", "--sizes", "32", "--steps", "2", "--warmup", "0",
         "--no-job", "--load", "1", "--precision", "fp32", "--weights", "random", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    load = json.loads(done.stdout)["sizes"][0]["under_load"]
    assert load["load"] == 1 and load["step_ms_alone"] > 0 and load["step_ms_loaded"] > 0
    assert load["slowdown"] == load["step_ms_loaded"] / load["step_ms_alone"]
    assert load["share_lost"] >= 1 and isinstance(load["within_goal"], bool)
