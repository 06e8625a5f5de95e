"""`srbench report` end to end on a small workspace built here: real prepared images, SR images
and their real metrics, model cards, evaluation statuses and training histories."""

import csv
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from pipeline.layout import Outputs
from srbench.images import read_image, write_png
from srbench.metrics import sr_metrics

MODELS = {"srcnn": 3, "srgan": 12}  # model -> noise added to HR to make its "SR" images: srcnn is the better
LPIPS_STATUS = "alexnet weights not found offline: <urlopen error timed out>"  # a tag to CommonMark, unless escaped


def _write_json(path: Path, values: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values))


def _files(model: str, seed: int = 0) -> Outputs:
    return Outputs(model, None if model == "bicubic" else seed)


def _evaluate(model: str, sr_images: dict[str, np.ndarray], hr_images: dict[str, np.ndarray], set_name: str = "valid", seed: int = 0) -> None:
    """What `srbench evaluate MODEL --seed SEED` leaves for the report on one test set: SR PNGs,
    per-image and mean metrics (no lpips key: LPIPS unavailable), evaluation.json."""
    results = _files(model, seed).results
    per_image = {name: sr_metrics(sr, hr_images[name], scale=2) for name, sr in sr_images.items()}
    for name, sr in sr_images.items():
        write_png(results / set_name / "sr" / f"{name}.png", sr)
    _write_json(results / set_name / "per_image.json", per_image)
    _write_json(results / "evaluation.json", {"lpips": LPIPS_STATUS, "device": "cpu"})
    means = {key: float(np.mean([values[key] for values in per_image.values()])) for key in next(iter(per_image.values()))}
    worst = max(values["worst_channel_error"] for values in per_image.values())
    summary = results / "metrics.json"
    sets = json.loads(summary.read_text()) if summary.is_file() else {}
    sets[set_name] = {**means, "max_worst_channel_error": worst, "megapixels_per_second": 1.5, "n_images": len(per_image)}
    _write_json(summary, sets)


def _numbers(text: str) -> list[float]:
    """The signed numbers of a report's text, its minus signs (−) included."""
    return [float(number) for number in re.findall(r"[-+]?\d+(?:\.\d+)?", text.replace("−", "-"))]


def _rendered_text(markdown: str) -> str:
    """The text a reader sees of ``markdown`` rendered to HTML (CommonMark: raw HTML passes through as tags)."""
    from html.parser import HTMLParser

    from markdown_it import MarkdownIt

    class Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.parts: list[str] = []

        def handle_data(self, data: str) -> None:
            self.parts.append(data)

    parser = Text()
    parser.feed(MarkdownIt("commonmark").render(markdown))
    return "".join(parser.parts)


def _hr_images(prepared: Path) -> dict[str, np.ndarray]:
    return {path.stem: read_image(path) for path in sorted((prepared / "valid" / "HR").glob("*.png"))}


def _red_cast(image: np.ndarray, levels: int, rows: slice = slice(None)) -> np.ndarray:
    """``image`` with ``levels`` added to the red channel of ``rows`` (clipped to 255)."""
    cast = image.copy()
    cast[rows, :, 0] = np.minimum(cast[rows, :, 0].astype(int) + levels, 255)
    return cast


def _train(model: str, batch_size: int, seed: int = 0, seconds: float = 80.0) -> None:
    """What `srbench train MODEL --seed SEED` leaves for the report: the model card, the
    numbers-only summary with the cost, the training history with seconds and images seen."""
    files = Outputs(model, seed)
    card = {
        "model": model, "seed": seed, "scale": 2, "arch": "test", "device": "cpu", "device_name": "Test CPU", "precision": "fp32", "threads": 2,
        "world_size": 1, "torch": "2.x", "steps": 40, "batch_size": batch_size, **({"content_loss": "mse"} if model == "srgan" else {}),
    }
    _write_json(files.card, card)
    cost = {"training_seconds": seconds, "wall_seconds": seconds + 10, "images_seen": 40 * batch_size, "steps_per_second": 40 / seconds, "peak_host_memory_mb": 1536.0}
    _write_json(files.training_summary, {"n_parameters": 1234, "seed": seed, "steps": 40, "world_size": 1, **cost})
    files.curves.parent.mkdir(parents=True, exist_ok=True)
    with open(files.curves, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["step", "seconds", "images", "loss", "lr", "val_psnr_y"])
        writer.writeheader()
        for step in (10, 20, 30, 40):
            timing = {"step": step, "seconds": 2.0 * step, "images": step * batch_size}
            writer.writerow({**timing, "loss": 1 / step, "lr": 1e-3})
            if step % 20 == 0:
                writer.writerow({**timing, "val_psnr_y": 25 + step / 10})


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prepared_x2: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = {
        "train": {"seeds": [0]},
        "report": {"models": ["bicubic", *MODELS], "crop_size": 24, "crop_images": 1, "external": {}, "departures": {"srcnn": "a test recipe"}},
    }
    Path("params.yaml").write_text(yaml.safe_dump(params))
    hr_images = _hr_images(prepared_x2)
    lr_images = {name: read_image(prepared_x2 / "valid" / "LR" / f"{name}.png") for name in hr_images}
    _evaluate("bicubic", {name: np.repeat(np.repeat(lr, 2, 0), 2, 1) for name, lr in lr_images.items()}, hr_images)
    rng = np.random.default_rng(0)
    for (model, noise), batch_size in zip(MODELS.items(), (16, 4)):
        noisy = {name: np.clip(hr.astype(int) + rng.integers(-noise, noise + 1, hr.shape), 0, 255).astype(np.uint8) for name, hr in hr_images.items()}
        _evaluate(model, noisy, hr_images)
        _train(model, batch_size)
    return tmp_path


def test_report_stage_writes_tables_figures_and_notes(workspace: Path, prepared_x2: Path, srbench_here: Callable[..., tuple[int, str]]) -> None:
    status, stderr = srbench_here("report", "--data", str(prepared_x2))
    assert status == 0, stderr
    report = (workspace / "reports" / "report.md").read_text()
    names = sorted(path.stem for path in (prepared_x2 / "valid" / "HR").glob("*.png"))
    tables = [block for block in report.split("\n\n") if block.startswith("| ")]
    means, per_image, paired, cost = (list(csv.reader(table.splitlines(), delimiter="|")) for table in tables)
    assert [row[1].strip() for row in means[2:]] == ["bicubic", "srcnn", "srgan"]
    assert all(row[8].strip() == "n/a" for row in means[2:])  # no lpips key: not measured
    evaluated = json.loads((workspace / "results" / "seed0" / "srgan" / "metrics.json").read_text())["valid"]
    expected = [*(evaluated[f"mean_error_{channel}"] for channel in "rgb"), evaluated["max_worst_channel_error"]]
    assert re.fullmatch(r"(\S+) / (\S+) / (\S+) \(worst image (\S+)\)", means[4][7].strip())  # srgan: no ⚠
    assert _numbers(means[4][7]) == pytest.approx(expected, abs=0.051) and expected[3] > 0
    assert [row[1].strip() for row in per_image[2:]] == [*names, "*median*", "*mean*"]
    methods = ["bicubic", *MODELS]
    measured = {method: json.loads((workspace / _files(method).results / "valid" / "per_image.json").read_text()) for method in methods}
    for row, name in zip(per_image[2:], names):
        winner = max(methods, key=lambda method: measured[method][name]["psnr_y"])
        assert row[-2].strip().startswith(winner) and row[2 + methods.index(winner)].strip().startswith("**")
        assert sum(cell.strip().startswith("**") for cell in row[2:-2]) == 1
    assert {row[-2].strip().split()[0] for row in per_image[2:4]} == {"bicubic", "srcnn"}  # the easy retina: bicubic wins there
    # Paired over the images, by hand: srcnn is the best mean (the least noise); its differences to bicubic have mixed signs.
    differences = [measured["srcnn"][name]["psnr_y"] - measured["bicubic"][name]["psnr_y"] for name in names]
    assert [row[1].strip() for row in paired[2:]] == ["srcnn", "srgan", "bicubic"] and paired[0][3].strip() == "vs srcnn (best mean)"
    mean, low, high, p_value = _numbers(paired[2][2])
    assert mean == pytest.approx(sum(differences) / len(differences), abs=0.006)
    assert (low, high) == (pytest.approx(min(differences), abs=0.006), pytest.approx(max(differences), abs=0.006))  # 2 images
    assert p_value == 1.0 and paired[2][2].strip().endswith("(not established)")  # one + and one −: P = 2 x 3/4, capped at 1
    assert min(differences) < 0 < max(differences) and len(names) == 2
    srgan_behind = _numbers(paired[3][3])
    assert srgan_behind[0] < srgan_behind[2] < 0 and srgan_behind[3] == 0.5 and "not established" not in paired[3][3]
    assert "With 2 images no p can fall below 0.5" in report
    assert "⚠" not in "".join(tables) and "Every model's mean colour error stays within 2 grey levels on every image." in report
    assert f"LPIPS (AlexNet, lower is better): {LPIPS_STATUS}." in _rendered_text(report)  # the <...> error is text, not a tag
    assert "Trained on: cpu (Test CPU), fp32 (every model)" in report and "Inference measured on: cpu." in report
    assert "- srgan content loss: mse." in report and "adversarial phase only" in report
    figures = sorted(path.name for path in (workspace / "reports").glob("*.png"))
    assert figures == [f"comparison_{names[0]}.png", "training_curves.png"]  # crop_images: 1
    for figure in figures:
        assert f"]({figure})" in report
        with Image.open(workspace / "reports" / figure) as image:
            assert image.width == 1500
    assert (workspace / "mlruns" / "mlflow.db").is_file()


def test_report_refuses_metrics_with_strings_and_a_missing_model_card(workspace: Path, prepared_x2: Path, srbench_here: Callable[..., tuple[int, str]]) -> None:
    Path("models/seed0/srgan.json").unlink()
    status, stderr = srbench_here("report", "--data", str(prepared_x2))
    assert status != 0 and "models/seed0/srgan.json: not found (run srbench train srgan --seed 0 first)" in stderr
    _write_json(Path("results/seed0/srcnn/metrics.json"), {"lpips_status": "old", **json.loads(Path("results/bicubic/metrics.json").read_text())})
    status, stderr = srbench_here("report", "--data", str(prepared_x2))
    assert status != 0 and "results/seed0/srcnn/metrics.json: lpips_status is not a test set of numbers" in stderr
    assert not Path("reports").exists() and not Path("mlruns/mlflow.db").exists()  # refused before any work


def test_report_refuses_metrics_without_colour_errors(workspace: Path, prepared_x2: Path, srbench_here: Callable[..., tuple[int, str]]) -> None:
    colour_keys = ("mean_error_r", "mean_error_g", "mean_error_b", "worst_channel_error", "max_worst_channel_error")
    current = Path("results/seed0/srgan/metrics.json").read_text()
    old = {name: {k: v for k, v in values.items() if k not in colour_keys} for name, values in json.loads(current).items()}
    _write_json(Path("results/seed0/srgan/metrics.json"), old)
    status, stderr = srbench_here("report", "--data", str(prepared_x2))
    expected = "results/seed0/srgan/metrics.json: valid has no mean_error_r, mean_error_g, mean_error_b, max_worst_channel_error (metrics from an older srbench: evaluate again)"
    assert status != 0 and stderr.strip().splitlines()[-1].endswith(expected)
    Path("results/seed0/srgan/metrics.json").write_text(current)
    per_image = json.loads(Path("results/seed0/srgan/valid/per_image.json").read_text())
    first = min(per_image)
    _write_json(Path("results/seed0/srgan/valid/per_image.json"), per_image | {first: {k: v for k, v in per_image[first].items() if k not in colour_keys}})
    status, stderr = srbench_here("report", "--data", str(prepared_x2))
    expected = f"results/seed0/srgan/valid/per_image.json: {first} has no mean_error_r, mean_error_g, mean_error_b, worst_channel_error"
    assert status != 0 and f"{expected} (metrics from an older srbench: evaluate srgan --seed 0 again)" in stderr
    assert not Path("reports").exists()



def test_report_names_the_models_with_a_colour_cast_on_each_test_set(
    workspace: Path, prepared_x2: Path, srbench_here: Callable[..., tuple[int, str]]
) -> None:
    hr_images = _hr_images(prepared_x2)
    first, second = hr_images
    close = {name: _red_cast(hr, 1, slice(None, None, 4)) for name, hr in hr_images.items()}  # +0.25 levels: no cast
    faint = {name: _red_cast(hr, 3, slice(None, None, 2)) for name, hr in hr_images.items()}  # +1.5 levels: no cast either
    bicubic = {name: read_image(Path(f"results/bicubic/valid/sr/{name}.png")) for name in hr_images}
    _evaluate("srcnn", close | {first: _red_cast(close[first], 5)}, hr_images)  # a +5 red cast on one validation image
    _evaluate("srgan", faint, hr_images)
    for model, sr_images in (("bicubic", bicubic), ("srcnn", close), ("srgan", faint | {second: _red_cast(faint[second], 5)})):
        _evaluate(model, sr_images, hr_images, "Set5")  # a benchmark set: srgan has the cast there
    status, stderr = srbench_here("report", "--data", str(prepared_x2))
    assert status == 0, stderr
    report = (workspace / "reports" / "report.md").read_text()
    valid, set5 = report.split("## Set5")

    worst = re.search(r"\*\*srcnn\*\*: mean colour error above 2 grey levels on 1 of 2 images \(worst: (\w+), r/g/b = (\S+) / (\S+) / (\S+)\)", valid)
    assert worst and worst[1] == first
    measured = json.loads(Path("results/seed0/srcnn/valid/per_image.json").read_text())[first]
    assert _numbers(" ".join(worst.groups()[1:])) == pytest.approx([measured[f"mean_error_{c}"] for c in "rgb"], abs=0.051)
    assert 4.5 < measured["mean_error_r"] <= 5.25
    srgan = json.loads(Path("results/seed0/srgan/valid/per_image.json").read_text())
    assert all(1.25 < values["worst_channel_error"] <= 1.5 for values in srgan.values())  # near the bound, yet within it
    assert "**srgan**" not in valid and "**bicubic**" not in valid and "Every model's" not in valid
    tables = {block.split("|")[1].strip(): block for block in valid.split("\n\n") if block.startswith("| ")}
    rows = {row[1].strip(): [cell.strip() for cell in row[2:-2]] for row in csv.reader(tables["Image"].splitlines()[2:], delimiter="|")}
    assert [cell.endswith(" ⚠") for cell in rows[first]] == [False, True, False]  # bicubic, srcnn, srgan
    assert not any(cell.endswith("⚠") for name in (second, "*median*", "*mean*") for cell in rows[name])
    srcnn_colour = tables["Model"].splitlines()[3].split("|")[7].strip()
    assert srcnn_colour.endswith(f"(worst image {measured['worst_channel_error']:.1f} ⚠)")

    assert re.search(rf"\*\*srgan\*\*: mean colour error above 2 grey levels on 1 of 2 images \(worst: {second}, r/g/b = \+[67]\.\d / ", set5)
    assert "**srcnn**: mean colour" not in set5 and "**bicubic**" not in set5


def test_report_over_two_seeds_shows_the_spread_and_pairs_the_seed_means(
    workspace: Path, prepared_x2: Path, srbench_here: Callable[..., tuple[int, str]]
) -> None:
    """train.seeds [0, 1]: each trained model's means as mean ± sample sd over the seeds, the paired
    table over each image's Y-PSNR averaged over the seeds, the cost averaged over the seeds."""
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["train"]["seeds"] = [0, 1]
    Path("params.yaml").write_text(yaml.safe_dump(params))
    hr_images = _hr_images(prepared_x2)
    rng = np.random.default_rng(1)
    for (model, noise), batch_size in zip({"srcnn": 6, "srgan": 9}.items(), (16, 4)):  # seed 1: other noise levels
        noisy = {name: np.clip(hr.astype(int) + rng.integers(-noise, noise + 1, hr.shape), 0, 255).astype(np.uint8) for name, hr in hr_images.items()}
        _evaluate(model, noisy, hr_images, seed=1)
        _train(model, batch_size, seed=1, seconds=120.0)
    status, stderr = srbench_here("report", "--data", str(prepared_x2))
    assert status == 0, stderr
    report = (workspace / "reports" / "report.md").read_text()
    assert "Mean ± sample standard deviation over 2 seeds (`train.seeds` = [0, 1])" in report
    tables = [list(csv.reader(block.splitlines(), delimiter="|")) for block in report.split("\n\n") if block.startswith("| ")]
    means, _, paired, cost = tables
    names = sorted(hr_images)

    def seed_means(model: str, key: str) -> list[float]:
        return [json.loads(_files(model, seed).results.joinpath("metrics.json").read_text())["valid"][key] for seed in (0, 1)]

    for row in means[3:]:  # srcnn, srgan; bicubic (row 2) has no seed
        model = row[1].strip()
        for column, key, digits in ((4, "psnr_y", 2), (5, "ssim_y", 4), (6, "psnr_rgb", 2)):
            first, second = seed_means(model, key)
            mean, spread = (float(number) for number in row[column].split(" ± "))
            assert mean == pytest.approx((first + second) / 2, abs=0.6 * 10**-digits)
            assert spread == pytest.approx(abs(first - second) / 2**0.5, abs=0.6 * 10**-digits)  # the sample sd of two values
        assert row[3].strip() == "1m40s"  # the training loop: 80 s and 120 s
    assert "±" not in means[2][4]

    per_image = {
        model: {name: np.mean([json.loads((_files(model, seed).results / "valid" / "per_image.json").read_text())[name]["psnr_y"] for seed in (0, 1)]) for name in names}
        for model in MODELS
    }
    bicubic = json.loads(Path("results/bicubic/valid/per_image.json").read_text())
    rows = {row[1].strip(): row for row in paired[2:]}
    for model in MODELS:
        differences = [per_image[model][name] - bicubic[name]["psnr_y"] for name in names]
        mean, low, high, p_value = _numbers(rows[model][2])
        assert mean == pytest.approx(sum(differences) / 2, abs=0.006)
        assert (low, high) == (pytest.approx(min(differences), abs=0.006), pytest.approx(max(differences), abs=0.006))  # 2 images
        same_sign = min(differences) > 0 or max(differences) < 0
        # the exact two-sided signed-rank test on 2 differences, by hand: the 4 sign patterns are equally likely; the rank
        # sum of the positive ones is 0, 1, 2 or 3; two of one sign are an extreme pattern (P = 2 x 1/4), mixed signs never are
        assert p_value == (0.5 if same_sign else 1.0)
        assert rows[model][2].strip().endswith("(not established)") == (not same_sign)
    srgan_behind = [per_image["srgan"][name] - per_image["srcnn"][name] for name in names]
    assert max(srgan_behind) < 0 and _numbers(rows["srgan"][3])[3] == 0.5 and "not established" not in rows["srgan"][3]
    assert any("(not established)" in row[2] for row in paired[2:])
    costs = {row[1].strip(): [cell.strip() for cell in row[2:-1]] for row in cost[2:]}
    assert costs["srgan"][:2] == ["1m40s", "1m50s"] and costs["srgan"][5] == f"{40 / 80 / 2 + 40 / 120 / 2:.2f}"
    assert "one line per seed (2)" in report and "(seed 0)" in report
