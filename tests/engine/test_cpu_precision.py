"""`auto` on a CPU: bf16 or fp32 by a measurement on this machine, kept on disk.

The figures are forced here (the suite runs on CPUs with and without bf16 units); one test
measures for real and checks only what it reports, never a speed.
"""

from __future__ import annotations

import json

import pytest
import torch

from bot.engine import cpu_precision
from bot.engine.cpu_precision import CpuPrecision, choose, decide, machine_key
from bot.engine.devices import resolve_precision

CPU = torch.device("cpu")


def test_bf16_only_where_it_is_clearly_faster_and_agrees():
    fast = decide(fp32_ms=370, bf16_ms=160, cost_gap=0.003, cosine=0.999)
    assert fast.precision == "bf16" and "2.3x faster" in fast.why
    assert decide(370, 330, 0.003, 0.999).precision == "fp32"  # 11 % is not clearly faster
    assert "not clearly faster" in decide(370, 330, 0.003, 0.999).why
    wrong = decide(370, 160, 0.05, 0.999)
    assert wrong.precision == "fp32" and "disagreed" in wrong.why
    assert decide(370, 160, 0.003, 0.5).precision == "fp32"


def test_the_choice_is_measured_once_per_machine_and_kept(monkeypatch, tmp_path):
    calls = []

    def measured(model):
        calls.append(1)
        return CpuPrecision("bf16", "measured 2.3x faster than fp32 here", 370.0, 160.0)

    monkeypatch.setattr(cpu_precision, "measure", measured)
    kept = tmp_path / "cache" / "cpu-precision.json"
    first = choose(None, kept, threads=2)
    again = choose(None, kept, threads=2)
    assert first.precision == again.precision == "bf16" and len(calls) == 1
    assert str(kept) in again.why  # says where the answer came from
    entry = json.loads(kept.read_text())[machine_key(2)]
    assert entry["precision"] == "bf16" and entry["bf16_ms"] == 160.0
    choose(None, kept, threads=1)  # another thread count is another measurement
    assert len(calls) == 2
    assert f"torch {torch.__version__}" in machine_key(2) and "threads 2" in machine_key(2)


def test_a_broken_or_unwritable_cache_only_costs_a_measurement(monkeypatch, tmp_path):
    monkeypatch.setattr(cpu_precision, "measure", lambda model: CpuPrecision("fp32", "forced"))
    broken = tmp_path / "cpu-precision.json"
    broken.write_text("{not json")
    assert choose(None, broken).precision == "fp32"
    assert json.loads(broken.read_text())  # rewritten whole
    blocked = tmp_path / "file" / "cpu-precision.json"
    (tmp_path / "file").write_text("a file where the folder should be")
    assert choose(None, blocked).why == "forced"


@pytest.mark.parametrize("forced", ["fp32", "bf16"])
def test_auto_follows_the_measurement_on_the_cpu(monkeypatch, forced):
    monkeypatch.setattr(cpu_precision, "measure", lambda model: CpuPrecision(forced, "forced"))
    assert resolve_precision(CPU, "auto", None, None) == (forced, "forced")  # type: ignore[arg-type]
    assert resolve_precision(CPU, "fp32", None, None) == ("fp32", "asked for")  # type: ignore[arg-type]
    assert resolve_precision(torch.device("cuda"), "auto", None, None)[0] == "tf32"  # type: ignore[arg-type]


def test_a_real_measurement_reports_both_paces(random_vgg):
    """Whatever this CPU is: a precision, a reason, and either both paces or the matmul ratio
    that spared the probe."""
    choice = cpu_precision.measure(random_vgg)
    assert choice.precision in ("fp32", "bf16") and choice.why
    if choice.fp32_ms is not None:
        assert choice.fp32_ms > 0 and choice.bf16_ms and choice.bf16_ms > 0
    else:
        assert "matmuls" in choice.why
    assert next(random_vgg.parameters()).is_contiguous()  # left as fp32 callers expect


@pytest.mark.parametrize(
    "entry",
    [
        {"precision": "fp16", "why": "a newer version's answer"},
        {"precision": "tf32", "why": "a hand edit"},
        {"precision": "auto", "why": "a hand edit"},
        {"precision": "bf16", "why": "timed", "fp32_ms": "fast", "bf16_ms": None},
        {"precision": "bf16", "why": 3},
        {"precision": "bf16"},
        "bf16",
    ],
)
def test_an_unexpected_entry_is_measured_again_and_auto_says_the_truth(
    monkeypatch, tmp_path, entry
):
    """Issue 48, item 7: anything in the file that `measure` would not have written (another
    version's precision, a hand edit, a wrong type) is measured again, never a failure at start
    and never a ready line that names a precision the worker does not run."""
    monkeypatch.setattr(cpu_precision, "measure", lambda model: CpuPrecision("fp32", "measured"))
    kept = tmp_path / "cpu-precision.json"
    kept.write_text(json.dumps({machine_key(2): entry}))
    choice = choose(None, kept, threads=2)
    assert (choice.precision, choice.why) == ("fp32", "measured")
    assert json.loads(kept.read_text())[machine_key(2)]["precision"] == "fp32"  # rewritten
