"""The guilds store: a server the bot left is forgotten after a grace, unless it rejoins."""

import pytest

from bot.guild_policy import GuildSettings
from bot.storage import Storage
from tests.asyncrun import run

# the PostgreSQL database is one for all tests: its tests run one at a time, on one xdist worker
pytestmark = pytest.mark.xdist_group("postgresql")


def test_a_server_the_bot_left_is_forgotten_after_the_grace_unless_it_rejoins(database_url):
    from bot.presets import Preset, image_key

    left, rejoined = 5151, 5252

    async def scenario():
        storage = await Storage.open(database_url)
        try:
            for guild in (left, rejoined):
                await storage.settings.write(guild, GuildSettings().replace(steps=77), by=1)
                await storage.presets.add(guild, Preset(name="Waves"), b"img", limit=25)
            await storage.guilds.left(left)
            await storage.guilds.left(rejoined)
            await storage.guilds.joined(rejoined)
            kept = await storage.guilds.purge_left(grace=3600)  # not yet
            gone = await storage.guilds.purge_left(grace=0)
            images = await storage.blobs.get([image_key(left, "Waves")])
            state = (
                (await storage.settings.read(left)).steps,
                len(await storage.presets.list(left)),
                (await storage.settings.read(rejoined)).steps,
                len(await storage.presets.list(rejoined)),
            )
            await storage.settings.reset(rejoined)
            await storage.presets.remove(rejoined, "Waves")
            return kept, gone, images, state
        finally:
            await storage.close()

    kept, gone, images, state = run(scenario())
    assert kept == [] and gone == [left] and images is None
    assert state == (GuildSettings().steps, 0, 77, 1)
