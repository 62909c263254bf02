from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

# Under pytest-xdist several test processes share the machine's cores: each of them, and every
# process they start, runs torch on one thread, so that no two thread pools fight over a core.
PARALLEL = bool(os.environ.get("PYTEST_XDIST_WORKER"))


def pytest_configure(config):
    # the bots the tests start fork their workers from a server that imported torch once (3 s of
    # a core saved a worker); the executor's own tests build their pools with spawn, the default
    os.environ.setdefault("STYLEBOT_WORKER_START", "forkserver")
    if PARALLEL:
        os.environ["OMP_NUM_THREADS"] = "1"  # the stylebot commands and workers tests start
        os.environ["STYLEBOT_WORKER_THREADS"] = "1"  # the local pools of `stylebot run`
        import torch

        torch.set_num_threads(1)


POSTGRES_URL = os.environ.get(
    "STYLEBOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def postgres_reachable() -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture
def database_url(request, tmp_path):
    """The database of one test: a fresh SQLite file; or, where a folder's tests ask for both
    (tests/storage/conftest.py), the PostgreSQL on 127.0.0.1 too, skipped where none runs (one
    database for all such tests: they run one at a time, on one xdist worker)."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'stylebot.db'}"
    if not postgres_reachable():
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    return POSTGRES_URL


@pytest.fixture(scope="session")
def random_vgg():
    """The real VGG-19 architecture with random weights (tests only)."""
    from bot.engine.vgg import load_vgg19

    return load_vgg19("random")


def gradient_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth colourful picture with some structure."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    r = 0.5 + 0.5 * np.sin(6 * x + rng.uniform(0, 6))
    g = 0.5 + 0.5 * np.cos(5 * y + rng.uniform(0, 6))
    b = 0.5 + 0.5 * np.sin(4 * (x + y) + rng.uniform(0, 6))
    return Image.fromarray((np.stack([r, g, b], -1) * 255).astype(np.uint8), "RGB")


def noise_image(width: int, height: int, seed: int = 0, tint=(1.0, 1.0, 1.0)) -> Image.Image:
    rng = np.random.default_rng(seed)
    array = rng.uniform(0, 255, (height, width, 3)) * np.array(tint)
    return Image.fromarray(array.astype(np.uint8), "RGB")


def png_bytes(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def moving_clip(
    frames: int = 8,
    width: int = 64,
    height: int = 48,
    durations: list[int] | None = None,
    loop: bool = True,
    *,
    step: int = 3,
    noisy: bool = False,
):
    """A tiny moving picture: a checked red and yellow square moving right by `step` px a frame
    over a colourful gradient (with `noisy`, over noise too: large to encode)."""
    from bot.media.clips import Clip

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    background = np.stack([x / width, y / height, 0.5 + 0.4 * np.sin(x / 5 + y / 7)], -1) * 255
    pictures = []
    for t in range(frames):
        a = background.copy()
        if noisy:
            a = a * 0.6 + rng.random(a.shape) * 100
        left = (6 + t * step) % (width - width // 4)  # round again past the right edge
        top, side = height // 3, (height // 3, width // 4)
        checks = ((np.add.outer(np.arange(side[0]) // 4, np.arange(side[1]) // 4)) % 2)[..., None]
        a[top : top + side[0], left : left + side[1]] = checks * (230, 40, 40) + (1 - checks) * (
            240,
            220,
            60,
        )
        pictures.append(Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB"))
    return Clip(pictures, list(durations or [80] * frames), loop, "GIF")
