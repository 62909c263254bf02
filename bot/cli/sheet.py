"""A contact sheet: rows of pictures side by side, each row and column labelled, as one PNG (for
looking at `stylebot evaluate --pairs` results next to each other)."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

CELL = 320  # the longest side of each picture on the sheet
LABEL = 16  # pixels of text above each row


def contact_sheet(
    columns: Sequence[str], rows: Sequence[tuple[str, Sequence[Image.Image | None]]]
) -> Image.Image:
    """`rows` of (label, one picture per column, None for a gap) under the `columns` titles."""
    width = len(columns) * (CELL + 8) + 8
    sheet = Image.new("RGB", (width, LABEL + len(rows) * (CELL + LABEL + 8)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, title in enumerate(columns):
        draw.text((8 + i * (CELL + 8), 2), title, fill="black")
    for r, (label, pictures) in enumerate(rows):
        top = LABEL + r * (CELL + LABEL + 8)
        draw.text((8, top + 2), label, fill="black")
        for i, picture in enumerate(pictures):
            if picture is None:
                continue
            thumb = picture.convert("RGB")
            thumb.thumbnail((CELL, CELL), Image.Resampling.LANCZOS)
            sheet.paste(thumb, (8 + i * (CELL + 8), top + LABEL))
    return sheet
