"""What a person sees when a command line is wrong: a short usage line, the error, plain words."""

import pytest

from bot.__main__ import main


def error_of(capsys, *argv: str) -> list[str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    assert info.value.code == 2
    return capsys.readouterr().err.splitlines()


def test_a_bad_choice_is_named_in_plain_words_after_one_usage_line(capsys):
    lines = error_of(capsys, "stylize", "a.png", "b.png", "-o", "x.png", "--precision", "foo")
    assert lines[0] == "usage: stylebot stylize [options] content style"
    assert lines[1] == (
        "stylebot stylize: error: argument --precision: invalid choice: foo "
        "(choose from auto, fp32, tf32, bf16)"
    )
    assert "--help" in lines[2] and len(lines) == 3


def test_an_unknown_option_gets_the_commands_own_usage(capsys):
    lines = error_of(capsys, "stylize", "a.png", "b.png", "-o", "x.png", "--nosuch")
    assert lines[0].startswith("usage: stylebot stylize")
    assert lines[1] == "stylebot stylize: error: unrecognized arguments: --nosuch"


def test_an_unknown_command_is_offered_listed_commands_only(capsys):
    lines = error_of(capsys, "nosuch")
    assert lines[0] == "usage: stylebot COMMAND [options]"
    assert "choose from run, sync, worker, stylize" in lines[1]
    assert "gpu-check-stylize" not in lines[1] and "<" not in lines[1]


def test_log_level_in_any_case(capsys):
    from bot.__main__ import build_parser

    args = build_parser().parse_args(["worker", "--log-level", "debug"])
    assert args.log_level == "DEBUG"
    lines = error_of(capsys, "run", "--log-level", "loud")
    assert "invalid choice: LOUD (choose from DEBUG, INFO, WARNING, ERROR)" in lines[1]


def test_gpu_check_without_a_gpu_and_bench_clip_without_its_folder_say_so_at_once(tmp_path):
    """Issue 48: gpu-check on a machine without the device spent 26 s and printed "no CUDA GPU"
    ten times; bench-clip painted for 17 s before a traceback for a missing --out folder. Each
    now says so in one line, before any work."""
    import torch

    from tests.cli.helpers import stylebot

    if not torch.cuda.is_available():
        done = stylebot("gpu-check", "--quick")
        assert done.returncode == 3 and "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "--device cuda" in lines[0] and "no CUDA GPU" in lines[0]
    done = stylebot("bench-clip", "--out", str(tmp_path / "missing"), "--device", "cpu")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--out: no such folder" in done.stderr
