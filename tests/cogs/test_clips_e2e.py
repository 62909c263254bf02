"""Moving pictures in Discord: the real discord.py client against the fake Discord on 127.0.0.1,
a real local worker pool."""

from bot.guild_policy import GuildSettings
from bot.media import clips, encoding
from tests.cogs.fake_discord import GUILD_ID
from tests.cogs.harness import ALICE, BotHarness, ephemeral, noise_image, stylize_options, text_of
from tests.cogs.harness import run_with_fake as run
from tests.cogs.test_stylize_e2e import final_edit
from tests.conftest import moving_clip, png_bytes


def clip_attachments(fake, data: bytes, name: str, kind: str) -> list[dict]:
    return [
        fake.add_attachment(name, data, kind, 64, 48),
        fake.add_attachment("style.png", png_bytes(noise_image(32, 32)), "image/png", 32, 32),
    ]


def test_a_gif_comes_back_as_an_animated_gif_and_its_buttons_paint_it_again(database_url):
    gif = encoding.encode_clip(moving_clip(frames=4, durations=[70, 110, 70, 110]), "gif")

    async def scenario(fake):
        async with BotHarness(fake, database_url) as harness:
            settings = await harness.storage.settings.read(GUILD_ID)
            await harness.storage.settings.write(GUILD_ID, settings.replace(cooldown_seconds=0))
            attachments = clip_attachments(fake, gif, "dance.gif", "image/gif")
            token = await fake.slash(
                "stylize",
                stylize_options(attachments, steps=10, size=64, seed=3),
                member_user=ALICE,
                attachments=attachments,
            )
            await fake.wait_for(lambda f: final_edit(f, token))
            result = fake.edits(token)[-1]
            buttons = {
                c["custom_id"].split(":")[2]: c["custom_id"]
                for row in result.json["components"]
                for c in row["components"]
            }
            pressed = await fake.press(buttons["seed"], fake.originals[token], member_user=ALICE)
            await fake.wait_for(lambda f: final_edit(f, pressed))
            return fake.edits(token), fake.edits(pressed)[-1]

    edits, again = run(scenario)
    result = edits[-1]
    upload = result.files[0]
    assert upload.filename == "stylized.gif"
    back = clips.decode_clip(upload.data)
    assert len(back.frames) == 4 and back.durations == [70, 110, 70, 110] and back.loop
    text = text_of(result)
    assert "Done in" in text and "seed 3" in text and "4 frames as a looping GIF" in text
    assert any(any(f.filename == "preview.jpg" for f in e.files) for e in edits[:-1])
    # 🎲 paints the kept clip again with a new seed: a moving picture again
    assert again.files[0].filename == "stylized.gif" and "seed 3\n" not in text_of(again) + "\n"
    assert len(clips.decode_clip(again.files[0].data).frames) == 4


def test_a_video_clip_over_the_servers_limits_is_shortened_and_says_so(database_url):
    video = encoding.encode_clip(moving_clip(frames=12, durations=[100] * 12, loop=False), "mp4")

    async def scenario(fake):
        async with BotHarness(fake, database_url) as harness:
            await harness.storage.settings.write(
                GUILD_ID, GuildSettings(clip_frames=3, clip_seconds=0.6, clip_size=64)
            )
            attachments = clip_attachments(fake, video, "clip.mp4", "video/mp4")
            token = await fake.slash(
                "stylize",
                stylize_options(attachments, steps=4, size=64),
                member_user=ALICE,
                attachments=attachments,
            )
            await fake.wait_for(lambda f: final_edit(f, token))
            return fake.edits(token)[-1]

    result = run(scenario)
    assert result.files[0].filename == "stylized.mp4"
    assert clips.probe_clip(result.files[0].data).frames == 3
    text = text_of(result)
    assert "the first 0.6 s of 1.2 s" in text and "3 frames as an MP4" in text


def test_a_video_as_the_style_is_refused_before_anything_is_queued(database_url):
    video = encoding.encode_clip(moving_clip(frames=3, loop=False), "mp4")

    async def scenario(fake):
        async with BotHarness(fake, database_url):
            content = fake.add_attachment(
                "c.png", png_bytes(noise_image(48, 48)), "image/png", 48, 48
            )
            style = fake.add_attachment("s.mp4", video, "video/mp4", 64, 48)
            token = await fake.slash(
                "stylize",
                stylize_options([content, style]),
                member_user=ALICE,
                attachments=[content, style],
            )
            await fake.wait_for(lambda f: f.callbacks(token))
            return fake.callbacks(token)

    callbacks = run(scenario)
    assert ephemeral(callbacks[0]) and "style image" in text_of(callbacks[0])
    assert "not an image I can use" in text_of(callbacks[0])


def test_hostile_gifs_are_refused_privately_or_fitted_at_once(database_url):
    """Through the real bot: a GIF whose frame lies past the pixel cap (600 bytes) is refused
    privately with the reason, also where Pillow's own bomb check would raise (it was "unhandled
    error in /stylize" and a public "Something went wrong"); a 230 KB GIF of 10,000 frames on a
    6000x6000 screen is read within its budget, painted, and the caption says what was cut."""
    from tests import hostile_clips

    placed = hostile_clips.gif_with_a_frame_placed_at(64, 9999, 9999)
    bomb = hostile_clips.gif_with_a_frame_placed_at(64, 65000, 65000)
    many = hostile_clips.gif_of_tiny_frames(6000, 10_000)

    async def scenario(fake):
        async with BotHarness(fake, database_url, cooldown_seconds=0):
            tokens = []
            for name, data in (("placed.gif", placed), ("bomb.gif", bomb), ("many.gif", many)):
                attachments = clip_attachments(fake, data, name, "image/gif")
                tokens.append(
                    await fake.slash(
                        "stylize",
                        stylize_options(attachments, steps=2, size=64),
                        member_user=ALICE,
                        attachments=attachments,
                    )
                )
                if name != "many.gif":
                    await fake.wait_for(lambda f, t=tokens[-1]: f.followups(t))
            await fake.wait_for(lambda f: final_edit(f, tokens[-1]), timeout=120)
            return [fake.followups(t) for t in tokens[:2]], fake.edits(tokens[-1])[-1], fake

    (placed_replies, bomb_replies), many_result, fake = run(scenario, 180)
    for replies in (placed_replies, bomb_replies):
        assert ephemeral(replies[0]) and "pixels" in text_of(replies[0]), text_of(replies[0])
        assert "Something went wrong" not in text_of(replies[0])
    text = text_of(many_result)
    assert "Done in" in text and "more would take too long to read" in text
    assert "2 frames as a looping GIF" in text
