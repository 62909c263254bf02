"""A contact sheet: rows of pictures side by side, each row and column labelled, as one PNG (for
looking at `stylebot evaluate --pairs` results next to each other)."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

CELL = 320  # the longest side of each picture on the sheet
LABEL = 16  # pixels of text above each row
GAP = 8


def contact_sheet(
    columns: Sequence[str], rows: Sequence[tuple[str, Sequence[Image.Image | None]]]
) -> Image.Image:
    """`rows` of (label, one picture per column, None for a gap) under the `columns` titles; each
    row is as tall as its tallest picture."""
    thumbs = [[thumbnail(p) if p is not None else None for p in pictures] for _, pictures in rows]
    heights = [max((t.height for t in row if t is not None), default=0) for row in thumbs]
    width = len(columns) * (CELL + GAP) + GAP
    sheet = Image.new("RGB", (width, LABEL + sum(h + LABEL + GAP for h in heights)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, title in enumerate(columns):
        draw.text((GAP + i * (CELL + GAP), 2), title, fill="black")
    top = LABEL
    for (label, _), row, height in zip(rows, thumbs, heights, strict=True):
        draw.text((GAP, top + 2), label, fill="black")
        for i, thumb in enumerate(row):
            if thumb is not None:
                sheet.paste(thumb, (GAP + i * (CELL + GAP), top + LABEL))
        top += height + LABEL + GAP
    return sheet


def thumbnail(picture: Image.Image) -> Image.Image:
    thumb = picture.convert("RGB")
    thumb.thumbnail((CELL, CELL), Image.Resampling.LANCZOS)
    return thumb
