"""`srbench profile NAME`: make params.yaml one of the profiles in profiles/ (quick or paper)."""

from pathlib import Path

import typer

from pipeline.params import PARAMS_OPTION, ParamError, Params
from pipeline.process import logger
from srbench.files import write_text

PROFILES = Path("profiles")


def profile(
    name: str = typer.Argument(..., help="A profile in profiles/: quick (embedded data, CPU, minutes) or paper (DIV2K, GPU, hours)."),
    params_file: Path = PARAMS_OPTION,
    force: bool = typer.Option(False, "--force", help="Overwrite a params file whose values match no profile (local edits)."),
) -> None:
    """Switch the pipeline's parameters to a profile; `dvc repro` then re-runs what changed."""
    available = sorted(path.stem for path in PROFILES.glob("*.yaml"))
    source = PROFILES / f"{name}.yaml"
    if not source.is_file():
        raise ParamError(f"{source}: no such profile (available: {', '.join(available) or 'none'})")
    Params(source)  # a readable mapping, or a one-line error
    if params_file.is_file() and not force:
        current = Params(params_file).data  # values, not text: `dvc exp run -S` rewrites the formatting
        if all(current != Params(PROFILES / f"{other}.yaml").data for other in available):
            raise ParamError(f"{params_file}: has edits that match no profile in {PROFILES}/; keep them elsewhere or pass --force")
    write_text(params_file, source.read_text())
    logger.info("%s is now the %s profile (%s); run `dvc repro`", params_file, name, source)
