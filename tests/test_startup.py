"""What a newcomer meets when something is missing: one line, its own exit code, nothing on disk."""

import os
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
            "TORCH_HOME": str(folder / "torch-home"),
        },
        cwd=folder,
    )
    assert done.returncode == 3, done.stderr
    assert "stylebot download-weights" in done.stderr and "STYLEBOT_VGG19_WEIGHTS" in done.stderr
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


def test_download_weights_without_network(folder):
    done = stylebot(
        "download-weights", env={"TORCH_HOME": str(folder / "torch-home")}, cwd=folder, timeout=120
    )
    assert done.returncode == 3
    assert "could not download the VGG-19 weights" in done.stderr and len(error_lines(done)) == 1
