"""`srbench profile NAME`: make params.yaml one of the profiles in profiles/ (quick or paper)."""

from pathlib import Path

import typer

from pipeline.params import PARAMS_OPTION, PROFILES, ParamError, Params, differences, read_profiles
from pipeline.process import logger
from srbench.files import write_text

SHOWN = 3  # differing keys named in the refusal


def profile(
    name: str = typer.Argument(..., help="A profile in profiles/: quick (embedded data, CPU, minutes) or paper (DIV2K, GPU, hours)."),
    params_file: Path = PARAMS_OPTION,
    force: bool = typer.Option(False, "--force", help="Overwrite a params file whose values match no profile (local edits)."),
) -> None:
    """Switch the pipeline's parameters to a profile; `dvc repro` then re-runs what changed."""
    profiles = read_profiles()  # each a readable mapping, or a one-line error
    source = PROFILES / f"{name}.yaml"
    if name not in profiles:
        raise ParamError(f"{source}: no such profile (available: {', '.join(profiles) or 'none'})")
    if params_file.is_file() and not force:
        current = Params(params_file).data  # values, not text: `dvc exp run -S` rewrites the formatting
        differing = {other: differences(current, values) for other, values in profiles.items()}
        if all(differing.values()):
            nearest = min(differing, key=lambda other: len(differing[other]))
            keys = list(differing[nearest].items())
            named = "; ".join(f"{key} = {here!r} (profile: {there!r})" for key, (here, there) in keys[:SHOWN])
            named += f"; and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
            raise ParamError(
                f"{params_file}: has edits that match no profile in {PROFILES}/ (nearest, {nearest}: {named}); keep them elsewhere or pass --force"
            )
    write_text(params_file, source.read_text())
    logger.info("%s is now the %s profile (%s); run `dvc repro`", params_file, name, source)
