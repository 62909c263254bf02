"""Server style presets, the admin settings panel, and a half pick finished with /stylize."""

import asyncio

from tests.cogs.fake_discord import GUILD_ID, MANAGE_GUILD
from tests.cogs.harness import (
    ALICE,
    BOB,
    BotHarness,
    ephemeral,
    picture_attachments,
    text_of,
)
from tests.cogs.harness import (
    run_with_fake as run,
)
from tests.conftest import noise_image, png_bytes


async def no_cooldown(harness):
    settings = await harness.storage.settings.read(GUILD_ID)
    await harness.storage.settings.write(
        GUILD_ID, settings.replace(cooldown_seconds=0, size=64, steps=2)
    )


def done(fake, token):
    return [e for e in fake.edits(token) if "Done in" in text_of(e)]


async def add_preset(fake, name, *, member=ALICE, permissions=MANAGE_GUILD, **options):
    image = fake.add_attachment("starry.png", png_bytes(noise_image(40, 40)), "image/png", 40, 40)
    extra = [
        {"name": k, "type": 10 if k == "strength" else 3, "value": v} for k, v in options.items()
    ]
    token = await fake.slash(
        "stylize-settings",
        [
            {"name": "name", "type": 3, "value": name},
            {"name": "image", "type": 11, "value": image["id"]},
            *extra,
        ],
        subcommand="preset add",
        member_user=member,
        permissions=permissions,
        attachments=[image],
    )
    # a refusal is the callback itself; a save defers, then follows up
    return await fake.wait_for(
        lambda f: [r for r in f.callbacks(token) + f.followups(token) if text_of(r)]
    )


def test_presets_are_saved_by_admins_offered_to_members_and_used(database_url):
    async def scenario(fake):
        async with BotHarness(fake, database_url, max_presets=2) as harness:
            await no_cooldown(harness)
            refused = await add_preset(fake, "Nope", member=BOB, permissions=0)
            saved = await add_preset(
                fake, "Starry Night", strength=3.0, preserve_colors="luminance"
            )
            await add_preset(fake, "Waves")
            full = await add_preset(fake, "Third")
            taken = await add_preset(fake, "starry  night")
            choices = await fake.autocomplete(
                "stylize",
                [{"name": "preset", "type": 3, "value": "star", "focused": True}],
                member_user=BOB,
            )
            (content, _) = picture_attachments(fake)
            job = await fake.slash(
                "stylize",
                [
                    {"name": "content", "type": 11, "value": content["id"]},
                    {"name": "preset", "type": 3, "value": "starry night"},
                ],
                member_user=BOB,
                attachments=[content],
            )
            result = await fake.wait_for(lambda f: done(f, job))
            unknown = await fake.slash(
                "stylize",
                [
                    {"name": "content", "type": 11, "value": content["id"]},
                    {"name": "preset", "type": 3, "value": "Sunflowers"},
                ],
                member_user=BOB,
                attachments=[content],
            )
            # a preset is read after the defer (the database may be slow): the refusal follows
            unknown_reply = await fake.wait_for(lambda f: f.followups(unknown))
            listed = await fake.slash(
                "stylize-settings", [], subcommand="preset list", member_user=ALICE,
                permissions=MANAGE_GUILD,
            )  # fmt: skip
            listed_reply = await fake.wait_for(lambda f: f.callbacks(listed))
            removed = await fake.slash(
                "stylize-settings",
                [{"name": "name", "type": 3, "value": "WAVES"}],
                subcommand="preset remove",
                member_user=ALICE,
                permissions=MANAGE_GUILD,
            )
            await fake.wait_for(lambda f: f.callbacks(removed))
            left = await harness.storage.presets.list(GUILD_ID)
            return (
                refused, saved, full, taken, choices, result[-1], unknown_reply[0],
                listed_reply[0], left, fake.callbacks(removed)[0],
            )  # fmt: skip

    (refused, saved, full, taken, choices, result, unknown, listed, left, removed) = run(scenario)
    assert "Manage" in text_of(refused[-1])
    assert "Saved the preset **Starry Night** · strength 3 · colours: luminance" in text_of(
        saved[-1]
    )
    assert "the most it may keep" in text_of(full[-1])
    assert "already has a preset called Starry Night" in text_of(taken[-1])
    assert choices == [
        {"name": "Starry Night · strength 3 · colours: luminance", "value": "Starry Night"}
    ]
    caption = text_of(result)
    assert "preset Starry Night" in caption and "strength 3" in caption
    assert ephemeral(unknown) and "no preset called `Sunflowers`" in text_of(unknown)
    assert "2 of 2 presets" in text_of(listed) and "**Waves**" in text_of(listed)
    assert [p.name for p in left] == ["Starry Night"] and "Removed the preset **Waves**" in text_of(
        removed
    )


def field_ids(modal) -> list[str]:
    """The custom ids of a modal's text inputs, in order."""
    return [
        c["custom_id"]
        for row in modal.json["data"]["components"]
        for c in row.get("components", [row.get("component", {})])
    ]


async def open_panel(fake):
    """An admin opens /stylize-settings panel: (the panel's callback, its message)."""
    opened = await fake.slash(
        "stylize-settings", [], subcommand="panel", member_user=ALICE, permissions=MANAGE_GUILD
    )
    (panel,) = await fake.wait_for(lambda f: f.callbacks(opened))
    return panel, fake.originals[opened]


def test_the_settings_panel_saves_through_the_same_policy(database_url):
    async def scenario(fake):
        async with BotHarness(fake, database_url) as harness:
            panel, message = await open_panel(fake)
            ids = [
                c["custom_id"]
                for row in panel.json["data"]["components"]
                for c in row["components"]
            ]
            steps_select, _, _, _, numbers = ids
            chose = await fake.select(
                steps_select, ["500"], message, member_user=ALICE, permissions=MANAGE_GUILD
            )
            (updated,) = await fake.wait_for(lambda f: f.callbacks(chose))
            after_select = await harness.storage.settings.read(GUILD_ID)
            sneaky = await fake.select(steps_select, ["50"], message, member_user=BOB)
            (denied,) = await fake.wait_for(lambda f: f.callbacks(sneaky))
            pressed = await fake.press(
                numbers, message, member_user=ALICE, permissions=MANAGE_GUILD
            )
            (modal,) = await fake.wait_for(lambda f: f.callbacks(pressed))
            values = dict(zip(field_ids(modal), ["2.5", "768", "600", "10"], strict=True))
            submitted = await fake.submit_modal(
                modal.json["data"]["custom_id"], values, member_user=ALICE,
                permissions=MANAGE_GUILD, message=message,
            )  # fmt: skip
            (saved,) = await fake.wait_for(lambda f: f.callbacks(submitted))
            # a modal answers once: the admin opens it again
            again = await fake.press(numbers, message, member_user=ALICE, permissions=MANAGE_GUILD)
            (second,) = await fake.wait_for(lambda f: f.callbacks(again))
            bad = await fake.submit_modal(
                second.json["data"]["custom_id"],
                dict(zip(field_ids(second), ["2", "huge", "600", "10"], strict=True)),
                member_user=ALICE, permissions=MANAGE_GUILD, message=message,
            )  # fmt: skip
            (refused,) = await fake.wait_for(lambda f: f.callbacks(bad))
            return (
                panel, updated, after_select, denied, modal, saved, refused,
                await harness.storage.settings.read(GUILD_ID),
            )  # fmt: skip

    panel, updated, after_select, denied, modal, saved, refused, final = run(scenario)
    assert ephemeral(panel) and "**Steps:** the size’s schedule" in text_of(panel)
    assert updated.json["type"] == 7 and "**Steps:** 500" in text_of(updated)
    assert after_select.steps == 500
    assert ephemeral(denied) and "Manage Server" in text_of(denied)
    assert modal.json["type"] == 9
    assert "strength 2.5" in text_of(saved) and "up to 768" in text_of(saved)
    assert "plain numbers" in text_of(refused)
    assert (final.strength, final.max_size, final.max_steps, final.cooldown_seconds) == (
        2.5, 768, 600, 10,
    )  # fmt: skip


def test_the_settings_modal_changes_only_what_the_admin_changed(database_url):
    """Raw alpha and beta survive a modal that changed only the cooldown; a typed "-0" is 0."""

    async def open_modal(fake, numbers, message):
        pressed = await fake.press(numbers, message, member_user=ALICE, permissions=MANAGE_GUILD)
        (modal,) = await fake.wait_for(lambda f: f.callbacks(pressed))
        shown = [
            c.get("value", "")
            for row in modal.json["data"]["components"]
            for c in row.get("components", [row.get("component", {})])
        ]
        return modal, shown

    async def submit(fake, modal, values, message):
        sent = await fake.submit_modal(
            modal.json["data"]["custom_id"], dict(zip(field_ids(modal), values, strict=True)),
            member_user=ALICE, permissions=MANAGE_GUILD, message=message,
        )  # fmt: skip
        (answer,) = await fake.wait_for(lambda f: f.callbacks(sent))
        return answer

    async def scenario(fake):
        async with BotHarness(fake, database_url) as harness:
            raw = (await harness.storage.settings.read(GUILD_ID)).replace(
                content_weight=1.0, style_weight=1000.0
            )
            await harness.storage.settings.write(GUILD_ID, raw, by=1)
            panel, message = await open_panel(fake)
            numbers = panel.json["data"]["components"][-1]["components"][0]["custom_id"]
            modal, shown = await open_modal(fake, numbers, message)
            await submit(fake, modal, [*shown[:3], "5"], message)  # only the cooldown changed
            kept = await harness.storage.settings.read(GUILD_ID)
            modal, shown = await open_modal(fake, numbers, message)
            zero = await submit(fake, modal, ["-0", *shown[1:]], message)
            return shown, kept, zero, await harness.storage.settings.read(GUILD_ID)

    shown, kept, zero, final = run(scenario)
    assert (kept.content_weight, kept.style_weight, kept.cooldown_seconds) == (1.0, 1000.0, 5)
    assert shown[0] == ""  # raw weights set: the strength field starts empty
    assert final.content_weight is None and str(final.strength) == "0.0"
    assert "strength 0\n" in text_of(zero) and "-0" not in text_of(zero)


def test_a_picked_content_is_finished_with_stylize_and_a_style_attachment(database_url):
    async def scenario(fake):
        async with BotHarness(fake, database_url) as harness:
            await no_cooldown(harness)
            content, style = picture_attachments(fake)
            posted = fake.member_message(BOB, [content])
            picked = await fake.context_menu("Stylize: use as content", posted, member_user=ALICE)
            (told,) = await fake.wait_for(lambda f: f.callbacks(picked))
            job = await fake.slash(
                "stylize",
                [{"name": "style", "type": 11, "value": style["id"]}],
                member_user=ALICE,
                attachments=[style],
            )
            result = await fake.wait_for(lambda f: done(f, job))
            again = await fake.slash(
                "stylize",
                [{"name": "style", "type": 11, "value": style["id"]}],
                member_user=ALICE,
                attachments=[style],
            )
            (no_content,) = await fake.wait_for(lambda f: f.callbacks(again))
            return told, result[-1], no_content

    told, result, no_content = run(scenario)
    assert "run `/stylize` with the style" in text_of(told)
    assert result.files
    assert ephemeral(no_content) and "Give a content image" in text_of(no_content)


def test_a_list_of_25_long_preset_names_fits_in_one_message(database_url):
    """Discord refuses content over 2,000 characters (the fake Discord too): the list fits."""
    from bot.presets import Preset

    async def scenario(fake):
        async with BotHarness(fake, database_url, max_presets=25) as harness:
            for i in range(25):
                preset = Preset(
                    name=f"Preset number {i:02d} with a long name"[:32],
                    strength=12.5,
                    preserve_colors="luminance",
                    created_by=900000000000000001,
                )
                await harness.storage.presets.add(GUILD_ID, preset, b"image", limit=25)
            listed = await fake.slash(
                "stylize-settings", [], subcommand="preset list", member_user=ALICE,
                permissions=MANAGE_GUILD,
            )  # fmt: skip
            return (await fake.wait_for(lambda f: f.callbacks(listed)))[0]

    listed = run(scenario)
    text = text_of(listed)
    assert listed.json["type"] == 4 and text.startswith("25 of 25 presets:")
    assert len(text) <= 2000 and text.rstrip().endswith("more")


def test_a_server_that_removed_the_bot_is_forgotten_after_the_grace(database_url):
    from bot.presets import Preset

    async def scenario(fake):
        async with BotHarness(
            fake, database_url, guild_data_grace=0.0, delivery_retry_interval=0.3
        ) as harness:
            await harness.storage.presets.add(GUILD_ID, Preset(name="Waves"), b"img", limit=25)
            await fake.send_event("GUILD_DELETE", {"id": str(GUILD_ID)})  # the bot was removed
            for _ in range(100):
                if not await harness.storage.presets.list(GUILD_ID):
                    return True
                await asyncio.sleep(0.1)
            return False

    assert run(scenario)
