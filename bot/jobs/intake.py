"""Checks on the pictures a member gives, shared by /stylize, the context menus and presets:
Discord's metadata first (nothing downloaded), then the download, then the headers off the loop.
No pixel is decoded here: the worker decodes each picture once, and says what is damaged."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import aiohttp

from bot.engine.params import (
    IMAGE_TYPES,
    ImageLimits,
    InvalidParams,
    StyleParams,
    check_style_size,
    check_thick_enough,
)
from bot.jobs.downloads import download
from bot.media import clips, imaging
from bot.media.clips import VIDEO_TYPES

if TYPE_CHECKING:
    from bot.config import Settings

Source = tuple[str | bytes, str]  # (a URL to download, or bytes already here; what it is)


class Attachment(Protocol):
    """What Discord says of an attached file before it is downloaded (discord.Attachment)."""

    @property
    def content_type(self) -> str | None: ...
    @property
    def filename(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def width(self) -> int | None: ...
    @property
    def height(self) -> int | None: ...


def check_attachment(
    attachment: Attachment, what: str, limits: ImageLimits, *, moving: bool = False
) -> str | None:
    """What is wrong with an attachment, from Discord's metadata only; None if nothing is.
    `moving`: a video clip is taken too (the content; a GIF is an image either way)."""
    kind = (attachment.content_type or "").split(";")[0].strip().lower()
    if kind not in IMAGE_TYPES and not (moving and kind in VIDEO_TYPES):
        videos = " or a short MP4, WebM or MOV clip" if moving else ""
        return (
            f"The {what} (`{attachment.filename}`) is not an image I can use ({kind or 'unknown type'}). "
            f"Send {limits.formats_text()}{videos}."
        )
    if attachment.size > limits.max_bytes:
        return f"The {what} is {attachment.size / 2**20:.1f} MB; the limit is {limits.max_bytes / 2**20:.0f} MB."
    if (
        attachment.width
        and attachment.height
        and attachment.width * attachment.height > limits.max_pixels
    ):
        return (
            f"The {what} is {attachment.width}×{attachment.height} pixels; "
            f"at most {limits.max_pixels / 1e6:.0f} megapixels are allowed."
        )
    return None


@dataclass(frozen=True)
class ContentMeasure:
    """What the dispatcher weighs a job's content by: found by the bot's check of a new job, or
    read from the header of one checked before."""

    cost: int = 1  # the frames it is painted as: its weight in the fair queue
    shape: tuple[int, int] | None = None  # a still's upright size: its shape bucket


def check_inputs(
    data: list[bytes], names: list[str], limits: ImageLimits, params: StyleParams | None
) -> ContentMeasure:
    """Every refusal a picture's header allows, without decoding a pixel (the worker decodes,
    once): format, bytes, pixels, shape, a moving picture's canvas and frames, and whether the
    content is thick enough for the job's layers at its size. Returns what the content weighs:
    the frames it will be painted as (the job's cost) and a still's size. Raises
    imaging.ImageError or InvalidParams with a reason for the member. A header read is cheap
    but blocking: run it in a thread."""
    measure = ContentMeasure()
    for blob, name in zip(data, names, strict=True):
        try:
            if params and name == names[0]:
                measure = check_content(blob, name, limits, params)
            else:  # a style picture (a job's, or a preset's)
                width, height, _ = imaging.check_header(blob, limits, name=name)
                check_style_size(width, height, name)
        except (imaging.ImageError, InvalidParams):
            raise
        except Exception as exc:  # a parser's own error (Pillow, PyAV): the member's bad input
            raise imaging.CorruptImage(
                f"the {name} is damaged and cannot be read ({exc.__class__.__name__})"
            ) from None
    return measure


def check_content(
    blob: bytes, name: str, limits: ImageLimits, params: StyleParams
) -> ContentMeasure:
    """The content's header, as the worker will read the picture (a moving picture within the
    server's clip limits: fitted, not refused, for its length), and whether it is thick enough
    for the layers at the job's size. Returns the frames it will be painted as, and a still's
    upright size."""
    if clips.is_video(blob) and not clips.can_read_video():  # no PyAV here: the worker reads it
        return ContentMeasure(clips.frames_to_paint(blob, params, limits))
    header = clips.read_content_header(blob, params, limits, name=name)
    check_thick_enough(header.params, header.width, header.height, name)
    return _measure_of(header)


def measure_content(content: bytes, params: StyleParams, limits: ImageLimits) -> ContentMeasure:
    """The content's cost and, for a still, its size: `check_content`'s reading of a picture
    checked before, refusing nothing (CPU work for a thread). What cannot be read counts as its
    frames' estimate, of unknown size: the decoder says what is wrong, later."""
    try:
        return _measure_of(clips.read_content_header(content, params, limits))
    except Exception:  # noqa: BLE001 (an estimate never stops a job)
        return ContentMeasure(clips.frames_to_paint(content, params, limits))


def _measure_of(header: clips.ContentHeader) -> ContentMeasure:
    return ContentMeasure(
        header.frames, (header.width, header.height) if header.frames == 1 else None
    )


async def fetch(
    session: aiohttp.ClientSession,
    config: Settings,
    sources: list[Source],
    params: StyleParams | None,
) -> tuple[list[bytes], ContentMeasure]:
    """The bytes of every source, downloaded from Discord's CDN where needed, their headers
    checked off the loop, and what the content weighs (`check_inputs`: its frames, a still's size). Raises
    DownloadError, imaging.ImageError or InvalidParams, each for the member."""
    data = [
        source
        if isinstance(source, bytes)
        else await download(
            session,
            source,
            limit=config.max_attachment_bytes,
            hosts=config.attachment_host_set,
            timeout=config.download_timeout,
            name=what,
        )
        for source, what in sources
    ]
    measure = await asyncio.to_thread(
        check_inputs, data, [what for _, what in sources], config.image_limits, params
    )
    return data, measure
