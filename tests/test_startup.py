"""What a newcomer meets when something is missing: one line, its own exit code, nothing on disk."""

import os
import socket
import subprocess
import sys

import pytest


def stylebot(*args, env: dict, cwd, timeout=180):
    base = {k: v for k, v in os.environ.items() if not k.startswith("STYLEBOT_")}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**base, "PYTHONPATH": os.getcwd(), **env},
        timeout=timeout,
    )


def error_lines(done) -> list[str]:
    return [
        line
        for line in done.stderr.splitlines()
        if "stylebot: error:" in line or "Traceback" in line
    ]


@pytest.fixture
def folder(tmp_path):
    return tmp_path


def test_no_token(folder):
    done = stylebot("run", env={}, cwd=folder)
    assert done.returncode == 2 and "STYLEBOT_DISCORD_TOKEN is not set" in done.stderr
    assert len(error_lines(done)) == 1 and not list(folder.iterdir())


def test_missing_weights_create_nothing(folder):
    done = stylebot(
        "run",
        env={
            "STYLEBOT_DISCORD_TOKEN": "x",
            "STYLEBOT_DEVICES": "cpu",
            "STYLEBOT_VGG19_WEIGHTS": "torchvision",
            "TORCH_HOME": str(folder / "torch-home"),
        },
        cwd=folder,
    )
    assert done.returncode == 3, done.stderr
    assert "stylebot download-weights" in done.stderr and "bundled original" in done.stderr
    assert len(error_lines(done)) == 1
    assert not (folder / "stylebot.db").exists()


@pytest.mark.parametrize(
    "url, message",
    [
        ("nosuchdb://nowhere", "not a usable database URL"),
        (
            "sqlite+aiosqlite:////no/such/folder/stylebot.db",
            "folder of the SQLite database does not exist",
        ),
        ("postgresql+asyncpg://nobody@127.0.0.1:1/none", "cannot be used"),
        ("postgresql+asyncpg://nobody@127.0.0.1:port/none", "not a database URL"),
    ],
)
def test_a_bad_database(folder, url, message):
    done = stylebot(
        "run",
        env={
            "STYLEBOT_DISCORD_TOKEN": "x",
            "STYLEBOT_DEVICES": "cpu",
            "STYLEBOT_VGG19_WEIGHTS": "random",
            "STYLEBOT_DATABASE_URL": url,
        },
        cwd=folder,
    )
    assert done.returncode == 4, done.stderr
    assert message in done.stderr and len(error_lines(done)) == 1


def test_discord_unreachable(folder):
    done = stylebot(
        "run",
        env={
            "STYLEBOT_DISCORD_TOKEN": "tok-SECRET-123",
            "STYLEBOT_DEVICES": "cpu",
            "STYLEBOT_VGG19_WEIGHTS": "random",
            "STYLEBOT_DISCORD_API_BASE": "http://127.0.0.1:9/api/v10",
        },
        cwd=folder,
    )
    assert done.returncode == 5, done.stderr
    assert "Discord could not be reached" in done.stderr and len(error_lines(done)) == 1
    assert "tok-SECRET-123" not in done.stderr  # never the token
    # the files relative to the folder it starts in are named (issue 48)
    assert f"no .env in {folder}" in done.stderr
    assert f"SQLite file {folder / 'stylebot.db'} (created now)" in done.stderr


def test_download_weights_without_network(folder):
    done = stylebot(
        "download-weights", env={"TORCH_HOME": str(folder / "torch-home")}, cwd=folder, timeout=120
    )
    assert done.returncode == 3
    assert "could not download the VGG-19 weights" in done.stderr and len(error_lines(done)) == 1


def test_stylebot_alone_prints_help_without_internal_commands(folder):
    done = stylebot(env={}, cwd=folder)
    assert done.returncode == 0 and done.stderr == ""
    assert "stylize" in done.stdout and "download-weights" in done.stdout
    assert "gpu-check-stylize" not in done.stdout


def test_every_command_has_a_description():
    from bot.__main__ import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert {name for name, p in commands.items() if not p.description} == set()


def test_a_worker_on_a_device_that_is_not_here_exits_with_one_line(folder):
    done = stylebot("worker", "--device", "cuda:7", env={}, cwd=folder, timeout=120)
    assert done.returncode == 3, done.stderr
    assert "--device cuda:7:" in done.stderr and len(error_lines(done)) == 1
    assert "Traceback" not in done.stderr


def test_unknown_settings_are_named_with_the_closest_known_one():
    from bot.config import unknown_variables

    warnings = unknown_variables(
        {
            "STYLEBOT_DATABSE_URL": "x",
            "STYLEBOT_DATABASE_URL": "y",
            "STYLEBOT_ZZZ": "1",
            "HOME": "/",
        }
    )
    assert warnings == [
        "STYLEBOT_DATABSE_URL is not a setting and is ignored; did you mean STYLEBOT_DATABASE_URL?",
        'STYLEBOT_ZZZ is not a setting and is ignored (README, "Settings")',
    ]


def test_run_warns_at_start_about_an_unknown_setting(folder):
    done = stylebot(
        "run",
        env={
            "STYLEBOT_DISCORD_TOKEN": "x",
            "STYLEBOT_EXECUTOR": "celery",
            "STYLEBOT_REDIS_URL": "redis://127.0.0.1:1/0",
            "STYLEBOT_JOB_TIME_LIMT": "60",
            "STYLEBOT_DISCORD_API_BASE": "http://127.0.0.1:9/api/v10",
        },
        cwd=folder,
    )
    assert "STYLEBOT_JOB_TIME_LIMT is not a setting" in done.stderr, done.stderr
    assert "did you mean STYLEBOT_JOB_TIME_LIMIT?" in done.stderr


def test_sigterm_while_the_workers_start_is_a_stop(folder):
    import signal
    import time

    base = {k: v for k, v in os.environ.items() if not k.startswith("STYLEBOT_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        env={
            **base,
            "PYTHONPATH": os.getcwd(),
            "STYLEBOT_DISCORD_TOKEN": "x",
            "STYLEBOT_DEVICES": "cpu",
            "STYLEBOT_VGG19_WEIGHTS": "random",
        },
        cwd=folder,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the handlers are installed; the workers load VGG-19
        seen.append(process.stderr.readline())
        if "starting 1 worker(s)" in seen[-1] or not seen[-1]:
            break
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=60)
    stderr = "".join(seen) + rest
    assert process.returncode == 0, stderr
    assert "SIGTERM: stopping" in stderr and stderr.rstrip().endswith("stopped"), stderr
    assert "error" not in stderr.lower() and not (folder / "stylebot.db").exists()


def test_a_workers_own_settings_are_known_to_the_worker_and_not_to_the_bot():
    from bot.config import WorkerSettings, unknown_variables

    environ = {"STYLEBOT_METRICS_PORT": "9101", "STYLEBOT_METRICS_HOST": "0.0.0.0"}
    assert unknown_variables(environ, cls=WorkerSettings) == []
    assert len(unknown_variables(environ)) == 2  # the bot serves its metrics on its health port


def test_health_asks_the_port_the_bot_was_given(folder):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = stylebot("health", env={"STYLEBOT_HEALTH_PORT": str(port)}, cwd=folder, timeout=60)
    assert done.returncode == 1 and f"127.0.0.1:{port}/healthz" in done.stderr


def test_health_without_a_port_says_the_bot_serves_none(folder):
    """Issue 48: `stylebot health` asked port 8080 where the bot serves no health port (it is off
    unless STYLEBOT_HEALTH_PORT is set): it says so instead."""
    done = stylebot("health", env={}, cwd=folder, timeout=60)
    assert done.returncode == 2 and "STYLEBOT_HEALTH_PORT" in done.stderr
    assert len(error_lines(done)) == 1
