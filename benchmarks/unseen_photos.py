"""A folder of real photographs no srbench model trains on, for `srbench evaluate MODEL --hr-dir`.

    python benchmarks/unseen_photos.py [--out data/unseen] [--side 480]

Fetches two Debian wallpaper packages with `apt-get download` (Debian's package registry, the
one network source this project's machines reach besides PyPI), unpacks them with `dpkg -x`
and keeps the photographs among their wallpapers (the listed files; the packages' illustrations
and renders are left out). Each photograph is resized with Lanczos so that its shorter side is
``--side`` pixels, centre-cropped to ``--side`` × ``--side`` and written as PNG.
"""

import argparse
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

#: Package -> the photographs inside it: a file under the unpacked package, or a Plasma wallpaper
#: folder (its largest landscape image is used).
PHOTOGRAPHS = {
    "mate-backgrounds": [
        f"usr/share/backgrounds/mate/nature/{name}.jpg"
        for name in (
            "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird",
            "RainDrops", "Storm", "TwoWings", "Wood", "YellowFlower",
        )
    ],
    "plasma-workspace-wallpapers": [
        f"usr/share/wallpapers/{name}"
        for name in (
            "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
            "Grey", "Kite", "MilkyWay", "OneStandsOut", "Path", "summer_1am",
        )
    ],
}


def largest_landscape(folder: Path) -> Path:
    """The widest landscape image of a Plasma wallpaper folder (``contents/images/WxH.ext``)."""
    sizes = {path: tuple(map(int, path.stem.split("x"))) for path in (folder / "contents" / "images").iterdir()}
    return max((path for path, (w, h) in sizes.items() if w > h), key=lambda path: sizes[path][0])


def square_crop(image: Image.Image, side: int) -> Image.Image:
    """Resize (Lanczos) so the shorter side is ``side``, then crop the centre square."""
    scale = side / min(image.size)
    width, height = max(side, round(image.width * scale)), max(side, round(image.height * scale))
    resized = image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    left, top = (width - side) // 2, (height - side) // 2
    return resized.crop((left, top, left + side, top + side))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/unseen"))
    parser.add_argument("--side", type=int, default=480)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        for package, files in PHOTOGRAPHS.items():
            subprocess.run(["apt-get", "download", package], cwd=work, check=True, capture_output=True)
            deb = next(Path(work).glob(f"{package}_*.deb"))
            subprocess.run(["dpkg", "-x", str(deb), str(Path(work) / package)], check=True)
            for relative in files:
                source = Path(work) / package / relative
                name = source.name if source.is_dir() else source.stem
                source = largest_landscape(source) if source.is_dir() else source
                with Image.open(source) as image:
                    square_crop(image, args.side).save(args.out / f"{name}.png")
                print(f"{package}: {relative} -> {args.out / name}.png")
    print(f"{sum(map(len, PHOTOGRAPHS.values()))} photographs in {args.out}")


if __name__ == "__main__":
    main()
