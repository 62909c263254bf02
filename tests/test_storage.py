import asyncio
import os

import pytest

from bot.storage import MIGRATIONS, GuildSettings, SettingsError, Storage

POSTGRES_URL = os.environ.get("STYLEBOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def _postgres_reachable() -> bool:
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
    if not _postgres_reachable():
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    return POSTGRES_URL


def test_settings_survive_a_reopen(database_url):
    async def scenario():
        storage = await Storage.open(database_url)
        try:
            await storage.reset(42)
            assert await storage.get(42) == GuildSettings()
            changed = GuildSettings().replace(strength=2.5, steps=120, allowed_channels=(7, 8))
            await storage.put(42, changed, by=1)
            assert await storage.get(42) == changed
            await storage.put(42, changed.replace(steps=99), by=1)
        finally:
            await storage.close()
        reopened = await Storage.open(database_url)
        try:
            assert (await reopened.get(42)).steps == 99
            assert (await reopened.get(42)).allowed_channels == (7, 8)
            assert await reopened.migrate() == len(MIGRATIONS)  # migrating twice is harmless
            await reopened.reset(42)
            assert await reopened.get(42) == GuildSettings()
        finally:
            await reopened.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(strength=-1), "strength"),
        (dict(content_weight=1.0), "both"),
        (dict(size=4000), "size cap"),
        (dict(steps=900), "steps cap"),
        (dict(optimizer="sgd"), "optimizer"),
        (dict(style_layer_weights=(1.0,)), "5 layer weights"),
        (dict(style_layer_weights=(float("inf"), 1.0, 1.0, 1.0, 1.0)), "finite"),
        (dict(strength=float("nan")), "finite"),
        (dict(content_weight=float("inf"), style_weight=1.0), "finite"),
    ],
)
def test_invalid_settings_are_refused(change, message):
    with pytest.raises(SettingsError, match=message):
        GuildSettings().replace(**change)
