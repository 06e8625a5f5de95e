"""Real photographs no srbench model trains on, sorted into folders by kind, and the models on them.

    python benchmarks/unseen_photos.py fetch [--collection development|heldout] [--out DIR] [--side 480]
    python benchmarks/unseen_photos.py evaluate FOLDER [FOLDER ...] [--models srcnn vdsr srresnet srgan]
                                       [--weights NAME=PATH ...] [--device auto] [--rounding per_pass]
                                       [--json OUT.json] [--md OUT.md] [--save-sr DIR]
    python benchmarks/unseen_photos.py show OUT.json [--md OUT.md]

There are two collections of these photographs, from different Debian packages, with no photograph
(nor name) in both; ``fetch --collection`` builds one:

* ``development`` (the default: :data:`PHOTOGRAPHS`, 49 photographs into ``data/unseen``): looked at,
  with the models' results on them, while the recipes were chosen, so what they showed has shaped the
  models;
* ``heldout`` (:data:`HELDOUT`, 79 photographs into ``data/unseen-heldout``): for the final check
  only. They are evaluated once the models are final and never used to choose anything (recipes,
  thresholds, models, training); a choice made after seeing their results turns them into
  development ones.

``fetch`` downloads the Debian packages of the collection with ``apt-get download`` (Debian's
package registry; ``apt-get update`` first when apt-cache knows none of them), unpacks them with
``dpkg -x`` and keeps the listed files only: photographs, each looked at (the packages' renders,
illustrations, paintings, gradients and vector art are left out). Each is cropped at its NATIVE
resolution: the centre ``--side`` x ``--side`` pixels of the original file, nothing resized (a file
whose shorter side is below ``--side`` is skipped, with a line saying so). The crops go, as PNG,
into one folder of ``--out`` (by default the collection's folder) each, by this rule measured on the
crop itself (8-bit RGB):

* ``Y``, the mean BT.601 luma on the 16-235 scale (``16 + (65.481 R + 128.553 G + 24.966 B) / 255``);
* ``C``, the mean chroma ``max(R, G, B) - min(R, G, B)`` in grey levels (0-255);
* ``G``, the mean gradient magnitude of Y in levels per pixel: ``hypot(gx, gy)`` with ``gx, gy``
  numpy.gradient's central differences (one-sided at the borders), averaged over the crop.

Precedence, first match wins: ``dark`` if Y < 90; else ``saturated`` if C >= 100; else ``smooth``
if G < 1.5 (blurred backgrounds, sky, water, fog); else ``textured`` if G >= 3 (foliage, rock,
wood grain, water ripples); else ``moderate``. So a photograph is in one folder only. The four
thresholds (:data:`DARK_LUMA`, :data:`SATURATED_CHROMA`, :data:`SMOOTH_GRADIENT`,
:data:`TEXTURED_GRADIENT`) were set once, when the set was assembled, for at least six photographs
a folder of the development collection; no model result was seen then, and nothing (thresholds,
models, training) is ever to be tuned on these photographs. The held-out collection is sorted by the
same thresholds, unchanged (its saturated folder has four photographs). ``fetch`` prints each
photograph's statistics and folder, and writes them with the package version and source file to
``OUT/photos.json``. It empties the five folders' PNG files first.

The srbench models train on scikit-image's and matplotlib's sample photographs (astronaut, coffee,
chelsea, rocket, retina, motorcycle, hubble, immunohistochemistry, grace_hopper), never on these
photographs. They are JPEG or PNG files as their packages ship them: JPEG's blocking stays in the HR
images, as in any real photograph.

``evaluate`` degrades every image of each folder like the training data (MATLAB bicubic,
:func:`srbench.data.pairs_from_hr_folder`), upscales it with bicubic (once per folder and scale,
shared by every model) and with each model (``models/seed0/NAME.pt``, or ``--weights NAME=PATH``), and
prints per folder and model: images, mean Y-PSNR, the mean Y-PSNR gain over bicubic (Δ, dB) with
its 95 % bootstrap interval over the folder's images and the exact Wilcoxon signed-rank p-value
(:func:`srbench.stats.paired_comparison`: is the gain real on these images?), the worst and best
image's Δ, the largest per-image ``worst_channel_error`` (the largest magnitude of the
signed mean SR - HR of R, G and B, in grey levels) with its image and signed (r, g, b), and the mean
Y-SSIM; then one line per model over all folders' images pooled; then the checks of
:data:`COLOUR_LIMIT` and :data:`MEAN_GAIN_FLOOR`, PASS or FAIL per folder. ``--json`` writes all of
it, per image too; ``--md`` the tables; ``show`` prints the tables of such a JSON file again,
recomputed from its per-image metrics (so a result stored before a column existed gets it). It
needs srbench and PyTorch only (no DVC, MLflow or Typer); it exits 0 whatever the checks say (their
verdicts are in the output).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from srbench.stats import paired_comparison

#: The photographs: Debian package -> files inside it (paths relative to the unpacked package).
#: Each was looked at; among these packages' other images are renders and illustrations (most of
#: plasma-workspace-wallpapers, mate-backgrounds' abstract and desktop folders, ukui-wallpapers,
#: gnome-backgrounds, lxqt-themes' origami and logo wallpapers), a painting (mate's Elephants)
#: and a gradient (lomiri's umang), all left out. lomiri's analogpattern (a wall under a colour
#: overlay) is left out as doubtful.
PHOTOGRAPHS: dict[str, list[str]] = {
    "mate-backgrounds": [
        f"usr/share/backgrounds/mate/nature/{name}.jpg"
        for name in (
            "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird",
            "RainDrops", "Storm", "TwoWings", "Wood", "YellowFlower",
        )
    ],
    "plasma-workspace-wallpapers": [  # the largest landscape size each wallpaper ships
        f"usr/share/wallpapers/{name}/contents/images/2560x1600.jpg"
        for name in (
            "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
            "Grey", "Kite", "OneStandsOut", "Path", "summer_1am",
        )
    ],
    "lomiri-wallpapers-16.04": [
        f"usr/share/backgrounds/{name}.jpg"
        for name in (
            "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
            "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
            "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi", "greentock_by_Peter_Nerlich",
            "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi",
            "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi",
        )
    ],
    "lomiri-wallpapers-20.04": ["usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg"],
    "lxqt-themes": [
        f"usr/share/lxqt/wallpapers/{name}"
        for name in (
            "Butterfly-Kenneth-Wimer.jpg", "Valendas.png", "after-the-rain.jpg", "appleflower.png",
            "beam.png", "butterfly.png", "cloud.png", "drop.png", "flowers.png", "fog.jpg",
            "this-is-not-windows.jpg",
        )
    ],
    "digikam-data": ["usr/share/digikam/about/images/body-background.jpg"],
}

#: The held-out photographs: Debian package -> {name: file inside it}, no package of
#: :data:`PHOTOGRAPHS` among them. Each was looked at, and compared with the development ones (no
#: scene is in both). Left out: what these packages have besides (Tux Paint's drawn starters,
#: gnome-taquin's numbers, Ren'Py's drawings and WebP panorama, OpenCV's renders, charts, calibration
#: boards and annotated tutorial outputs), files under 480 px (Tux Paint's trees_above and
#: trees_at_dusk, KPhotoAlbum's anne_helene), Tux Paint's mossy_bark (black bars above and below),
#: KPhotoAlbum's qt-logo (a date printed on it), OpenCV's chicky_512 (transparent), licenseplate_motion
#: (blurred), grey basketball and left/right, baboon and lena (Set14's), and the second view of a
#: kept scene (aero3, aloeR, graf3, leuvenB). KPhotoAlbum's grand_canyon_1, new_wave_1 and wayne lie on
#: their side, as the package stores them (no EXIF orientation turns them).
HELDOUT: dict[str, dict[str, str]] = {
    "tuxpaint-data": {
        name: f"usr/share/tuxpaint/templates/{name}.jpg"
        for name in (
            "burnt_bark", "cliff", "corn_maze", "jellyfish", "lighthouse", "mossy_log", "mudstone",
            "ocean_splash", "ocean_waves", "redwoods_above", "rocks", "sheep", "spiders_web",
            "sun_behind_clouds", "sun_behind_leaves", "wool_mill_machine",
        )
    },
    "scribus-template": {
        name: f"usr/share/scribus/templates/{file}.jpg"
        for name, file in (
            ("brightness", "br2/brightness"), ("halfmoon", "br2/halfmoon"), ("moon", "br2/moon"),
            ("nature", "br2/nature"), ("skyline", "br2/sunset"), ("moon-branch", "cal2/moon"),
            ("pizza", "menu2/pizza"),
        )
    },
    "sddm-theme-maldives": {"maldives": "usr/share/sddm/themes/maldives/background.jpg"},
    "opencv-doc": {
        **{
            name: f"usr/share/doc/opencv-doc/examples/data/{name}.jpg"
            for name in ("aero1", "aloeL", "apple", "board", "building", "ela_original", "fruits", "leuvenA", "orange", "stuff")
        },
        "graf1": "usr/share/doc/opencv-doc/examples/data/graf1.png",
        **{f"scenetext0{i}": f"usr/share/doc/opencv-doc/examples/text/scenetext0{i}.jpg" for i in range(1, 7)},
        "barcodes": "usr/share/doc/opencv-doc/opencv4/html/4_barcodes.jpg",
        "handSrc": "usr/share/doc/opencv-doc/opencv4/html/handSrc.jpg",
        "portrait": "usr/share/doc/opencv-doc/opencv4/html/230501201_1.jpg",
    },
    "palapeli-data": {
        name: f"usr/share/palapeli/collection/{name}.jpg"
        for name in ("castle-maintenon", "cincinnati-bridge", "citrus-fruits", "european-honey-bee", "panther-chameleon-female")
    },
    "gnome-taquin": {
        name: f"usr/share/gnome-taquin/themes/cats/1-{name}.jpg"
        for name in ("Cat_face_day", "Jasmina", "Tortoiseshell", "maine", "march")
    },
    "renpy-demo": {
        name: f"usr/share/games/renpy/demo/game/images/bg {name}.jpg" for name in ("cave", "washington", "whitehouse")
    },
    "kphotoalbum": {
        **{
            name: f"usr/share/kphotoalbum/demo/{name}.jpg"
            for name in (
                "bar55", "bar55_2", "blackie", "cold_water", "donna", "donna_2", "grand_canyon_1",
                "grand_canyon_2", "grand_canyon_3", "jesper", "jesper_2", "new_wave_1", "new_wave_2", "pool",
                "pool_2", "skagen", "skagen_2", "snow", "spiff", "spiff_2", "wayne",
            )
        },
        "treeline-sunset": "usr/share/kphotoalbum/demo/sunset.jpg",
    },
}

#: Each collection's folder, where ``fetch`` writes it unless ``--out`` says otherwise.
COLLECTIONS = {"development": Path("data/unseen"), "heldout": Path("data/unseen-heldout")}

KINDS = ("dark", "saturated", "smooth", "moderate", "textured")
DARK_LUMA = 90.0  # mean BT.601 Y (16-235) below this: dark
SATURATED_CHROMA = 100.0  # mean max(RGB) - min(RGB) (0-255) at least this: saturated
SMOOTH_GRADIENT = 1.5  # mean |grad Y| (levels per pixel) below this: smooth
TEXTURED_GRADIENT = 3.0  # mean |grad Y| at least this: textured; in between: moderate

#: Every image's worst_channel_error (grey levels) must stay within this, for every model.
COLOUR_LIMIT = 1.0
#: Each folder's mean Y-PSNR gain over bicubic (dB) must reach this, for these models.
MEAN_GAIN_FLOOR = {"vdsr": 0.3, "srcnn": -2.5, "srresnet": -2.5}

_LUMA = np.array([65.481, 128.553, 24.966]) / 255.0


# ---------------------------------------------------------------------------------------- fetch


def photo_statistics(image: np.ndarray) -> dict[str, float]:
    """Mean luma ``Y``, mean chroma ``C`` and mean luma gradient magnitude ``G`` of an H×W×3
    uint8 RGB image (the module docstring defines them)."""
    rgb = image.astype(np.float64)
    luma = 16.0 + rgb @ _LUMA
    gy, gx = np.gradient(luma)
    return {
        "luma": float(luma.mean()),
        "chroma": float((rgb.max(axis=2) - rgb.min(axis=2)).mean()),
        "gradient": float(np.hypot(gx, gy).mean()),
    }


def kind_of(stats: dict[str, float]) -> str:
    """The folder of a photograph with these :func:`photo_statistics` (first match wins)."""
    if stats["luma"] < DARK_LUMA:
        return "dark"
    if stats["chroma"] >= SATURATED_CHROMA:
        return "saturated"
    if stats["gradient"] < SMOOTH_GRADIENT:
        return "smooth"
    if stats["gradient"] >= TEXTURED_GRADIENT:
        return "textured"
    return "moderate"


def centre_crop(image: np.ndarray, side: int) -> np.ndarray | None:
    """The centre ``side`` x ``side`` pixels of ``image``, unresized; None when it is smaller."""
    height, width = image.shape[:2]
    if min(height, width) < side:
        return None
    top, left = (height - side) // 2, (width - side) // 2
    return np.ascontiguousarray(image[top : top + side, left : left + side])


def photo_name(relative: str) -> str:
    """A photograph's short name: the Plasma wallpaper's folder, else the file's stem without its
    ``_by_AUTHOR`` suffix."""
    path = Path(relative)
    if path.parent.name == "images" and path.parent.parent.name == "contents":
        return path.parents[2].name
    return path.stem.split("_by_")[0]


def listing(collection: str) -> dict[str, dict[str, str]]:
    """Package -> {name: file} of the photographs of ``collection`` (a key of :data:`COLLECTIONS`):
    :data:`HELDOUT`'s, or :data:`PHOTOGRAPHS` named by :func:`photo_name`. Exits when two share a name."""
    if collection == "heldout":
        named = [(package, name, relative) for package, files in HELDOUT.items() for name, relative in files.items()]
    else:
        named = [(package, photo_name(relative), relative) for package, files in PHOTOGRAPHS.items() for relative in files]
    names = [name for _, name, _ in named]
    if len(set(names)) != len(names):
        sys.exit(f"two photographs share a name: {sorted({n for n in names if names.count(n) > 1})}")
    photographs: dict[str, dict[str, str]] = {}
    for package, name, relative in named:
        photographs.setdefault(package, {})[name] = relative
    return photographs


def _known(package: str) -> bool:
    result = subprocess.run(["apt-cache", "show", package], capture_output=True, text=True)
    return result.returncode == 0 and "Package:" in result.stdout


def unpack(package: str, work: Path) -> tuple[Path, str]:
    """Download ``package`` with ``apt-get download`` into ``work``, unpack it with ``dpkg -x``;
    returns the unpacked folder and the package version."""
    result = subprocess.run(["apt-get", "download", package], cwd=work, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"apt-get download {package} failed: {result.stderr.strip()}")
    deb = next(work.glob(f"{package}_*.deb"))
    version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True).stdout.strip()
    root = work / "unpacked" / package
    root.parent.mkdir(parents=True, exist_ok=True)  # dpkg -x makes the last folder only
    subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    return root, version


def fetch(out: Path, side: int, collection: str) -> None:
    from srbench.images import read_image, write_png

    photographs = listing(collection)
    if not all(_known(package) for package in photographs):
        print("apt-cache lacks some packages: apt-get update", flush=True)
        subprocess.run(["apt-get", "update"], check=True, capture_output=True)
    for kind in KINDS:
        for stale in (out / kind).glob("*.png"):
            stale.unlink()
    records = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for package, files in photographs.items():
            root, version = unpack(package, work)
            print(f"{package} {version}", flush=True)
            for name, relative in files.items():
                source = root / relative
                if not source.is_file():
                    print(f"  MISSING {relative} (not in {package} {version}): skipped")
                    continue
                image = read_image(source)
                crop = centre_crop(image, side)
                if crop is None:
                    print(f"  SMALL   {relative} ({image.shape[1]}x{image.shape[0]} < {side}): skipped")
                    continue
                stats = photo_statistics(crop)
                kind = kind_of(stats)
                write_png(out / kind / f"{name}.png", crop)
                records.append({"name": name, "folder": kind, "package": package, "version": version, "file": relative,
                                "width": image.shape[1], "height": image.shape[0], **stats})
                print(f"  {kind:9s} {name:24s} Y={stats['luma']:6.1f} C={stats['chroma']:6.1f} G={stats['gradient']:6.2f}"
                      f"  ({image.shape[1]}x{image.shape[0]} {relative})", flush=True)
            shutil.rmtree(root)
            for deb in work.glob("*.deb"):
                deb.unlink()
    rule = {"side": side, "dark_luma": DARK_LUMA, "saturated_chroma": SATURATED_CHROMA,
            "smooth_gradient": SMOOTH_GRADIENT, "textured_gradient": TEXTURED_GRADIENT}
    (out / "photos.json").write_text(json.dumps({"rule": rule, "photos": records}, indent=2) + "\n")
    counts = {kind: sum(record["folder"] == kind for record in records) for kind in KINDS}
    print(f"{len(records)} photographs of {side}x{side} px in {out} ({time.perf_counter() - started:.0f} s): "
          + ", ".join(f"{kind} {count}" for kind, count in counts.items()))


# ------------------------------------------------------------------------------------- evaluate


@dataclass
class Method:
    """Bicubic or a model, with what it is evaluated at."""

    name: str
    scale: int
    model: Any = None  # torch.nn.Module; None for bicubic
    weights: str = ""


def _summary(per_image: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The row of one folder and method from its per-image metrics (each with ``delta_psnr_y``)."""
    names = list(per_image)
    deltas = [per_image[name]["delta_psnr_y"] for name in names]
    colours = [per_image[name]["worst_channel_error"] for name in names]
    worst, best, cast = int(np.argmin(deltas)), int(np.argmax(deltas)), int(np.argmax(colours))
    return {
        "n": len(names),
        "psnr_y": float(np.mean([per_image[name]["psnr_y"] for name in names])),
        "ssim_y": float(np.mean([per_image[name]["ssim_y"] for name in names])),
        "delta_mean": float(np.mean(deltas)),
        "delta_paired": None if not any(deltas) else asdict(paired_comparison(deltas, [0.0] * len(deltas))),
        "delta_worst": deltas[worst], "delta_worst_image": names[worst],
        "delta_best": deltas[best], "delta_best_image": names[best],
        "colour_worst": colours[cast], "colour_worst_image": names[cast],
        "colour_worst_rgb": [per_image[names[cast]][f"mean_error_{c}"] for c in "rgb"],
    }


def default_weights(name: str) -> Path:
    """The pipeline's model ``name`` of the first seed (pipeline.layout.Outputs(name, 0).weights,
    written out: this script imports nothing of the pipeline's commands)."""
    return Path("models") / "seed0" / f"{name}.pt"


def _load_methods(models: list[str], weights: dict[str, Path], device: Any, scale: int) -> list[Method]:
    from srbench.models import load_model

    methods = []
    for name in models:
        path = weights.get(name, default_weights(name))
        model, meta = load_model(path, device)
        methods.append(Method(name, int(meta["scale"]), model, str(path)))
    scales = sorted({method.scale for method in methods}) or [scale]
    bicubic = [Method("bicubic" if len(scales) == 1 else f"bicubic_x{s}", s) for s in scales]
    return bicubic + methods


def evaluate(folders: list[Path], models: list[str], weights: dict[str, Path], device_name: str, rounding: str,
             scale: int, save_sr: Path | None) -> dict[str, Any]:
    import torch

    from srbench.data import pairs_from_hr_folder
    from srbench.images import write_png
    from srbench.inference import bicubic_upscaler, describe_machine, evaluate_pairs, model_upscaler, pick_device

    device = pick_device(device_name)
    methods = _load_methods(models, weights, device, scale)
    keys = [folder.name for folder in folders]
    if len(set(keys)) != len(keys):
        keys = [str(folder) for folder in folders]
    report: dict[str, Any] = {
        "device": str(device), "machine": describe_machine(device), "rounding": rounding,
        "weights": {method.name: method.weights for method in methods if method.model is not None},
        "scales": {method.name: method.scale for method in methods}, "folders": {},
    }
    for key, folder in zip(keys, folders):
        entry: dict[str, Any] = {"path": str(folder), "methods": {}}
        pairs_by_scale = {s: pairs_from_hr_folder(folder, s, rounding) for s in sorted({m.scale for m in methods})}
        bicubic_psnr: dict[int, dict[str, float]] = {}
        for method in methods:  # bicubic first, once per scale
            pairs = pairs_by_scale[method.scale]
            if method.model is None:
                upscale, timed = bicubic_upscaler(method.scale, rounding), None
            else:
                upscale, timed = model_upscaler(method.model, device), device
            with torch.inference_mode():
                per_image, outputs, seconds = evaluate_pairs(upscale, pairs, method.scale, timed, description=None)
            if method.model is None:
                bicubic_psnr[method.scale] = {name: values["psnr_y"] for name, values in per_image.items()}
            for name, values in per_image.items():
                values["delta_psnr_y"] = values["psnr_y"] - bicubic_psnr[method.scale][name]
            if save_sr is not None:
                for name, sr in outputs.items():
                    write_png(save_sr / key / method.name / f"{name}.png", sr)
            entry["images"] = [pair.name for pair in pairs]
            entry["methods"][method.name] = {"scale": method.scale, "seconds": seconds, "per_image": per_image}
        report["folders"][key] = entry
    return summarise(report)


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """Every folder's and method's row, the pooled rows and the checks, from the per-image metrics:
    what `evaluate` adds to its report and `show` recomputes from a stored one."""
    for entry in report["folders"].values():
        for name, method in entry["methods"].items():
            entry["methods"][name] = {"scale": method["scale"], "seconds": method["seconds"], **_summary(method["per_image"]),
                                      "per_image": method["per_image"]}
    report["overall"] = {}
    for name in next(iter(report["folders"].values()))["methods"]:
        pooled = {f"{key}/{image}": values for key, entry in report["folders"].items()
                  for image, values in entry["methods"][name]["per_image"].items()}
        report["overall"][name] = _summary(pooled)
    report["checks"] = checks(report)
    return report


def checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The verdicts of :data:`COLOUR_LIMIT` (every model) and :data:`MEAN_GAIN_FLOOR` per folder."""
    verdicts = []
    for key, entry in report["folders"].items():
        for name, row in entry["methods"].items():
            if name.startswith("bicubic"):
                continue
            verdicts.append({"folder": key, "model": name, "check": f"every image's worst_channel_error <= {COLOUR_LIMIT:g} level",
                             "value": row["colour_worst"], "image": row["colour_worst_image"], "pass": row["colour_worst"] <= COLOUR_LIMIT})
            if name in MEAN_GAIN_FLOOR:
                floor = MEAN_GAIN_FLOOR[name]
                verdicts.append({"folder": key, "model": name, "check": f"mean delta >= {floor:+g} dB",
                                 "value": row["delta_mean"], "pass": row["delta_mean"] >= floor})
    return verdicts


_HEADER = ("folder", "method", "n", "Y-PSNR", "mean Δ", "95% CI, p", "worst Δ (image)", "best Δ", "max colour error (image: r, g, b)", "Y-SSIM")


def _cells(folder: str, method: str, row: dict[str, Any]) -> tuple[str, ...]:
    r, g, b = row["colour_worst_rgb"]
    paired = row["delta_paired"]
    interval = "–" if paired is None else f"[{paired['ci_low']:+.2f}, {paired['ci_high']:+.2f}], p={paired['p_value']:.2g}"
    return (folder, method, str(row["n"]), f"{row['psnr_y']:.2f}", f"{row['delta_mean']:+.2f}", interval,
            f"{row['delta_worst']:+.2f} ({row['delta_worst_image']})", f"{row['delta_best']:+.2f}",
            f"{row['colour_worst']:.2f} ({row['colour_worst_image']}: {r:+.2f}, {g:+.2f}, {b:+.2f})", f"{row['ssim_y']:.4f}")


def _rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = [_cells(key, name, row) for key, entry in report["folders"].items() for name, row in entry["methods"].items()]
    rows += [_cells("ALL", name, row) for name, row in report["overall"].items()]
    return rows


def _check_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for verdict in report["checks"]:
        value = f"{verdict['value']:.2f} ({verdict['image']})" if "image" in verdict else f"{verdict['value']:+.2f}"
        lines.append(f"{'PASS' if verdict['pass'] else 'FAIL'}  {verdict['folder']:10s} {verdict['model']:9s} {verdict['check']}: {value}")
    failed = sum(not verdict["pass"] for verdict in report["checks"])
    lines.append(f"{len(report['checks']) - failed} of {len(report['checks'])} checks pass")
    return lines


def text_table(report: dict[str, Any]) -> str:
    rows = [_HEADER, *_rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines + ["", *_check_lines(report)])


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Unseen photographs (benchmarks/unseen_photos.py)", "",
        f"Device {report['device']}; bicubic rounding {report['rounding']}; weights "
        + (", ".join(f"{name} = `{path}`" for name, path in report["weights"].items()) or "none") + ".",
        "Δ: Y-PSNR minus bicubic's on the same image (dB); 95% CI: the percentile bootstrap interval of mean Δ over the "
        "folder's images, p: the exact two-sided Wilcoxon signed-rank test of the Δs (srbench.stats). Colour: the largest per-image worst_channel_error "
        "(grey levels) with its signed mean SR − HR of R, G, B. ALL: every folder's images pooled.", "",
        "| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(report)]
    lines += ["", "Checks:", ""] + [f"- {line}" for line in _check_lines(report)]
    return "\n".join(lines) + "\n"


def _finite(value: Any) -> Any:
    """JSON has no infinity: an identical image's PSNR is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def weights_by_name(items: list[str]) -> dict[str, Path]:
    """``--weights NAME=PATH ...`` as {name: path}; refuses an item without both halves."""
    weights = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise argparse.ArgumentTypeError(f"--weights {item!r}: expected NAME=PATH")
        weights[name] = Path(path)
    return weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    get = commands.add_parser("fetch", help="download the photographs and sort their crops into folders")
    get.add_argument("--collection", default="development", choices=list(COLLECTIONS),
                     help="development: data/unseen, looked at while choosing recipes; heldout: data/unseen-heldout, the final check only")
    get.add_argument("--out", type=Path, help="default: the collection's folder")
    get.add_argument("--side", type=int, default=480)
    run = commands.add_parser("evaluate", help="bicubic and each model on every folder")
    run.add_argument("folders", type=Path, nargs="+")
    run.add_argument("--models", nargs="*", default=["srcnn", "vdsr", "srresnet", "srgan"])
    run.add_argument("--weights", nargs="*", default=[], metavar="NAME=PATH", help="default: models/seed0/NAME.pt")
    run.add_argument("--device", default="auto")
    run.add_argument("--rounding", default="per_pass", choices=["per_pass", "once"], help="the degradation's (as prepare.bicubic_rounding)")
    run.add_argument("--scale", type=int, default=2, help="bicubic's scale when no model is given (else the models')")
    run.add_argument("--json", type=Path)
    run.add_argument("--md", type=Path)
    run.add_argument("--save-sr", type=Path, help="write every SR image as DIR/FOLDER/METHOD/NAME.png")
    show = commands.add_parser("show", help="the tables of a stored --json result, recomputed from its per-image metrics")
    show.add_argument("result", type=Path)
    show.add_argument("--md", type=Path)
    args = parser.parse_args()
    if args.command == "fetch":
        fetch(args.out or COLLECTIONS[args.collection], args.side, args.collection)
        return
    if args.command == "show":
        try:
            report = summarise(json.loads(args.result.read_text()))
        except (OSError, ValueError, KeyError, TypeError, StopIteration) as error:
            sys.exit(f"error: {args.result}: not a result of `unseen_photos.py evaluate --json` ({type(error).__name__}: {error})")
        print(text_table(report))
        if args.md:
            args.md.write_text(markdown(report))
        return
    from srbench.errors import SrbenchError

    try:
        weights = weights_by_name(args.weights)
        started = time.perf_counter()
        report = evaluate(args.folders, args.models, weights, args.device, args.rounding, args.scale, args.save_sr)
    except (SrbenchError, argparse.ArgumentTypeError) as error:
        sys.exit(f"error: {error}")
    report["seconds"] = time.perf_counter() - started
    print(text_table(report))
    print(f"{time.perf_counter() - started:.1f} s on {report['device']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_finite(report), indent=1) + "\n")
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(markdown(report))


if __name__ == "__main__":
    main()
