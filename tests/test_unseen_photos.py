"""benchmarks/unseen_photos.py: its folder rule, its two collections (`fetch --collection heldout`
with apt-get faked), and `evaluate` end to end on two tiny folders of real photographs (crops of
scikit-image's astronaut and coffee) with two tiny untrained models."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from skimage import data as samples

from srbench.data import pairs_from_hr_folder
from srbench.images import read_image, write_png
from srbench.metrics import sr_metrics
from srbench.models import build_model, save_model

from benchmark_scripts import benchmark_module

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "unseen_photos.py"


@pytest.fixture(scope="module")
def unseen():
    with benchmark_module("unseen_photos") as module:
        yield module


def test_each_kind_of_image_goes_to_its_folder(unseen) -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(-60, 61, (64, 64, 1))
    ramp = np.round(50 + 2.4 * np.arange(64))[None, :, None] * np.ones((64, 1, 3))  # grey, |grad Y| ~ 2 levels/px
    images = {
        "dark": np.full((64, 64, 3), 40),
        "dark noisy": np.clip(40 + noise, 0, 255) * np.ones((1, 1, 3)),  # dark comes first: not textured
        "saturated": np.full((64, 64, 3), (255, 200, 0)),
        "saturated noisy": np.clip(np.array([255, 200, 0]) + noise, 0, 255),  # saturated before textured
        "smooth": np.full((64, 64, 3), 128) + np.arange(64)[:, None, None] // 8,
        "moderate": ramp,
        "textured": np.clip(128 + noise, 0, 255) * np.ones((1, 1, 3)),
    }
    for label, image in images.items():
        image = image.astype(np.uint8)
        stats = unseen.photo_statistics(image)
        assert unseen.kind_of(stats) == label.split()[0], (label, stats)
    assert unseen.photo_statistics(np.full((8, 8, 3), 255, np.uint8)) == pytest.approx({"luma": 235.0, "chroma": 0.0, "gradient": 0.0})
    assert unseen.photo_statistics(images["moderate"].astype(np.uint8))["gradient"] == pytest.approx(2.4 * 219 / 255, abs=0.05)


def test_the_crop_is_the_unresized_centre(unseen) -> None:
    image = np.arange(6 * 9 * 3, dtype=np.uint8).reshape(6, 9, 3)
    assert np.array_equal(unseen.centre_crop(image, 4), image[1:5, 2:6])
    assert unseen.centre_crop(image, 7) is None
    assert unseen.photo_name("usr/share/wallpapers/Path/contents/images/2560x1600.jpg") == "Path"
    assert unseen.photo_name("usr/share/backgrounds/life_by_Aitzol_Berasategi.jpg") == "life"


def test_the_heldout_collection_shares_no_package_or_name_with_the_development_one(unseen, monkeypatch) -> None:
    development, heldout = unseen.listing("development"), unseen.listing("heldout")
    assert development == {package: {unseen.photo_name(f): f for f in files} for package, files in unseen.PHOTOGRAPHS.items()}
    assert heldout == unseen.HELDOUT and not set(development) & set(heldout)
    names = [name for files in heldout.values() for name in files]
    assert len(set(names)) == len(names) >= 40
    assert not set(names) & {name for files in development.values() for name in files}
    monkeypatch.setattr(unseen, "HELDOUT", {"a": {"cat": "a/cat.jpg"}, "b": {"cat": "b/cat.jpg"}})
    with pytest.raises(SystemExit, match="share a name: \\['cat'\\]"):
        unseen.listing("heldout")


def test_fetch_heldout_writes_its_own_folders(unseen, tmp_path: Path, monkeypatch) -> None:
    images = {"night": np.full((20, 24, 3), 40), "poppy": np.full((24, 20, 3), (255, 200, 0)), "tiny": np.full((10, 30, 3), 128)}
    listed = {"pkg-a": {"night": "usr/share/a/night.jpg", "poppy": "usr/share/a/red poppy.jpg"}, "pkg-b": {"tiny": "usr/share/b/tiny.png"}}

    def unpack(package: str, work: Path) -> tuple[Path, str]:  # what apt-get download and dpkg -x would leave
        root = work / "unpacked" / package
        for name, relative in listed[package].items():
            write_png(root / relative, images[name].astype(np.uint8))
        return root, "1.0-1"

    monkeypatch.setattr(unseen, "HELDOUT", listed)
    monkeypatch.setattr(unseen, "_known", lambda package: True)
    monkeypatch.setattr(unseen, "unpack", unpack)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["unseen_photos.py", "fetch", "--collection", "heldout", "--side", "16"])
    unseen.main()
    out = tmp_path / "data" / "unseen-heldout"
    assert sorted(path.relative_to(tmp_path).as_posix() for path in (tmp_path / "data").rglob("*.png")) == [
        "data/unseen-heldout/dark/night.png", "data/unseen-heldout/saturated/poppy.png"]  # tiny: under 16 px, skipped
    assert np.array_equal(read_image(out / "dark" / "night.png"), images["night"][2:18, 4:20])
    photos = json.loads((out / "photos.json").read_text())["photos"]
    assert [(p["name"], p["folder"], p["package"], p["version"], p["file"], p["width"], p["height"]) for p in photos] == [
        ("night", "dark", "pkg-a", "1.0-1", "usr/share/a/night.jpg", 24, 20),
        ("poppy", "saturated", "pkg-a", "1.0-1", "usr/share/a/red poppy.jpg", 20, 24),
    ]


def test_evaluate_reports_every_folder_and_model(tmp_path: Path) -> None:
    folders = {"people": samples.astronaut(), "cups": samples.coffee()}
    for label, photo in folders.items():
        for index, (top, left, side) in enumerate([(40, 180, 96), (200, 260, 72)]):
            write_png(tmp_path / label / f"{label}{index}.png", np.ascontiguousarray(photo[top : top + side, left : left + side]))
    tiny = {"srcnn": ({"n1": 4, "n2": 2, "f1": 3, "f2": 1, "f3": 3}, "y"), "vdsr": ({"depth": 2, "num_filters": 4}, "rgb")}
    weights = []
    for name, (arch, channels) in tiny.items():
        model = build_model(name=name, scale=2, arch=arch, channels=channels)
        save_model(path=tmp_path / f"{name}.pt", model=model, name=name, scale=2, arch=arch, channels=channels)
        weights.append(f"{name}={tmp_path / f'{name}.pt'}")
    command = [
        sys.executable, "-X", "importtime", str(SCRIPT), "evaluate", str(tmp_path / "people"), str(tmp_path / "cups"), "--models", *tiny,
        "--weights", *weights, "--device", "cpu", "--json", str(tmp_path / "out.json"), "--md", str(tmp_path / "out.md"),
        "--save-sr", str(tmp_path / "sr"),
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "out.json").read_text())
    imported = {line.rpartition("|")[2].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert not {module for module in imported if module.split(".")[0] in {"dvc", "mlflow", "typer", "pipeline"}}

    assert list(report["folders"]) == ["people", "cups"]
    lines = result.stdout.splitlines()
    for folder in folders:
        entry = report["folders"][folder]
        assert list(entry["methods"]) == ["bicubic", "srcnn", "vdsr"]
        assert entry["images"] == [f"{folder}0", f"{folder}1"]
        pairs = {pair.name: pair for pair in pairs_from_hr_folder(tmp_path / folder, 2, "per_pass")}
        bicubic = entry["methods"]["bicubic"]
        assert bicubic["delta_mean"] == 0.0 and all(values["delta_psnr_y"] == 0.0 for values in bicubic["per_image"].values())
        for method, row in entry["methods"].items():
            assert row["n"] == 2
            assert {row["delta_worst_image"], row["delta_best_image"], row["colour_worst_image"]} <= set(pairs)
            for name, values in row["per_image"].items():
                sr = read_image(tmp_path / "sr" / folder / method / f"{name}.png")
                expected = sr_metrics(sr, pairs[name].hr, 2)
                # the SR array's memory layout (a permuted tensor there, a PNG here) may move the last bit
                assert {key: values[key] for key in expected} == pytest.approx(expected, rel=1e-12, abs=1e-12)
                assert values["delta_psnr_y"] == values["psnr_y"] - bicubic["per_image"][name]["psnr_y"]
            assert row["delta_mean"] == pytest.approx(np.mean([v["delta_psnr_y"] for v in row["per_image"].values()]))
            worst = row["per_image"][row["colour_worst_image"]]
            assert row["colour_worst"] == max(v["worst_channel_error"] for v in row["per_image"].values())
            assert row["colour_worst_rgb"] == [worst["mean_error_r"], worst["mean_error_g"], worst["mean_error_b"]]
            paired, deltas = row["delta_paired"], [v["delta_psnr_y"] for v in row["per_image"].values()]
            if method == "bicubic":
                assert paired is None
            else:  # two images: the interval spans both deltas, p = 2 x 1/4 when they agree in sign, else 1
                assert paired["mean_difference"] == pytest.approx(row["delta_mean"])
                assert (paired["ci_low"], paired["ci_high"]) == pytest.approx((min(deltas), max(deltas)))
                assert paired["p_value"] == (0.5 if deltas[0] * deltas[1] > 0 else 1.0)
            [printed] = [line for line in lines if line.split()[:3] == [folder, method, "2"]]
            assert f"{row['delta_mean']:+.2f}" in printed and f"({row['delta_worst_image']})" in printed
    for method in ("bicubic", "srcnn", "vdsr"):
        overall = report["overall"][method]
        assert overall["n"] == 4 and overall["delta_worst_image"].split("/")[0] in folders
        assert any(line.split()[:3] == ["ALL", method, "4"] for line in lines)
    checks = report["checks"]
    assert len(checks) == 2 * 2 * 2  # per folder and model: the colour limit, the mean gain floor
    for verdict in checks:
        assert ("PASS" if verdict["pass"] else "FAIL") + "  " + verdict["folder"] in result.stdout
    assert sum(line.startswith("| people | vdsr | 2 |") for line in (tmp_path / "out.md").read_text().splitlines()) == 1

    shown = subprocess.run([sys.executable, str(SCRIPT), "show", str(tmp_path / "out.json")], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == lines[: len(shown.stdout.splitlines())]  # the stored result prints the same table
    broken = subprocess.run([sys.executable, str(SCRIPT), "show", str(tmp_path / "out.md")], capture_output=True, text=True, timeout=120)
    assert broken.returncode == 1 and broken.stderr.startswith(f"error: {tmp_path / 'out.md'}: not a result of") and broken.stderr.count("\n") == 1


def test_the_default_weights_are_the_pipelines_first_seed(unseen) -> None:
    from pipeline.layout import Outputs

    assert unseen.default_weights("vdsr") == Outputs("vdsr", 0).weights
