"""The guild settings store: saved and read back across processes and reopens, refused when
out of range, migrated when a default changed."""

import asyncio

import pytest
import sqlalchemy as sa

from bot.guild_policy import GuildSettings, SettingsError
from bot.storage import Storage
from bot.storage.db import MIGRATIONS, schema_version
from tests.asyncrun import run

# the PostgreSQL database is one for all tests: its tests run one at a time, on one xdist worker
pytestmark = pytest.mark.xdist_group("postgresql")


def test_settings_survive_a_reopen(database_url):
    async def scenario():
        storage = await Storage.open(database_url)
        try:
            await storage.settings.reset(42)
            assert await storage.settings.read(42) == GuildSettings()
            changed = GuildSettings().replace(strength=2.5, steps=120, allowed_channels=(7, 8))
            await storage.settings.write(42, changed, by=1)
            assert await storage.settings.read(42) == changed
            await storage.settings.write(42, changed.replace(steps=99), by=1)
        finally:
            await storage.close()
        reopened = await Storage.open(database_url)
        try:
            assert (await reopened.settings.read(42)).steps == 99
            assert (await reopened.settings.read(42)).allowed_channels == (7, 8)
            assert await reopened.migrate() == len(MIGRATIONS)  # migrating twice is harmless
            async with (
                reopened.engine.connect() as conn
            ):  # one row per migration, applied once each
                versions = (await conn.execute(sa.select(schema_version.c.version))).scalars().all()
            assert sorted(versions) == list(range(1, len(MIGRATIONS) + 1))
            await reopened.settings.reset(42)
            assert await reopened.settings.read(42) == GuildSettings()
        finally:
            await reopened.close()

    run(scenario())


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


def test_two_processes_see_each_others_changes_and_first_saves_do_not_collide(database_url):
    """Two bot processes share one database: simultaneous first saves must not raise a
    duplicate-key error, and a change made by one is seen by the other once the cache's TTL is
    over (not before: the other process's cache answers until then)."""
    now = [1000.0]

    def clock() -> float:
        return now[0]

    async def scenario():
        one = await Storage.open(database_url, settings_ttl=5.0, clock=clock)
        two = await Storage.open(database_url, settings_ttl=5.0, clock=clock)
        try:
            await one.settings.reset(77)
            assert (await two.settings.read(77)).steps == GuildSettings().steps  # now cached by two
            await asyncio.gather(
                *(
                    s.settings.write(77, GuildSettings().replace(steps=n), by=n)
                    for s, n in ((one, 11), (two, 22))
                )
            )
            assert (await one.settings.read(77)).steps in (11, 22)
            seen = (await two.settings.read(77)).steps
            await one.settings.write(77, GuildSettings().replace(steps=33), by=1)
            now[0] += 4.9
            assert (await two.settings.read(77)).steps == seen  # cached: within the TTL
            now[0] += 0.2
            assert (await two.settings.read(77)).steps == 33
            await one.settings.reset(77)
        finally:
            await one.close()
            await two.close()

    run(scenario())


def test_a_server_that_saved_300_steps_gets_the_fast_default_after_the_migration(database_url):
    """Every save wrote the old default of 300 steps with it: the migration of issue 29 makes
    it 0 (the size's schedule); other values stay."""
    import json

    from bot.storage.db import guild_settings

    async def scenario():
        storage = await Storage.open(database_url)
        try:
            await storage.settings.write(4301, GuildSettings().replace(steps=300, size=256), by=1)
            await storage.settings.write(4302, GuildSettings().replace(steps=120), by=1)
            async with storage.engine.begin() as conn:  # as if the last migration had not run
                await conn.execute(
                    schema_version.delete().where(schema_version.c.version == len(MIGRATIONS))
                )
            await storage.migrate()
            async with storage.engine.connect() as conn:
                rows = dict(
                    (await conn.execute(
                        sa.select(guild_settings.c.guild_id, guild_settings.c.settings)
                    )).all()
                )  # fmt: skip
            return (
                json.loads(rows[4301]),
                (await storage.settings.read(4302)).steps,
            )
        finally:
            await storage.settings.reset(4301)
            await storage.settings.reset(4302)
            await storage.close()

    migrated, kept = run(scenario())
    assert migrated["steps"] == 0 and migrated["size"] == 256 and kept == 120
