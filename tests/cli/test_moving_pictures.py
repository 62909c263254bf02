"""`stylebot stylize` and `stylebot bench-clip` on moving pictures, as a person runs them."""

import json

from bot.media import clips, encoding
from tests.cli.helpers import stylebot
from tests.conftest import moving_clip, noise_image


def test_a_gif_is_painted_into_a_gif_with_its_timing_and_looping(tmp_path):
    source, style, out = tmp_path / "in.gif", tmp_path / "style.png", tmp_path / "out.gif"
    source.write_bytes(encoding.encode_clip(moving_clip(frames=4, durations=[50, 150] * 2), "gif"))
    noise_image(32, 32).save(style)
    done = stylebot(
        "stylize", str(source), str(style), "-o", str(out), "--size", "48", "--steps", "3"
    )
    assert done.returncode == 0, done.stderr
    back = clips.decode_clip(out.read_bytes())
    assert len(back.frames) == 4 and back.durations == [50, 150] * 2 and back.loop
    assert back.frames[0].size == (48, 36)
    assert "4 frames of 48x36" in done.stderr and "flicker" in done.stderr.splitlines()[-1]


def test_a_clip_over_the_limits_is_shortened_as_documented_and_an_mp4_comes_out(tmp_path):
    source, style, out = tmp_path / "in.mp4", tmp_path / "style.png", tmp_path / "out.mp4"
    source.write_bytes(
        encoding.encode_clip(moving_clip(frames=30, durations=[40] * 30, loop=False), "mp4")
    )
    noise_image(32, 32).save(style)
    done = stylebot(
        "stylize", str(source), str(style), "-o", str(out), "--size", "48", "--steps", "2",
        "--clip-seconds", "0.8", "--clip-frames", "5",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "the first 0.8 s of 1.2 s; 6.25 frames a second instead of 25" in done.stderr
    info = clips.probe_clip(out.read_bytes())
    assert info is not None and info.format == "MP4" and info.frames == 5


def test_a_moving_picture_into_a_jpeg_is_refused_unless_the_first_frame_is_asked_for(tmp_path):
    source, style = tmp_path / "in.gif", tmp_path / "style.png"
    source.write_bytes(encoding.encode_clip(moving_clip(frames=3), "gif"))
    noise_image(32, 32).save(style)
    done = stylebot(
        "stylize", str(source), str(style), "-o", str(tmp_path / "o.jpg"), "--steps", "2"
    )
    assert done.returncode == 2 and "the content is a moving picture" in done.stderr
    assert "--first-frame" in done.stderr and not (tmp_path / "o.jpg").exists()
    done = stylebot(
        "stylize", str(source), str(style), "-o", str(tmp_path / "o.jpg"), "--steps", "2",
        "--size", "48", "--first-frame",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "o.jpg").exists()


def test_bench_clip_prints_flicker_quality_and_time_per_frame(tmp_path):
    done = stylebot(
        "bench-clip", "--json", "--device", "cpu", "--frames", "3", "--size", "32", "--steps", "3",
        "--temporal-weights", "0,10", "--out", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    alone, steady = report["runs"]
    assert (alone["temporal_weight"], steady["temporal_weight"]) == (0, 10)
    assert alone["flicker_vs_baseline"] == 1.0 and steady["flicker_vs_baseline"] > 0
    assert report["still_step_ms"] > 0 and all(r["frame_step_ms"] > 0 for r in report["runs"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip-tw0.gif", "clip-tw10.gif"]
