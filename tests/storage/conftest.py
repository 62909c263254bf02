"""The database of the storage tests: a SQLite file, and the PostgreSQL on 127.0.0.1 where one
runs (one database for all tests: those tests run one at a time, on one xdist worker)."""

import os

import pytest

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


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'stylebot.db'}"
    if not postgres_reachable():
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    return POSTGRES_URL
