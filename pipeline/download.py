"""`srbench download`: the raw HR images (and official LR images for DIV2K and the benchmark
sets) into data/raw, plus data/raw/dataset.json naming the data.

Everything is built in a temporary folder next to data/raw and swapped in only when all of it
succeeded: a failed run leaves the previous data/raw as it was."""

from pathlib import Path

import typer

from pipeline.outputs import ensure_writable, output_folder, write_json
from pipeline.params import PARAMS_OPTION, ParamError, Params
from pipeline.process import data_lock, logger, workspace_lock
from pipeline.tracking import mlflow_run, output_places
from srbench.files import staged_folder
from srbench.names import BENCHMARK_SETS, SCALES

SOURCES = ("samples", "div2k", "folder")
DATASET_NAMES = {"samples": "sample photographs", "div2k": "DIV2K"}


def download(
    params_file: Path = PARAMS_OPTION,
    out: Path = typer.Option(Path("data/raw"), help="Where the train/, valid/ and benchmark/ folders go."),
) -> None:
    """Fetch the data set named by data.source (samples, div2k or folder) and data.benchmark_sets."""
    params = Params(params_file)
    source = params.choice("data.source", SOURCES)
    n_valid = params.integer("data.n_valid", minimum=1)
    seed = params.integer("data.seed", minimum=0, maximum=2**32 - 1)
    max_side = params.optional_integer("data.max_side", minimum=16)
    valid_names = params.get("data.valid_images")
    if valid_names is not None and (not isinstance(valid_names, list) or not valid_names or not all(isinstance(n, str) for n in valid_names)):
        raise ParamError(f"{params.path}: data.valid_images = {valid_names!r}: null or a list of image names")
    benchmark_sets = params.get("data.benchmark_sets")
    if not isinstance(benchmark_sets, list) or not set(benchmark_sets) <= set(BENCHMARK_SETS):
        raise ParamError(
            f"{params.path}: data.benchmark_sets = {benchmark_sets!r}: a list of any of {', '.join(BENCHMARK_SETS)}"
        )
    from srbench.download.catalogue import BENCHMARK_ARCHIVES, DIV2K_ARCHIVES, download_benchmark, download_div2k, with_checksums
    from srbench.download.local import SAMPLE_IMAGES, export_samples, import_folder  # numpy, Pillow, scikit-image: after the cheap checks
    from srbench.download.transfer import read_checksums
    from srbench.images import list_images

    checksums = {}
    if params.get("data.checksums") is not None:
        checksums = read_checksums(params.existing_file("data.checksums"))
    if source == "folder":
        folder = params.existing_dir("data.folder")
    if valid_names is not None and source == "div2k":
        raise ParamError(f"{params.path}: data.valid_images = {valid_names!r}: only for the samples and folder sources (DIV2K has its own split)")
    if valid_names is not None:
        available = set(SAMPLE_IMAGES) if source == "samples" else {path.stem for path in list_images(folder)}
        unknown = sorted(set(valid_names) - available)
        if unknown:
            raise ParamError(f"{params.path}: data.valid_images: {unknown[0]!r} is not among the images ({', '.join(sorted(available))})")
    if source == "div2k" or benchmark_sets:
        scale = params.choice("prepare.scale", SCALES)
        cache_dir = Path(params.string("data.cache_dir")).expanduser()
    if source == "div2k":
        div2k_mirror = params.string("data.div2k_mirror")
        limit = params.optional_integer("data.div2k_limit", minimum=1)
    if benchmark_sets:
        benchmark_mirror = params.string("data.benchmark_mirror")

    out = output_folder("--out", out, Path("data/raw"), "dataset.json")
    ensure_writable(out.parent, *([cache_dir] if source == "div2k" or benchmark_sets else []), *output_places())
    with workspace_lock("download"), data_lock(out, "srbench download"), mlflow_run("download", params.section("data")) as mlflow, staged_folder(out) as stage:
        if source == "samples":
            export_samples(stage, n_valid=n_valid, seed=seed, max_side=max_side, valid_names=valid_names)
        elif source == "folder":
            import_folder(folder, stage, n_valid=n_valid, seed=seed, max_side=max_side, valid_names=valid_names)
        else:
            archives = with_checksums(DIV2K_ARCHIVES, checksums)
            download_div2k(stage, scale=scale, cache_dir=cache_dir, mirror=div2k_mirror, archives=archives, limit=limit)
        if benchmark_sets:
            archives = with_checksums(BENCHMARK_ARCHIVES, checksums)
            download_benchmark(stage / "benchmark", benchmark_sets, scale, cache_dir, benchmark_mirror, archives)
        write_json(stage / "dataset.json", {"name": DATASET_NAMES.get(source) or str(folder), "source": source})
        counts = {split: len(list_images(stage / split / "HR")) for split in ("train", "valid")}
        counts |= {name: len(list_images(stage / "benchmark" / name / "HR")) for name in benchmark_sets}
        mlflow.log_metrics({f"{name}_images": count for name, count in counts.items()})
        logger.info("%s from %s: %s", out, source, ", ".join(f"{count} {name}" for name, count in counts.items()))
