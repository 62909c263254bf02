"""Moving pictures in and out: frames, timing and looping kept through every format; a clip over
its limits cut and its frame rate lowered, as documented; what cannot be read refused with a
reason."""

import io

import pytest
from PIL import Image

from bot.engine.params import ImageLimits, StyleParams
from bot.media import clips, encoding
from bot.media.imaging import ImageError
from tests.conftest import gradient_image, moving_clip, png_bytes


@pytest.mark.parametrize("fmt", ["gif", "webp", "png", "mp4"])
def test_frames_timing_and_looping_survive_a_round_trip(fmt):
    clip = moving_clip(frames=9, durations=[60, 80, 100] * 3, loop=fmt != "mp4")
    data = encoding.encode_clip(clip, fmt)
    info = clips.probe_clip(data)
    assert info is not None and info.frames == 9 and info.loop == (fmt != "mp4")
    back = clips.decode_clip(data)
    assert len(back.frames) == 9 and back.frames[0].size == clip.frames[0].size
    assert back.durations == clip.durations
    assert back.loop == (fmt != "mp4") and back.changes == ()
    # the frames come back in the order they were written: each is closest to its own
    for i, frame in enumerate(back.frames):
        own = _difference(frame, clip.frames[i])
        assert own < 12 and own < _difference(frame, clip.frames[(i + 4) % 9]) / 2


def test_a_gif_without_a_loop_block_plays_once():
    clip = moving_clip(frames=3, loop=False)
    info = clips.probe_clip(encoding.encode_clip(clip, "gif"))
    assert info is not None and not info.loop


def test_a_still_is_no_clip():
    still = moving_clip(frames=1).frames[0]
    for fmt in ("PNG", "GIF", "WEBP"):
        import io

        buffer = io.BytesIO()
        still.save(buffer, fmt)
        assert clips.probe_clip(buffer.getvalue()) is None
    assert clips.frames_to_paint(b"not a picture", StyleParams()) == 1


def test_a_long_clip_is_cut_to_its_first_seconds_and_says_so():
    clip = moving_clip(frames=30, durations=[100] * 30)  # 3 s
    fitted = clips.fit(clip, clips.ClipLimits(max_frames=100, max_seconds=1.0))
    assert len(fitted.frames) == 10 and sum(fitted.durations) == 1000
    assert fitted.frames[3] is clip.frames[3]
    assert fitted.changes == ("the first 1 s of 3.0 s",)


def test_too_many_frames_lower_the_frame_rate_and_keep_the_length():
    clip = moving_clip(frames=40, durations=[40] * 40)  # 25 fps, 1.6 s
    fitted = clips.fit(clip, clips.ClipLimits(max_frames=10, max_seconds=10))
    assert len(fitted.frames) == 10 and sum(fitted.durations) == 1600
    assert fitted.frames[1] is clip.frames[4]  # every 4th frame, each shown 4 times as long
    assert fitted.changes == ("6.25 frames a second instead of 25",)


def test_a_long_video_is_decoded_only_up_to_its_limit():
    clip = moving_clip(frames=50, durations=[40] * 50)
    data = encoding.encode_clip(clip, "mp4")
    params = StyleParams(clip_frames=5, clip_seconds=1.0)
    fitted = clips.decode_clip(data, clip_limits=clips.ClipLimits.of(params))
    assert len(fitted.frames) == 5 and sum(fitted.durations) == 1000
    assert fitted.changes == ("the first 1 s of 2.0 s", "5 frames a second instead of 25")
    assert clips.frames_to_paint(data, params) == 5


def test_frames_are_shrunk_while_decoding():
    clip = moving_clip(frames=3, width=200, height=100)
    back = clips.decode_clip(encoding.encode_clip(clip, "gif"), max_side=50)
    assert back.frames[0].size == (50, 25)


def test_a_loop_goes_out_as_a_gif_and_a_video_as_an_mp4():
    loop = moving_clip(frames=6)
    data, fmt, why = encoding.encode_clip_to_fit(loop, 8 * 2**20)
    assert fmt == "gif" and data.startswith(b"GIF8") and why == "a looping GIF"
    video = clips.Clip(loop.frames, loop.durations, False, "MP4")
    data, fmt, why = encoding.encode_clip_to_fit(video, 8 * 2**20)
    assert fmt == "mp4" and data[4:8] == b"ftyp" and why == "an MP4"


def test_a_gif_over_the_upload_limit_becomes_an_mp4_and_then_smaller_frames():
    loop = moving_clip(frames=12, width=160, height=120, noisy=True)
    gif = encoding.encode_clip(loop, "gif")
    mp4 = encoding.encode_clip(loop, "mp4")
    between = (len(mp4) + len(gif)) // 2  # (an MP4's bytes vary a little from run to run)
    data, fmt, why = encoding.encode_clip_to_fit(loop, between)
    assert fmt == "mp4" and len(data) <= between
    assert "the GIF was" in why and "over the upload limit" in why
    data, fmt, why = encoding.encode_clip_to_fit(loop, len(mp4) // 3)
    assert len(data) <= len(mp4) // 3 and "made smaller" in why
    assert clips.probe_clip(data).frames == 12


def test_unreadable_clips_are_refused_with_a_reason():
    data = encoding.encode_clip(moving_clip(frames=4), "mp4")
    with pytest.raises(ImageError, match="video"):
        clips.decode_clip(data[:40] + b"\0" * 200)
    with pytest.raises(ImageError, match="still picture"):
        clips.decode_clip(_png())
    with pytest.raises(ImageError, match="the limit is"):
        clips.decode_clip(data, ImageLimits(max_bytes=100))


def _difference(a: Image.Image, b: Image.Image) -> float:
    import numpy as np

    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean())


def _png() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_bot_host_without_pyav_leaves_videos_to_the_worker(monkeypatch):
    """The `video` extra is optional on a bot host: without it a video is not checked on the bot
    (the worker decodes it), costs its server's most frames, and the CLI says what to install."""
    import sys

    from bot.jobs.intake import check_inputs
    from tests.conftest import noise_image, png_bytes

    video = encoding.encode_clip(moving_clip(frames=4, loop=False), "mp4")
    monkeypatch.setitem(sys.modules, "av", None)  # as if PyAV were not installed
    params = StyleParams(clip_frames=12)
    assert not clips.can_read_video() and clips.frames_to_paint(video, params) == 12
    check_inputs(
        [video, png_bytes(noise_image(32, 32))],
        ["content image", "style image"],
        ImageLimits(),
        params,
    )  # no error: left to the worker
    with pytest.raises(ImageError, match=r"pip install -e '\.\[video\]'"):
        clips.decode_clip(video)
    # a GIF is still checked on the bot: Pillow reads it
    gif = encoding.encode_clip(moving_clip(frames=3), "gif")
    assert clips.frames_to_paint(gif, params) == 3


def test_an_enlarged_content_is_said():
    read_content = clips.read_content
    small = png_bytes(gradient_image(60, 40))
    _, _, notes = read_content(small, StyleParams(size=120))
    assert notes == ("enlarged from 60x40 to 120x80",)
    assert read_content(small, StyleParams(size=60))[2] == ()


def test_a_refused_result_is_made_to_fit_half_its_bytes():
    """What the bot does when Discord answers 413: a still and a moving picture, each again
    within half its bytes; the moving one keeps its frames."""
    from PIL import ImageSequence

    gif = encoding.encode_clip(moving_clip(frames=6, noisy=True), "gif")
    smaller, fmt = encoding.refit_result(gif, len(gif) // 2)
    assert len(smaller) <= len(gif) // 2
    if fmt == "gif":
        assert len(list(ImageSequence.Iterator(Image.open(io.BytesIO(smaller))))) == 6
    else:  # the MP4 is about a tenth of the GIF's bytes, with its frames
        assert fmt == "mp4" and clips.probe_clip(smaller) is not None
    still = png_bytes(gradient_image(200, 150))
    assert len(encoding.refit_result(still, len(still) // 2)[0]) <= len(still) // 2
