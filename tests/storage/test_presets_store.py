"""The presets store: images kept with their presets, a limit that holds under concurrent adds,
names compared without case, and the preset rules."""

import asyncio

import pytest

from bot.storage import Storage
from tests.asyncrun import run

# the PostgreSQL database is one for all tests: its tests run one at a time, on one xdist worker
pytestmark = pytest.mark.xdist_group("postgresql")


def test_presets_with_their_images_a_limit_and_names_without_case(database_url):
    import random

    from bot.presets import Preset, PresetError, checked, image_key

    guild = random.randrange(10**17, 10**18)  # PostgreSQL's test database is shared

    async def scenario():
        storage = await Storage.open(database_url)
        try:
            await storage.presets.add(
                guild, checked(Preset(name=" Starry   Night ", strength=2.0)), b"img1", limit=2
            )
            with pytest.raises(PresetError, match="already has a preset called Starry Night"):
                await storage.presets.add(guild, Preset(name="starry night"), b"x", limit=2)
            await storage.presets.add(guild, Preset(name="Waves"), b"img2", limit=2)
            with pytest.raises(PresetError, match="2 presets, the most"):
                await storage.presets.add(guild, Preset(name="Third"), b"x", limit=2)
            listed = [p.name for p in await storage.presets.list(guild)]
            found = await storage.presets.get(guild, "STARRY NIGHT")
            removed = await storage.presets.remove(guild, "waves")
            again = await storage.presets.remove(guild, "waves")
            image_gone = await storage.blobs.get([image_key(guild, "Waves")])
            other_guild = await storage.presets.list(guild + 1)
            await storage.presets.remove(guild, "Starry Night")
            return listed, found, removed, again, image_gone, other_guild
        finally:
            await storage.close()

    listed, found, removed, again, image_gone, other_guild = run(scenario())
    assert listed == ["Starry Night", "Waves"]
    assert found is not None and found[0].strength == 2.0 and found[1] == b"img1"
    assert removed is not None and removed.name == "Waves" and again is None
    assert image_gone is None and other_guild == []


@pytest.mark.parametrize(
    ("name", "strength", "colours", "message"),
    [
        ("", None, None, "1 to 32"),
        ("x" * 33, None, None, "1 to 32"),
        ("<@everyone>", None, None, "letters, digits"),
        ("ok", float("inf"), None, "between 0 and 100"),
        ("ok", None, "sepia", "one of none"),
    ],
)
def test_preset_rules(name, strength, colours, message):
    from bot.presets import Preset, PresetError, checked

    with pytest.raises(PresetError, match=message):
        checked(Preset(name=name, strength=strength, preserve_colors=colours))


def test_the_preset_limit_holds_when_admins_add_at_once(database_url):
    from bot.presets import Preset, PresetError, checked

    guild = 4242

    async def scenario():
        storage = await Storage.open(database_url)
        try:
            for preset in await storage.presets.list(guild):
                await storage.presets.remove(guild, preset.name)

            async def add(name):
                try:
                    await storage.presets.add(guild, checked(Preset(name=name)), b"img", limit=5)
                    return "saved"
                except PresetError as exc:
                    return str(exc)

            many = await asyncio.gather(*(add(f"Style {i}") for i in range(12)))
            for preset in await storage.presets.list(guild):
                await storage.presets.remove(guild, preset.name)
            same = await asyncio.gather(*(add("Starry Night") for _ in range(4)))
            kept = len(await storage.presets.list(guild))
            for preset in await storage.presets.list(guild):
                await storage.presets.remove(guild, preset.name)
            return many, same, kept
        finally:
            await storage.close()

    many, same, kept = run(scenario())
    assert many.count("saved") == 5 and all(
        "the most it may keep" in m for m in many if m != "saved"
    )
    assert same.count("saved") == 1 and kept == 1
    assert all("already has a preset called Starry Night" in m for m in same if m != "saved")


def test_a_name_too_long_once_folded_is_refused_in_words():
    from bot.presets import Preset, PresetError, checked

    with pytest.raises(PresetError, match="too long once its letters are compared"):
        checked(Preset(name="ﬃ" * 32))
