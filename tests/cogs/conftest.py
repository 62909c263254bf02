import pytest


@pytest.fixture
def database_url(tmp_path):
    """A fresh SQLite file for one test's bot."""
    return f"sqlite+aiosqlite:///{tmp_path / 'stylebot.db'}"
