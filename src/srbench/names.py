"""The names and defaults the command line shows, importable without torch or numpy (so that
`srbench --help` and usage errors answer at once): the models, the scales, the benchmark sets,
the upscaling tile, the keys of a training's cost."""

import functools
import sys
from importlib.metadata import EntryPoint, entry_points

from srbench.errors import SrbenchError

#: The entry-point group in which a package declares its models (each a
#: :class:`srbench.models.spec.ModelSpec`): srbench's own in its pyproject.toml, and any other
#: installed package's the same way (docs/extending.md, "Add a model").
MODEL_GROUP = "srbench.models"


@functools.lru_cache(maxsize=4)
def _declared(path: tuple[str, ...]) -> tuple[EntryPoint, ...]:
    """Every ``srbench.models`` entry point on the import path ``path`` (a scan of the installed
    distributions, a few ms: done once per path, not for each of the dozen lookups that building
    or loading one model makes)."""
    return tuple(sorted(entry_points(group=MODEL_GROUP), key=lambda entry: entry.name))


def model_entry_points() -> dict[str, EntryPoint]:
    """The declared models by name (sorted), without importing them: srbench's own (the papers'
    networks and, with ``-seed``, the study's, Dias & Binkowski) and other packages'."""
    return {entry.name: entry for entry in _declared(tuple(sys.path))}


def model_entry_point(name: str) -> EntryPoint:
    """Model ``name``'s entry point; an unknown name, or one that two packages declare, is one line."""
    declared = [entry for entry in _declared(tuple(sys.path)) if entry.name == name]
    if not declared:
        raise SrbenchError(f"unknown model {name!r}: choose one of {', '.join(model_names())}")
    if len({entry.value for entry in declared}) > 1:
        owners = sorted(f"{getattr(entry.dist, 'name', '?')} ({entry.value})" for entry in declared)
        raise SrbenchError(f"model {name!r} is declared twice in the {MODEL_GROUP} entry points: by {' and by '.join(owners)}")
    return declared[0]


def model_names() -> tuple[str, ...]:
    """The names of the trainable models (:func:`model_entry_points`), as used on the command
    line, in params.yaml and in dvc.yaml."""
    return tuple(model_entry_points())

#: The scales every model supports (SRResNet's sub-pixel blocks: one x3 block, or x2 blocks).
SCALES = (2, 3, 4)

#: The benchmark sets of EDSR's benchmark.tar that `srbench download` can add beside the validation split.
BENCHMARK_SETS = ("Set5", "Set14", "B100", "Urban100")

#: LR pixels per tile side (before the margin) in `srbench upscale`: a 64-feature network at x4
#: keeps well under 2 GB.
TILE = 192

#: What a training cost, in its summary (metrics/train/seedN/MODEL.json): the training loop's and
#: the command's seconds, images seen, the loop's steps per second, the peak host memory (MiB);
#: on CUDA also the peak GPU memory (MiB) and the GPU-hours.
COST_KEYS = ("training_seconds", "wall_seconds", "images_seen", "steps_per_second", "peak_host_memory_mb")
CUDA_COST_KEYS = ("peak_gpu_memory_mb", "gpu_hours")
