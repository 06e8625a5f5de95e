"""Where a stage writes: JSON written atomically, output folders checked writable before any long
work, and the one rule for a folder a command replaces (never one it did not make, never one the
DVC pipeline uses: read from dvc.lock)."""

import json
import tempfile
from pathlib import Path
from typing import Any

import yaml

from pipeline.params import ParamError
from srbench.errors import SrbenchError
from srbench.files import write_text


def write_json(path: Path, values: Any) -> None:
    """Write JSON atomically."""
    write_text(path, json.dumps(values, indent=2) + "\n")


def dvc_paths(lock_text: str, kinds: tuple[str, ...] = ("outs",)) -> dict[str, str]:
    """The paths a ``dvc.lock`` text lists as ``kinds`` (``outs``, ``deps``) of its stages,
    relative to the repository, each with the first stage listing it; an unreadable text lists none."""
    try:
        stages = (yaml.load(lock_text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}).get("stages", {})  # libyaml: 7x faster, in every stage
    except (yaml.YAMLError, AttributeError):
        return {}
    paths: dict[str, str] = {}
    for stage, entries in stages.items() if isinstance(stages, dict) else []:
        for kind in kinds:
            for entry in entries.get(kind, []) if isinstance(entries, dict) else []:
                if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                    paths.setdefault(entry["path"].rstrip("/"), stage)
    return paths


def refuse_pipeline_paths(option: str, target: Path, lock: Path = Path("dvc.lock")) -> None:
    """Refuse ``target`` (a folder a command would replace) when it is, holds or lies inside a
    path the DVC pipeline of ``lock`` reads or writes: ``dvc repro`` would overwrite it, or it
    would change a stage's inputs, or replacing it would delete the pipeline's files."""
    if not lock.is_file():
        return
    here = target.resolve()
    for path, stage in dvc_paths(lock.read_text(encoding="utf-8"), ("deps", "outs")).items():
        owned = (lock.parent / path).resolve()
        if here == owned or here.is_relative_to(owned) or owned.is_relative_to(here):
            raise ParamError(f"{option} {target}: overlaps {path}, which the DVC pipeline's stage {stage} uses; choose a folder outside it")


def output_folder(option: str, target: Path, default: Path, signature: str, lock: Path = Path("dvc.lock")) -> Path:
    """The one rule for a folder a command replaces whole (``--out``): the command's own place in
    the pipeline (``default``), a folder it made before (holding its ``signature`` file), or a
    new or empty folder; never a folder of other files, never a path another stage of the DVC
    pipeline reads or writes (:func:`refuse_pipeline_paths`). A symbolic link is followed (the
    folder it points to is replaced, the link stays). Returns the folder to replace."""
    if target.exists() and not target.is_dir():
        raise ParamError(f"{option} {target}: not a folder")
    folder = target.resolve() if target.is_symlink() else target
    if folder.resolve() == default.resolve():
        return folder
    refuse_pipeline_paths(option, target, lock)
    if folder.is_dir() and any(folder.iterdir()) and not (folder / signature).is_file():
        raise ParamError(
            f"{option} {target}: a folder of other files (no {signature}: srbench did not make it); {option} is replaced whole, so choose a new or empty folder"
        )
    return folder


def ensure_writable(*folders: Path) -> None:
    """Check, before any long work, that a file can be created in each of ``folders`` (made if
    missing): a read-only place or a full disk is one line naming the folder, now rather than
    when the results are written."""
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder) as probe:
                probe.write(b"srbench")
                probe.flush()
        except OSError as error:
            raise OutputError(f"{folder}: cannot write here ({error.strerror or error})") from error


class OutputError(SrbenchError):
    """An output place that cannot be written: the system's refusal, exit status 1 as an ``OSError``'s."""

    exit_status = 1
