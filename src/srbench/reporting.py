"""The report's pieces: the mean table, the per-image table and the colour-cast lines (Markdown),
one comparison figure per validation image (where the crop lies on the full image, the crop
across models with the crop's own numbers, difference maps on one colour scale) and the training
curves against wall-clock time and training images seen. Everything renders offline
(matplotlib's Agg canvas).

Figures are :data:`FIGURE_WIDTH` inches wide with no text under :data:`SMALLEST_FONT` points:
scaled to 900 px wide, the smallest text is set at 900 * 11 / (72 * 10) = 13.75 px (digits about
10 px tall)."""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle
from matplotlib.ticker import EngFormatter, FuncFormatter, LogLocator

from srbench.errors import SrbenchError
from srbench.files import atomic_path
from srbench.images import read_image
from srbench.metrics import COLOUR_CAST_LEVELS, psnr, rgb_to_y, ssim
from srbench.stats import CONFIDENCE, RESAMPLES, SEED, TEST_NAME, PairedComparison, paired_comparison

COLUMNS = (
    "Model",
    "Parameters",
    "Training time",
    "Y-PSNR (dB)",
    "Y-SSIM",
    "RGB PSNR (dB)",
    "Colour error (levels)",
    "LPIPS",
    "Keras accuracy",
    "Inference MP/s",
    "Published Y-PSNR / Y-SSIM",
)

FIGURE_WIDTH = 10.0  # inches
SMALLEST_FONT = 11  # points
DPI = 150
_STYLE = {
    "font.size": 12,
    "axes.titlesize": 13,
    "axes.labelsize": 12,
    "xtick.labelsize": SMALLEST_FONT,
    "ytick.labelsize": SMALLEST_FONT,
    "legend.fontsize": SMALLEST_FONT,
    "figure.titlesize": 13,
}
PANEL = FIGURE_WIDTH / 4  # side of one crop panel, inches: four crops per row
ERROR_COLOURS = "inferno"
BOX_COLOUR = "yellow"
HISTORY_COLUMNS = ("step", "seconds", "images")  # every training history has them (plots/train/seedN/MODEL.csv)
CAST_MARK = "⚠"  # after a per-image cell whose image has a colour cast


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _signed(value: float, digits: int = 1) -> str:
    """``value`` to ``digits`` decimals with its sign, a true minus for negatives, never '−0.0': '+0.3', '−1.2'."""
    return f"{round(value, digits) + 0.0:+.{digits}f}".replace("-", "−")


def _rgb(values: dict[str, float]) -> str:
    """The signed mean errors ``mean_error_r``, ``_g``, ``_b`` of ``values``: '+0.3 / −1.2 / +0.4'."""
    return " / ".join(_signed(values[f"mean_error_{channel}"]) for channel in "rgb")


def _has_cast(values: dict[str, float]) -> bool:
    """Whether an image's mean error in some colour channel exceeds :data:`COLOUR_CAST_LEVELS`."""
    return values["worst_channel_error"] > COLOUR_CAST_LEVELS


def escape_html(text: str) -> str:
    """``text`` with &, < and > escaped, so that Markdown renders an error message such as
    ``<urlopen error ...>`` as text instead of swallowing it as an HTML tag."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _with_spread(row: dict, key: str, digits: int) -> str:
    """``row[key]`` to ``digits`` decimals, with ``± KEY_sd`` when the row has it."""
    text = f"{row[key]:.{digits}f}"
    return f"{text} ± {row[key + '_sd']:.{digits}f}" if f"{key}_sd" in row else text


def seeds_line(seeds: list[int]) -> str:
    """What a table's numbers are over: one seed, or the mean ± sd over several."""
    if len(seeds) == 1:
        return (
            f"One seed (`train.seeds` = {seeds}): no spread over seeds is measured; `dvc exp run -S 'train.seeds=[0,1,2]'` "
            "adds it (README).\n"
        )
    return (
        f"Mean ± sample standard deviation over {len(seeds)} seeds (`train.seeds` = {seeds}), each seed's mean over the images "
        "first; bicubic has no seed. The per-image and paired tables use each image's Y-PSNR averaged over the seeds.\n"
    )


def markdown_table(rows: list[dict]) -> str:
    """One row per model: ``name``, ``n_parameters``, ``training_seconds`` (None for bicubic),
    ``psnr_y``, ``ssim_y``, ``psnr_rgb`` (each with ``KEY_sd``, its spread over seeds, shown as
    ± when present), ``mean_error_r``, ``mean_error_g``, ``mean_error_b``
    and ``max_worst_channel_error`` (shown as the mean R / G / B errors, then the worst image's
    largest one, marked when above :data:`COLOUR_CAST_LEVELS`), ``lpips`` (absent or None: not
    measured), ``keras_accuracy``, ``megapixels_per_second`` and ``published`` ((Y-PSNR, Y-SSIM)
    from the literature, or None). The last column, published numbers, only when a row has some."""
    with_published = any(row.get("published") is not None for row in rows)
    columns = COLUMNS if with_published else COLUMNS[:-1]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        parameters = f"{row['n_parameters']:,}" if row.get("n_parameters") else "0"
        cells = (
            row["name"],
            parameters,
            _duration(row.get("training_seconds")),
            _with_spread(row, "psnr_y", 2),
            _with_spread(row, "ssim_y", 4),
            _with_spread(row, "psnr_rgb", 2),
            f"{_rgb(row)} (worst image {row['max_worst_channel_error']:.1f}"
            + (f" {CAST_MARK})" if row["max_worst_channel_error"] > COLOUR_CAST_LEVELS else ")"),
            "n/a" if row.get("lpips") is None else f"{row['lpips']:.4f}",
            "–" if row.get("keras_accuracy") is None else f"{row['keras_accuracy']:.4f}",
            f"{row['megapixels_per_second']:.2f}",
            "–" if row.get("published") is None else "{:.2f} / {:.4f}".format(*row["published"]),
        )
        lines.append("| " + " | ".join(cells[: len(columns)]) + " |")
    return "\n".join(lines) + "\n"


COST_COLUMNS = (
    "Model", "Training loop", "Wall time", "Device", "Precision", "Images seen", "Steps/s", "Peak host memory", "Peak GPU memory", "GPU-hours",
)


def _summed(own: float, before: float | None, show: Callable[[float], str], first: str | None) -> str:
    """``own`` shown, or when the model starts from another (``first``, which cost ``before``),
    their sum with its parts: '2m33s (srresnet 2m05s + 28s)'."""
    if before is None:
        return show(own)
    return f"{show(before + own)} ({first} {show(before)} + {show(own)})"


def cost_table(costs: dict[str, dict[str, float]], cards: dict[str, dict], starts_from: dict[str, str]) -> str:
    """What each trained model cost (its summaries' :data:`srbench.names.COST_KEYS`, averaged over seeds): the
    training loop's time and the commands' wall time, images seen and GPU-hours, each summed with
    those of the model it starts from (``starts_from``: model -> that model, e.g. srgan ->
    srresnet) and shown as the sum of both; device, precision (``cards``), the loop's steps per
    second and the peak host and GPU memory of its own run."""
    lines = ["| " + " | ".join(COST_COLUMNS) + " |", "|" + "---|" * len(COST_COLUMNS)]
    for model, cost in costs.items():
        first = starts_from.get(model)
        before = costs[first] if first in costs else None

        def summed(key: str, show: Callable[[float], str]) -> str:
            if key not in cost:
                return "–"
            return _summed(cost[key], None if before is None or key not in before else before[key], show, first)

        card = cards[model]
        cells = (
            model,
            summed("training_seconds", _duration),
            summed("wall_seconds", _duration),
            f"{card['device']} ({card['device_name']})",
            card["precision"],
            summed("images_seen", lambda value: f"{value:,.0f}"),
            f"{cost['steps_per_second']:.2f}",
            f"{cost['peak_host_memory_mb'] / 1024:.2f} GiB",
            "–" if "peak_gpu_memory_mb" not in cost else f"{cost['peak_gpu_memory_mb'] / 1024:.2f} GiB",
            summed("gpu_hours", lambda value: f"{value:.3f}"),
        )
        lines.append("| " + " | ".join(cells) + " |")
    note = (
        "\nTraining loop: its steps alone, validation excluded; wall time: the whole `srbench train` command from its start "
        "(building the model, validating, writing and logging; not the Python start-up); a model that starts from another "
        "shows the sum with its parts. Images seen: steps x batch (of all processes together). Peak host memory: the process's "
        "peak resident set; peak GPU memory: PyTorch's largest allocation on the first GPU. Means over the seeds.\n"
    )
    return "\n".join(lines) + "\n" + note


def conventions(scale: int, lr_source: str, rounding: str) -> str:
    """The measuring conventions of a table's numbers, in one line, so that a reader can hold
    them against a published table of either kind (the SR papers' Y-PSNR, or the RGB PSNR of
    BasicSR's and mmagic's model zoos)."""
    if lr_source == "matlab_bicubic":
        passes = "rounded to 8 bits after each pass" if rounding == "per_pass" else "on doubles, rounded once"
        lr = f"MATLAB's bicubic imresize of HR ({passes})"
    else:
        lr = f"{lr_source.replace('_', ' ')} LR images"
    return (
        f"Conventions: Y is BT.601 luma (16–235 of 255); Y-PSNR, Y-SSIM and RGB PSNR are measured on the SR image rounded "
        f"to uint8 with {scale} px cropped at each border (the SR papers' Y-PSNR; RGB PSNR so cropped is the model zoos' "
        f"convention); LR: {lr}.\n"
    )


def _bold_best(values: list[float], digits: int) -> list[str]:
    """``values`` printed with ``digits`` decimals, the highest (as printed, so ties tie) in bold."""
    printed = [f"{value:.{digits}f}" for value in values]
    best = max(round(value, digits) for value in values)
    return [f"**{text}**" if round(value, digits) == best else text for value, text in zip(values, printed)]


def per_image_table(per_image: dict[str, dict[str, dict[str, float]]]) -> str:
    """Y-PSNR / Y-SSIM of every method (columns, in the order given: the reference, bicubic,
    first) on every image (rows, sorted), then their median and mean over the images. In each row
    the best Y-PSNR and the best Y-SSIM are bold; a cell whose image has a colour cast (a mean
    channel error above :data:`COLOUR_CAST_LEVELS`) ends in :data:`CAST_MARK`; the last column
    names the method(s) of best Y-PSNR and their gain over the reference.

    ``per_image`` maps each method to ``results/METHOD/SET/per_image.json``: image name ->
    ``psnr_y``, ``ssim_y``, ``worst_channel_error``; every method must have the same images."""
    methods = list(per_image)
    reference = methods[0]
    images = sorted(per_image[reference])
    rows = [(name, [per_image[m][name]["psnr_y"] for m in methods], [per_image[m][name]["ssim_y"] for m in methods]) for name in images]
    psnr_columns = list(zip(*(psnrs for _, psnrs, _ in rows)))  # one per method
    ssim_columns = list(zip(*(ssims for _, _, ssims in rows)))
    for label, summary in (("*median*", statistics.median), ("*mean*", statistics.fmean)):
        rows.append((label, [summary(column) for column in psnr_columns], [summary(column) for column in ssim_columns]))
    header = ["Image", *methods, f"Best Y-PSNR (dB over {reference})"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, psnrs, ssims in rows:
        casts = [label in images and _has_cast(per_image[m][label]) for m in methods]
        cells = [f"{p} / {s}" + (f" {CAST_MARK}" if cast else "") for p, s, cast in zip(_bold_best(psnrs, 2), _bold_best(ssims, 4), casts)]
        best = max(round(value, 2) for value in psnrs)
        winners = [method for method, value in zip(methods, psnrs) if round(value, 2) == best]
        gain = "" if winners == [reference] else f" ({best - round(psnrs[0], 2):+.2f})"
        lines.append("| " + " | ".join([label, *cells, ", ".join(winners) + gain]) + " |")
    return "\n".join(lines) + "\n"


NOT_ESTABLISHED = "not established"


def _paired_cell(comparison: PairedComparison) -> str:
    cell = (
        f"{_signed(comparison.mean_difference, 2)} [{_signed(comparison.ci_low, 2)}, {_signed(comparison.ci_high, 2)}], "
        f"p = {comparison.p_value:.3g}"
    )
    return cell if comparison.established else f"{cell} ({NOT_ESTABLISHED})"


def paired_table(per_image: dict[str, dict[str, dict[str, float]]]) -> str:
    """Each method's per-image Y-PSNR against the reference (the first method, bicubic) and
    against the method of highest mean Y-PSNR: the mean difference (dB), its bootstrap interval
    and the signed-rank test's p-value (:func:`srbench.stats.paired_comparison`); a lead whose
    interval contains 0 is marked :data:`NOT_ESTABLISHED`. Then a line saying how it was computed."""
    methods = list(per_image)
    reference = methods[0]
    images = sorted(per_image[reference])
    scores = {method: [per_image[method][name]["psnr_y"] for name in images] for method in methods}
    best = max(methods, key=lambda method: statistics.fmean(scores[method]))
    lines = [f"| Paired Y-PSNR | vs {reference} | vs {best} (best mean) |", "|---|---|---|"]
    for method in methods[1:]:
        against_best = "–" if method == best else _paired_cell(paired_comparison(scores[method], scores[best]))
        lines.append(f"| {method} | {_paired_cell(paired_comparison(scores[method], scores[reference]))} | {against_best} |")
    if best != reference:
        lines.append(f"| {reference} | – | {_paired_cell(paired_comparison(scores[reference], scores[best]))} |")
    smallest_p = 2 / 2 ** len(images)
    note = (
        f"\nMean Y-PSNR difference per image (dB), row minus column, over the {len(images)} images; in brackets its "
        f"{CONFIDENCE:.0%} percentile bootstrap interval over images ({RESAMPLES:,} resamples, seed {SEED}); p: the {TEST_NAME}. "
        f"{NOT_ESTABLISHED.capitalize()}: the interval contains 0, so these images do not settle which is better. "
        f"With {len(images)} images no p can fall below {smallest_p:.3g}, and the interval holds the means of resamples of "
        f"{len(images)} values: on few images read both as weak evidence.\n"
    )
    return "\n".join(lines) + "\n" + note


def colour_cast_lines(per_image: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """A line for each method (in the order given) with a colour cast on some image (a mean
    channel error above :data:`COLOUR_CAST_LEVELS`): on how many of the images, and the worst one
    with its mean R / G / B errors; a single line saying so when no method has one. ``per_image``
    maps each method to image name -> ``mean_error_r``, ``_g``, ``_b``, ``worst_channel_error``."""
    lines = []
    for method, images in per_image.items():
        if cast := [name for name in sorted(images) if _has_cast(images[name])]:
            worst = max(cast, key=lambda name: images[name]["worst_channel_error"])
            lines.append(
                f"**{method}**: mean colour error above {COLOUR_CAST_LEVELS:g} grey levels on {len(cast)} of {len(images)} images "
                f"(worst: {worst}, r/g/b = {_rgb(images[worst])})"
            )
    return lines or [f"Every model's mean colour error stays within {COLOUR_CAST_LEVELS:g} grey levels on every image."]


def crop_box(hr: np.ndarray, size: int, scale: int) -> tuple[int, int, int]:
    """(top, left, side) of the square crop with the most gradient energy. The crop keeps
    ``scale`` pixels away from the border (which the image metrics leave out), and its corners
    and side are multiples of ``scale``, so that it matches an LR crop exactly."""
    height, width = hr.shape[:2]
    side = min(size, height - 2 * scale, width - 2 * scale) // scale * scale
    if side < scale:
        raise SrbenchError(f"an HR image of {width} x {height} px has no room for a crop at x{scale}")
    gray = hr.astype(np.float64).mean(axis=2)
    energy = np.zeros_like(gray)
    energy[:-1, :-1] = np.abs(np.diff(gray, axis=0))[:, :-1] + np.abs(np.diff(gray, axis=1))[:-1, :]
    integral = np.pad(energy, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    totals = integral[side:, side:] - integral[:-side, side:] - integral[side:, :-side] + integral[:-side, :-side]  # [top, left]
    allowed = totals[scale : height - scale - side + 1 : scale, scale : width - scale - side + 1 : scale]
    row, column = np.unravel_index(np.argmax(allowed), allowed.shape)
    return scale * (1 + int(row)), scale * (1 + int(column)), side


@dataclass(frozen=True)
class CropComparison:
    """One validation image's crop across methods."""

    name: str
    hr: np.ndarray  # the whole HR image
    box: tuple[int, int, int]  # (top, left, side) of the crop in HR pixels
    lr: np.ndarray  # the LR crop, enlarged ``scale`` times by repeating pixels
    crops: dict[str, np.ndarray]  # method -> its SR crop
    errors: dict[str, np.ndarray]  # method -> |Y(SR) - Y(HR)| on the crop, BT.601 luma levels
    scores: dict[str, tuple[float, float]]  # method -> (Y-PSNR, Y-SSIM) of the crop alone


def compare_crops(name: str, valid_dir: Path, results: dict[str, Path], scale: int, crop_size: int) -> CropComparison:
    """The crop of :func:`crop_box` from ``valid_dir``'s HR and LR image ``name`` and from each
    method's SR image (``results``: method -> its folder of SR PNGs), with each crop's own
    Y-PSNR / Y-SSIM and its difference map."""
    hr = read_image(valid_dir / "HR" / f"{name}.png")
    top, left, side = crop_box(hr, crop_size, scale)
    window = (slice(top, top + side), slice(left, left + side))
    lr = read_image(valid_dir / "LR" / f"{name}.png")[top // scale : (top + side) // scale, left // scale : (left + side) // scale]
    hr_crop = hr[window]
    crops, errors, scores = {}, {}, {}
    for method, folder in results.items():
        sr = read_image(folder / f"{name}.png")
        if sr.shape != hr.shape:
            raise SrbenchError(f"{folder / f'{name}.png'}: {sr.shape[1]} x {sr.shape[0]} px, but its HR image is {hr.shape[1]} x {hr.shape[0]}")
        crops[method] = sr[window]
        errors[method] = np.abs(rgb_to_y(crops[method]) - rgb_to_y(hr_crop))
        scores[method] = (psnr(crops[method], hr_crop, 0, y_channel=True), ssim(crops[method], hr_crop, 0, y_channel=True))
    lr_enlarged = np.repeat(np.repeat(lr, scale, axis=0), scale, axis=1)
    return CropComparison(name, hr, (top, left, side), lr_enlarged, crops, errors, scores)


def error_limit(comparisons: list[CropComparison]) -> float:
    """The top of the difference maps' shared colour scale: the 99th percentile of the first
    method's (bicubic's) errors over every crop, rounded up to a multiple of 5 luma levels."""
    errors = np.concatenate([next(iter(comparison.errors.values())).ravel() for comparison in comparisons])
    return max(5.0, 5.0 * math.ceil(float(np.percentile(errors, 99)) / 5.0))


@contextmanager
def _style() -> Iterator[None]:
    with matplotlib.rc_context(_STYLE):
        yield


def _image_panel(axis: Axes, image: np.ndarray, **options: object) -> AxesImage:
    shown = axis.imshow(image, interpolation="nearest", **options)
    axis.set_xticks([])
    axis.set_yticks([])
    return shown


def comparison_figure(comparison: CropComparison, scale: int, limit: float) -> Figure:
    """One image's comparison: the whole HR image with the crop's box, the LR and HR crops, then
    for each method its crop (its own Y-PSNR / Y-SSIM under it) above its difference map
    (|Y(SR) - Y(HR)|, colour scale 0..``limit`` shared by every panel, with a colour bar)."""
    methods = list(comparison.crops)
    chunks = [methods[start : start + 4] for start in range(0, len(methods), 4)]
    heights = [1.0] + [1.0, 1.0] * len(chunks) + [0.1]
    with _style():
        figure = Figure(figsize=(FIGURE_WIDTH, PANEL * sum(heights) + 1.6), layout="constrained")
        grid = figure.add_gridspec(len(heights), 4, height_ratios=heights)
        top, left, side = comparison.box
        overview = figure.add_subplot(grid[0, :2])
        _image_panel(overview, comparison.hr)
        overview.add_patch(Rectangle((left - 0.5, top - 0.5), side, side, fill=False, edgecolor=BOX_COLOUR, linewidth=2))
        overview.set_title(f"{comparison.name}: whole HR image")
        hr_crop = comparison.hr[top : top + side, left : left + side]
        for column, (title, image) in enumerate((("LR (pixels repeated)", comparison.lr), ("HR", hr_crop)), start=2):
            axis = figure.add_subplot(grid[0, column])
            _image_panel(axis, image)
            axis.set_title(title)
        shown = None
        for row, chunk in enumerate(chunks):
            for column, method in enumerate(chunk):
                crop_axis = figure.add_subplot(grid[1 + 2 * row, column])
                _image_panel(crop_axis, comparison.crops[method])
                crop_axis.set_title(method)
                crop_axis.set_xlabel("{:.2f} dB / {:.3f}".format(*comparison.scores[method]))
                error_axis = figure.add_subplot(grid[2 + 2 * row, column])
                shown = _image_panel(error_axis, comparison.errors[method], cmap=ERROR_COLOURS, vmin=0.0, vmax=limit)
                if column == 0:
                    crop_axis.set_ylabel("crop")
                    error_axis.set_ylabel("|Y(SR) − Y(HR)|")
        colour_bar = figure.colorbar(shown, cax=figure.add_subplot(grid[-1, :]), orientation="horizontal", extend="max")
        colour_bar.set_label("|Y(SR) − Y(HR)| in luma levels (0-255 scale); the same scale in every panel and figure")
        figure.suptitle(
            f"{comparison.name}, x{scale}: crop of {side} HR px (yellow box). Under each crop: Y-PSNR / Y-SSIM\n"
            "of this crop alone (whole-image numbers: the report's tables)"
        )
    return figure


def read_history(path: Path) -> list[dict[str, float]]:
    """A training history (``plots/train/seedN/MODEL.csv``) as rows of its non-empty cells."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in HISTORY_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise SrbenchError(f"{path}: no {', '.join(missing)} column (a history from an older srbench: train again)")
        return [{key: float(value) for key, value in record.items() if value not in ("", None)} for record in reader]


def _points(rows: list[dict[str, float]], x: str, y: str, x_factor: float = 1.0) -> tuple[list[float], list[float]]:
    """The (x * ``x_factor``, y) of the rows that have both, x positive (for a log axis)."""
    pairs = [(row[x] * x_factor, row[y]) for row in rows if y in row and row.get(x, 0) > 0]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def training_curves_figure(histories: dict[str, list[Path]], baseline_psnr: float, baseline: str = "bicubic") -> Figure:
    """Validation Y-PSNR (top) and training loss (bottom, log scale) of each model against
    training time in minutes (left) and training images seen (right), both on log scales since
    budgets differ by orders of magnitude; ``baseline_psnr`` (bicubic's) as a dashed line. The
    Y-PSNR axes go no lower than 10 dB under the baseline; models with lower validation points
    are named in the panel. ``histories``: model -> its ``plots/train/seedN/MODEL.csv`` of each
    seed, drawn in one colour."""
    rows = {model: [read_history(path) for path in paths] for model, paths in histories.items()}
    with _style():
        figure = Figure(figsize=(FIGURE_WIDTH, 8.5), layout="constrained")
        axes = figure.subplots(2, 2, sharex="col")
        colours = matplotlib.colormaps["tab10"].colors
        for column, (x, x_factor, x_label, formatter) in enumerate(
            (("seconds", 1 / 60, "training time (minutes)", FuncFormatter(lambda value, _: f"{value:g}")), ("images", 1.0, "training images seen", EngFormatter()))
        ):
            psnr_axis, loss_axis = axes[0][column], axes[1][column]
            for index, (model, seeds) in enumerate(rows.items()):
                colour = colours[index % len(colours)]
                for number, history in enumerate(seeds):
                    label = model if number == 0 else None
                    psnr_axis.plot(*_points(history, x, "val_psnr_y", x_factor), marker="o", markersize=4, color=colour, label=label)
                    loss_axis.plot(*_points(history, x, "loss", x_factor), color=colour, linewidth=1.2, label=label)
            psnr_axis.axhline(baseline_psnr, color="gray", linestyle="--", label=baseline)
            loss_axis.set(yscale="log", xscale="log", xlabel=x_label)
            loss_axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            loss_axis.xaxis.set_major_formatter(formatter)
            psnr_axis.set_title(f"Validation Y-PSNR vs {x_label.split(' (')[0]}")
            loss_axis.set_title(f"Training loss vs {x_label.split(' (')[0]}")
            for axis in (psnr_axis, loss_axis):
                axis.grid(alpha=0.3)
        validation = {model: [row["val_psnr_y"] for history in seeds for row in history if "val_psnr_y" in row] for model, seeds in rows.items()}
        values = [baseline_psnr, *(value for series in validation.values() for value in series)]
        floor = baseline_psnr - 10.0
        below = {model: min(series) for model, series in validation.items() if series and min(series) < floor}
        for psnr_axis in axes[0]:
            psnr_axis.set_ylim(max(floor, min(values) - 0.5), max(values) + 0.5)
            psnr_axis.set_ylabel("Y-PSNR (dB)")
            if below:
                note = "below the axis: " + ", ".join(f"{model} ({value:.1f} dB)" for model, value in below.items())
                psnr_axis.text(0.02, 0.03, note, transform=psnr_axis.transAxes, fontsize=SMALLEST_FONT)
        for loss_axis in axes[1]:
            loss_axis.set_ylabel("training loss (own objective)")
        handles, labels = axes[0][0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5))
    return figure


def save_figure(figure: Figure, path: Path) -> None:
    """Write ``figure`` as a PNG atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=DPI, format="png")
