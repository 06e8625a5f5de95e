"""`srbench report`: per test set, a table of means (with the published numbers beside the
measured ones), for the validation images a table per image, and the models with a colour cast on
some image; one crop comparison figure per validation image and the training curves against time
and images seen, in reports/. Published checkpoints (``report.external``) are rows too, marked
as not trained here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from pipeline.layout import Outputs, check_external_name, external_outputs, read_seeds
from pipeline.outputs import ensure_writable
from pipeline.params import PARAMS_OPTION, ParamError, Params
from pipeline.process import logger, workspace_lock
from pipeline.tracking import mlflow_run, output_places
from srbench.errors import SrbenchError
from srbench.files import staged_folder, write_text
from srbench.names import COST_KEYS, CUDA_COST_KEYS, model_names
from srbench.published import BICUBIC, BICUBIC_SOURCE

if TYPE_CHECKING:
    from srbench.data import PreparedMeta

CARD_KEYS = ("device", "device_name", "precision")  # of a model card, models/seedN/MODEL.json
COLOUR_KEYS = ("mean_error_r", "mean_error_g", "mean_error_b")
SET_KEYS = ("psnr_y", "ssim_y", "psnr_rgb", *COLOUR_KEYS, "max_worst_channel_error", "megapixels_per_second", "n_images")  # of each test set in results/seedN/MODEL/metrics.json
IMAGE_KEYS = ("psnr_y", "ssim_y", *COLOUR_KEYS, "worst_channel_error")  # of each image in results/seedN/MODEL/SET/per_image.json


def _read_json(path: Path, stage: str) -> Any:
    if not path.is_file():
        raise SrbenchError(f"{path}: not found (run srbench {stage} first)")
    return json.loads(path.read_text())


EXTERNAL_MARK = " (not trained here)"  # after a published checkpoint's name in the tables


def _evaluate_command(run: Outputs) -> str:
    if run.model.startswith("external/"):
        return f"evaluate {run.model.removeprefix('external/')} --weights FILE (report.external)"
    return f"evaluate {run.model}" + ("" if run.seed is None else f" --seed {run.seed}")


def _train_command(run: Outputs) -> str:
    return f"train {run.model} --seed {run.seed}"


def _published(method: str, test_set: str, scale: int) -> tuple[tuple[float, float], str] | None:
    """The published (Y-PSNR, Y-SSIM) of ``method`` on ``test_set`` at ``scale`` and their source, or None."""
    from srbench.models import model_spec

    if method == "bicubic":
        numbers, source = BICUBIC.get((test_set, scale)), BICUBIC_SOURCE
    else:
        spec = model_spec(method)
        numbers, source = spec.published.get((test_set, scale)), spec.published_source
    return None if numbers is None else (numbers, source)


def _evaluated(run: Outputs) -> dict:
    return _read_json(run.results / "metrics.json", _evaluate_command(run))


def _training_summary(run: Outputs) -> dict:
    """metrics/train/seedN/MODEL.json, checked for its cost keys."""
    summary = _read_json(run.training_summary, _train_command(run))
    if missing := [key for key in ("n_parameters", *COST_KEYS) if key not in summary]:
        raise SrbenchError(f"{run.training_summary}: no {', '.join(missing)} (a summary from an older srbench: {_train_command(run)} again)")
    return summary


def _card(run: Outputs) -> dict:
    card = _read_json(run.card, _train_command(run))
    if missing := [key for key in CARD_KEYS if key not in card]:
        raise SrbenchError(f"{run.card}: no {', '.join(missing)} (a model card from an older srbench: train again)")
    return card


def _cost(summaries: list[dict]) -> dict[str, float]:
    """A model's cost averaged over its seeds' training summaries: the keys every seed has
    (:data:`COST_KEYS`, and on CUDA :data:`CUDA_COST_KEYS`)."""
    from srbench.stats import mean_over_seeds  # numpy: not for `srbench --help`

    keys = [key for key in (*COST_KEYS, *CUDA_COST_KEYS) if all(key in summary for summary in summaries)]
    return mean_over_seeds([{key: summary[key] for key in keys} for summary in summaries], ())


def _test_sets(path: Path, metrics: dict, expected: list[str] | None) -> list[str]:
    """The test sets of an evaluation's metrics file, checked: each a mapping of numbers with
    :data:`SET_KEYS`, and the same sets as ``expected`` (bicubic's)."""
    for key, values in metrics.items():
        if not isinstance(values, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values.values()):
            raise SrbenchError(f"{path}: {key} is not a test set of numbers (metrics from an older srbench: evaluate again)")
        if missing := [name for name in SET_KEYS if name not in values]:
            raise SrbenchError(f"{path}: {key} has no {', '.join(missing)} (metrics from an older srbench: evaluate again)")
    if expected is not None and list(metrics) != expected:
        raise SrbenchError(f"{path}: test sets {', '.join(metrics)}; bicubic has {', '.join(expected)} (evaluate again)")
    return list(metrics)


def _per_image(run: Outputs, set_name: str, expected: list[str] | None) -> dict[str, dict[str, float]]:
    """results/seedN/MODEL/SET/per_image.json, checked: every image with :data:`IMAGE_KEYS`, and the
    same images as ``expected`` (bicubic's, sorted)."""
    path = run.results / set_name / "per_image.json"
    per_image = _read_json(path, _evaluate_command(run))
    for name, values in per_image.items():
        if missing := [key for key in IMAGE_KEYS if key not in values]:
            raise SrbenchError(f"{path}: {name} has no {', '.join(missing)} (metrics from an older srbench: {_evaluate_command(run)} again)")
    if expected is not None and sorted(per_image) != expected:
        raise SrbenchError(f"{path}: images {sorted(per_image)}; bicubic's are {expected}")
    return per_image


def _set_title(set_name: str, meta: PreparedMeta) -> tuple[str, str]:
    """(heading, key of the published numbers) of a test set."""
    if set_name != "valid":
        return set_name, set_name
    heading = f"{meta.dataset} validation ({', '.join(meta.valid_images)})"
    return heading, "DIV2K" if meta.dataset == "DIV2K" else heading


def _devices(cards: dict[str, dict]) -> str:
    """Where the models trained, from their cards: 'cpu (CPU model), fp32: srcnn, vdsr; ...'."""
    groups: dict[str, list[str]] = {}
    for model, card in cards.items():
        groups.setdefault(f"{card['device']} ({card['device_name']}), {card['precision']}", []).append(model)
    if len(groups) == 1:
        return f"{next(iter(groups))} (every model)"
    return "; ".join(f"{where}: {', '.join(models)}" for where, models in groups.items())


def report(
    params_file: Path = PARAMS_OPTION,
    data: Path = typer.Option(Path("data/prepared"), help="Output of srbench prepare."),
    out: Path = typer.Option(Path("reports"), help="Folder for report.md and the PNG figures."),
) -> None:
    """Compare bicubic and the trained models: report.md, comparison_IMAGE.png, training_curves.png."""
    params = Params(params_file)
    models, known = params.get("report.models"), model_names()
    if not isinstance(models, list) or not models or models[0] != "bicubic" or not set(models[1:]) <= set(known):
        raise ParamError(f"{params.path}: report.models = {models!r}: a list starting with bicubic, then any of {', '.join(known)}")
    crop_size = params.integer("report.crop_size", minimum=16)  # room for SSIM's 11-px window
    crop_images = params.integer("report.crop_images", minimum=1)
    departures = params.section("report.departures")
    if not set(departures) <= set(known) or not all(isinstance(text, str) and text for text in departures.values()):
        raise ParamError(f"{params.path}: report.departures = {departures!r}: a mapping of model names to non-empty texts")
    external = params.section("report.external")
    for name, weights in external.items():
        if not isinstance(name, str):
            raise ParamError(f"{params.path}: report.external: checkpoint name {name!r}: a name, e.g. edsr-x2")
        check_external_name(name, f"{params.path}: report.external")
        if not isinstance(weights, str) or not weights:
            raise ParamError(f"{params.path}: report.external.{name} = {weights!r}: the checkpoint's file")
    seeds = read_seeds(params)
    from srbench.data import read_meta  # imported here: srbench.data loads torch, which `srbench --help` must not
    from srbench.models import model_spec
    from srbench.stats import mean_over_seeds

    specs = {model: model_spec(model) for model in models[1:]}
    starts_from = {model: spec.starts_from for model, spec in specs.items() if spec.starts_from}  # its cost includes that model's

    meta = read_meta(data)
    scale = meta.scale
    trained_models = models[1:]
    runs = {"bicubic": [Outputs("bicubic")]} | {model: [Outputs(model, seed) for seed in seeds] for model in trained_models}
    external_rows = {name + EXTERNAL_MARK: name for name in external}  # table row -> checkpoint name
    runs |= {row: [external_outputs(name)] for row, name in external_rows.items()}

    evaluated = {model: [_evaluated(run) for run in model_runs] for model, model_runs in runs.items()}  # model -> one per seed
    set_names = _test_sets(runs["bicubic"][0].results / "metrics.json", evaluated["bicubic"][0], None)
    for model in list(runs)[1:]:
        for run, metrics in zip(runs[model], evaluated[model]):
            _test_sets(run.results / "metrics.json", metrics, set_names)
    evaluation = {model: _read_json(model_runs[0].results / "evaluation.json", _evaluate_command(model_runs[0])) for model, model_runs in runs.items()}
    checkpoints = {name: evaluation[row].get("checkpoint") for row, name in external_rows.items()}
    if missing := [name for name, checkpoint in checkpoints.items() if not checkpoint]:
        raise SrbenchError(f"{external_outputs(missing[0]).results / 'evaluation.json'}: no checkpoint key (not an evaluation of a published checkpoint)")
    trained = {model: [_training_summary(run) for run in runs[model]] for model in trained_models}
    cards = {model: [_card(run) for run in runs[model]] for model in trained_models}
    if "lpips" not in evaluation["bicubic"]:
        raise SrbenchError("results/bicubic/evaluation.json: no lpips key (evaluate bicubic again)")
    per_image = {}  # test set -> model -> image -> metrics (averaged over the seeds)
    for set_name in set_names:
        bicubic = _per_image(runs["bicubic"][0], set_name, None)
        per_image[set_name] = {"bicubic": bicubic}
        for model in list(runs)[1:]:
            seeds_per_image = [_per_image(run, set_name, sorted(bicubic)) for run in runs[model]]
            per_image[set_name][model] = {name: mean_over_seeds([one[name] for one in seeds_per_image], ()) for name in sorted(bicubic)}
    histories = {model: [run.curves for run in runs[model]] for model in trained_models}
    for path in (path for paths in histories.values() for path in paths):
        if not path.is_file():
            raise SrbenchError(f"{path}: not found (run srbench train first)")
    ensure_writable(out.parent, *output_places())
    # matplotlib and srbench.metrics (torch): only the report needs them
    from srbench.metrics import COLOUR_CAST_LEVELS
    from srbench.reporting import (
        CAST_MARK,
        colour_cast_lines,
        compare_crops,
        comparison_figure,
        conventions,
        cost_table,
        error_limit,
        escape_html,
        markdown_table,
        paired_table,
        per_image_table,
        save_figure,
        seeds_line,
        training_curves_figure,
    )
    costs = {model: _cost(summaries) for model, summaries in trained.items()}
    first_cards = {model: model_cards[0] for model, model_cards in cards.items()}

    with workspace_lock("report"), mlflow_run("report", params.section("report")) as mlflow:
        sections, cited = [], set()
        for set_name in set_names:
            heading, published_key = _set_title(set_name, meta)
            rows = []
            for model in runs:
                found = None if model in external_rows else _published(model, published_key, scale)
                row = {"name": model, **mean_over_seeds([seed[set_name] for seed in evaluated[model]]), "published": found and found[0]}
                if model in external_rows:
                    row["n_parameters"] = checkpoints[external_rows[model]]["parameters"]
                if model in trained:
                    before = costs[starts_from[model]]["training_seconds"] if starts_from.get(model) in costs else 0.0
                    row |= {"n_parameters": trained[model][0]["n_parameters"], "training_seconds": before + costs[model]["training_seconds"]}
                if found:
                    cited.add(found[1])
                rows.append(row)
                logged_name = external_rows.get(model, model)
                mlflow.log_metrics({f"{set_name}_{logged_name}_{key}": row[key] for key in ("psnr_y", "ssim_y", "max_worst_channel_error")})
            section = (
                f"## {heading}, x{scale}\n\nMeans over the {evaluated['bicubic'][0][set_name]['n_images']} images:\n\n{markdown_table(rows)}"
                f"\n{seeds_line(seeds)}\n{conventions(scale, meta.lr_source, meta.bicubic_rounding)}"
            )
            if set_name == "valid":
                section += (
                    "\nPer image, Y-PSNR (dB) / Y-SSIM; in each row the best Y-PSNR and the best Y-SSIM in bold, "
                    f"and the model of best Y-PSNR with its gain over bicubic; {CAST_MARK}: a colour cast on that image "
                    f"(mean error above {COLOUR_CAST_LEVELS:g} grey levels in some RGB channel):\n\n" + per_image_table(per_image[set_name])
                )
            section += "\nIs a lead real on these images? Paired over the images:\n\n" + paired_table(per_image[set_name])
            sections.append(section + "\n" + "\n\n".join(colour_cast_lines(per_image[set_name])) + "\n")

        notes = [
            f"Scale x{scale}; training data: {meta.dataset}, {meta.train_patches} patches of {meta.patch_size} px "
            "(the LR images: each table's conventions line).",
            "Colour error: the mean of SR − HR in each RGB channel (R / G / B, grey levels of 0-255, `scale` pixels cropped), "
            "averaged over the images, then the largest of any one image: a colour cast or brightness shift, which PSNR hides; "
            f"{CAST_MARK}: above {COLOUR_CAST_LEVELS:g} levels.",
            f"LPIPS (AlexNet, lower is better): {evaluation['bicubic']['lpips']}.",
            "Keras accuracy: the study's Keras `accuracy` metric: fraction of pixels whose dominant colour channel matches HR; "
            "not a fidelity measure.",
            f"Trained on: {_devices(first_cards) if cards else '–'}; training time is the training loop's, validation excluded"
            + "".join(f", {model}'s with the {start} it starts from" for model, start in starts_from.items() if start in trained)
            + " (the cost table: the wall time and the rest).",
            f"Inference measured on: {', '.join(sorted({str(e['device']) for e in evaluation.values()}))}.",
            "Architectures and recipes: " + "; ".join(f"{model}: {spec.paper}" for model, spec in specs.items()) + ".",
        ]
        notes += [f"{model} content loss: {first_cards[model]['content_loss']}." for model in trained_models if "content_loss" in first_cards.get(model, {})]
        if cited:
            notes.append(f"Published numbers are the papers' ({'; '.join(sorted(cited))}), not measured here.")
        if external:
            notes.append(
                f"Rows marked{EXTERNAL_MARK}: published checkpoints, their architecture and scale detected from the "
                "weights (spandrel), evaluated here with this protocol: "
                + "; ".join(
                    f"{name}: {c['architecture']} x{c['scale']} ({', '.join(c['tags'])}), {c['file']} (sha256 {c['sha256'][:12]})"
                    for name, c in checkpoints.items()
                )
                + "."
            )
        text = "# srbench comparison\n\n" + "\n".join(sections) + "\n" + "".join(f"- {escape_html(note)}\n" for note in notes)
        if costs:
            text += "\n## Cost\n\n" + cost_table(costs, first_cards, starts_from)
        if departures:
            text += "\n## Where this profile departs from the papers\n\n" + "".join(f"- **{model}**: {escape_html(note)}\n" for model, note in departures.items())

        results = {model: model_runs[0].results / "valid" / "sr" for model, model_runs in runs.items()}
        shown = sorted(per_image["valid"]["bicubic"])[:crop_images]
        comparisons = [compare_crops(name, data / "valid", results, scale, crop_size) for name in shown]
        limit = error_limit(comparisons)
        text += (
            "\n## Crops\n\nFor each image: the whole HR image with the crop's box; the LR and HR crops; each model's crop "
            + ("" if len(seeds) == 1 else f"(seed {seeds[0]}) ")
            + "with "
            "**the crop's own** Y-PSNR / Y-SSIM under it, above its difference map |Y(SR) − Y(HR)| "
            f"(one colour scale, 0 to {limit:g} luma levels, for every panel).\n\n"
        )
        text += "".join(f"![{comparison.name}](comparison_{comparison.name}.png)\n\n" for comparison in comparisons)
        text += (
            "## Training curves\n\nValidation Y-PSNR and training loss against training time (minutes) and training images "
            "seen (steps x batch size, the batch of all processes together), bicubic dashed"
            + ("" if len(seeds) == 1 else f"; one line per seed ({len(seeds)}) in each model's colour")
            + "".join(
                f"; {model}'s curves are its {'adversarial ' if specs[model].adversarial else ''}phase only, from the trained {start}"
                for model, start in starts_from.items()
            )
            + ".\n\n![Training curves](training_curves.png)\n"
        )

        with staged_folder(out) as staging:  # the report appears whole or not at all
            write_text(staging / "report.md", text)
            for comparison in comparisons:
                save_figure(comparison_figure(comparison, scale, limit), staging / f"comparison_{comparison.name}.png")
            save_figure(training_curves_figure(histories, evaluated["bicubic"][0]["valid"]["psnr_y"]), staging / "training_curves.png")
        mlflow.log_artifacts(str(out))
        logger.info("report written to %s:\n%s", out / "report.md", "\n".join(sections))
