"""`srbench download`: the raw HR images (and official LR images for DIV2K) into data/raw."""

from pathlib import Path

import typer

from pipeline.common import PARAMS_OPTION, Params, logger, mlflow_run
from srbench import download as library
from srbench.images import list_images

SOURCES = ("samples", "div2k", "folder")


def download(
    params_file: Path = PARAMS_OPTION,
    out: Path = typer.Option(Path("data/raw"), help="Where the train/ and valid/ folders go."),
) -> None:
    """Fetch the data set named by data.source: samples (embedded), div2k or folder."""
    params = Params(params_file)
    source = params.choice("data.source", SOURCES)
    n_valid = params.integer("data.n_valid", minimum=1)
    seed = params.integer("data.seed")
    max_side = params.optional_integer("data.max_side", minimum=16)
    if source == "folder":
        folder = params.existing_dir("data.folder")
    if source == "div2k":
        scale = params.choice("prepare.scale", (2, 3, 4))
        mirror = params.string("data.div2k_mirror")
        cache_dir = Path(params.string("data.cache_dir")).expanduser()
        limit = params.optional_integer("data.div2k_limit", minimum=1)

    with mlflow_run("download", params.section("data")) as mlflow:
        if source == "samples":
            library.export_samples(out, n_valid=n_valid, seed=seed, max_side=max_side)
        elif source == "folder":
            library.import_folder(folder, out, n_valid=n_valid, seed=seed, max_side=max_side)
        else:
            library.download_div2k(out, scale=scale, cache_dir=cache_dir, mirror=mirror, limit=limit)
        counts = {split: len(list_images(out / split / "HR")) for split in ("train", "valid")}
        mlflow.log_metrics({f"{split}_images": count for split, count in counts.items()})
        logger.info("data/raw: %d training and %d validation images from %s", counts["train"], counts["valid"], source)
