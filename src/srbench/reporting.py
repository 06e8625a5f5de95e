"""The comparison: a Markdown table, a figure of the same crop across models, training curves.
Everything renders offline (matplotlib's Agg backend)."""

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from srbench.images import read_image  # noqa: E402

COLUMNS = (
    "Model",
    "Parameters",
    "Training time",
    "Y-PSNR (dB)",
    "Y-SSIM",
    "RGB PSNR (dB)",
    "LPIPS",
    "Keras accuracy",
    "Inference MP/s",
    "Published Y-PSNR / Y-SSIM",
)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def markdown_table(rows: list[dict]) -> str:
    """One row per model: ``name``, ``n_parameters``, ``training_seconds`` (None for bicubic),
    ``psnr_y``, ``ssim_y``, ``psnr_rgb``, ``lpips`` (None: unavailable), ``keras_accuracy``,
    ``megapixels_per_second`` and ``published`` ((Y-PSNR, Y-SSIM) from the literature, or None)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        parameters = f"{row['n_parameters']:,}" if row.get("n_parameters") else "0"
        cells = (
            row["name"],
            parameters,
            _duration(row.get("training_seconds")),
            f"{row['psnr_y']:.2f}",
            f"{row['ssim_y']:.4f}",
            f"{row['psnr_rgb']:.2f}",
            "n/a" if row.get("lpips") is None else f"{row['lpips']:.4f}",
            "–" if row.get("keras_accuracy") is None else f"{row['keras_accuracy']:.4f}",
            f"{row['megapixels_per_second']:.2f}",
            "–" if row.get("published") is None else "{:.2f} / {:.4f}".format(*row["published"]),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def detailed_crop_box(hr: np.ndarray, size: int) -> tuple[int, int, int]:
    """(top, left, side) of the square crop with the most gradient energy, on a coarse grid."""
    side = min(size, hr.shape[0], hr.shape[1])
    gray = hr.astype(np.float64).mean(axis=2)
    energy = np.abs(np.diff(gray, axis=0))[:, :-1] + np.abs(np.diff(gray, axis=1))[:-1, :]
    integral = np.pad(energy, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    step = max(1, side // 4)
    best, box = -1.0, (0, 0)
    for top in range(0, energy.shape[0] - side + 2, step):
        for left in range(0, energy.shape[1] - side + 2, step):
            bottom, right = min(top + side - 1, energy.shape[0]), min(left + side - 1, energy.shape[1])
            total = integral[bottom, right] - integral[top, right] - integral[bottom, left] + integral[top, left]
            if total > best:
                best, box = total, (top, left)
    return box[0], box[1], side


def comparison_figure(
    path: Path,
    valid_dir: Path,
    results: dict[str, Path],
    per_image: dict[str, dict],
    scale: int,
    crop_size: int,
    max_images: int,
) -> None:
    """A grid: one row per validation image (the first ``max_images``); LR (nearest), then each
    method's SR crop, then HR.

    ``results`` maps each method (bicubic first) to its folder of SR PNGs; ``per_image`` maps it
    to its per-image metrics, shown under each crop."""
    names = sorted(p.stem for p in (valid_dir / "HR").glob("*.png"))[:max_images]
    columns = ["LR", *results, "HR"]
    figure, axes = plt.subplots(len(names), len(columns), figsize=(2.2 * len(columns), 2.4 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        hr = read_image(valid_dir / "HR" / f"{name}.png")
        top, left, side = detailed_crop_box(hr, crop_size)
        window = (slice(top, top + side), slice(left, left + side))
        lr = read_image(valid_dir / "LR" / f"{name}.png")
        lr_crop = lr[top // scale : (top + side) // scale, left // scale : (left + side) // scale]
        crops = {"LR": np.repeat(np.repeat(lr_crop, scale, 0), scale, 1), "HR": hr[window]}
        for method, folder in results.items():
            crops[method] = read_image(folder / f"{name}.png")[window]
        for column, method in enumerate(columns):
            axis = axes[row][column]
            axis.imshow(crops[method], interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(method, fontsize=10)
            if method in per_image:
                values = per_image[method][name]
                axis.set_xlabel(f"{values['psnr_y']:.2f} dB / {values['ssim_y']:.3f}", fontsize=8)
            elif column == 0:
                axis.set_xlabel(name, fontsize=8)
    figure.suptitle(f"x{scale}: crops of {crop_size} HR px (Y-PSNR / Y-SSIM of the whole image)", fontsize=10)
    figure.tight_layout()
    _save(figure, path)


def read_curves(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Columns of a training-history CSV as (step, value) series, skipping empty cells."""
    series: dict[str, list[tuple[int, float]]] = {}
    with path.open(newline="") as handle:
        for record in csv.DictReader(handle):
            for key, value in record.items():
                if key != "step" and value not in ("", None):
                    series.setdefault(key, []).append((int(record["step"]), float(value)))
    return series


def _validation_seconds(series: dict[str, list[tuple[int, float]]]) -> list[float] | None:
    """Training seconds at each ``val_psnr_y`` row, or None when the history does not record them all."""
    seconds = dict(series.get("seconds", []))
    steps = [step for step, _ in series["val_psnr_y"]]
    return [seconds[step] for step in steps] if all(step in seconds for step in steps) else None


def training_curves_figure(path: Path, curves: dict[str, Path], baseline_psnr: float | None) -> None:
    """Training loss (log scale) against step, and validation Y-PSNR against training time (log
    scale), one line per model. Validation falls back to steps for every model when a history has
    no ``seconds`` (written before they were recorded)."""
    figure, (loss_axis, psnr_axis) = plt.subplots(1, 2, figsize=(11, 4))
    validation = {}
    for model, csv_path in curves.items():
        series = read_curves(csv_path)
        if "loss" in series:
            steps, values = zip(*series["loss"])
            loss_axis.plot(steps, values, label=model)
        if "val_psnr_y" in series:
            validation[model] = (series["val_psnr_y"], _validation_seconds(series))
    by_time = bool(validation) and all(seconds is not None for _, seconds in validation.values())
    for model, (points, seconds) in validation.items():
        steps, values = zip(*points)
        psnr_axis.plot(seconds if by_time else steps, values, marker="o", label=model)
    if baseline_psnr is not None:
        psnr_axis.axhline(baseline_psnr, color="gray", linestyle="--", label="bicubic")
    loss_axis.set(yscale="log", xlabel="step", ylabel="training loss", title="Training loss")
    psnr_axis.set(xlabel="training time (s)" if by_time else "step", ylabel="Y-PSNR (dB)", title="Validation Y-PSNR")
    if by_time and all(min(seconds) > 0 for _, seconds in validation.values()):
        psnr_axis.set_xscale("log")
    for axis in (loss_axis, psnr_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    _save(figure, path)


def _save(figure: plt.Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    figure.savefig(tmp, dpi=110)
    plt.close(figure)
    tmp.replace(path)
