"""`srbench profile NAME`: make params.yaml one of the profiles in profiles/ (quick or paper)."""

from pathlib import Path
from typing import Any

import typer

from pipeline.params import PARAMS_OPTION, ParamError, Params
from pipeline.process import logger
from srbench.files import write_text

PROFILES = Path("profiles")
SHOWN = 3  # differing keys named in the refusal


ABSENT = "(absent)"


def differences(values: Any, profile: Any, key: str = "") -> dict[str, tuple[Any, Any]]:
    """The dotted keys whose values differ between two params mappings, with both values (a key
    only one of them has: :data:`ABSENT` in the other)."""
    if not (isinstance(values, dict) and isinstance(profile, dict)):
        return {} if values == profile else {key: (values, profile)}
    found: dict[str, tuple[Any, Any]] = {}
    for name in dict.fromkeys([*values, *profile]):
        found |= differences(values.get(name, ABSENT), profile.get(name, ABSENT), f"{key}.{name}" if key else str(name))
    return found


def read_profiles() -> dict[str, dict[str, Any]]:
    """The values of every profile in this workspace's profiles/, by name (none without the folder)."""
    return {path.stem: Params(path).data for path in sorted(PROFILES.glob("*.yaml"))}


def matching_profile(values: dict[str, Any]) -> str | None:
    """The profile whose values ``values`` are (the params of a training, say), or None: edited
    values (`dvc exp run -S ...`), or no profile here."""
    return next((name for name, profile in read_profiles().items() if not differences(values, profile)), None)


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
