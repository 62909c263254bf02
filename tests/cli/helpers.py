"""Running the `stylebot` command as a person does: a real subprocess."""

import os
import subprocess
import sys


def stylebot(*args, env_weights="random", cwd=None, extra_env=None):
    env = {k: v for k, v in os.environ.items() if k != "STYLEBOT_VGG19_WEIGHTS"}
    if env_weights is not None:
        env["STYLEBOT_VGG19_WEIGHTS"] = env_weights
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )
