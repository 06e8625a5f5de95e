"""Where the pipeline's stages write each model's files, per training seed, and which seeds
(``train.seeds``: dvc.yaml's ``train`` and ``evaluate`` stages fan out over model x seed):
``models/seed0/vdsr.pt``, ``results/seed0/vdsr/``, ... Bicubic has no seed:
``results/bicubic/``, ``metrics/eval/bicubic.json``; nor has a published checkpoint NAME:
``results/external/NAME/``, ``metrics/eval/external/NAME.json``."""

import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.params import ParamError, Params
from srbench.names import model_names


@dataclass(frozen=True)
class Outputs:
    """The files of ``model`` trained with ``seed`` (``seed`` None: bicubic, or a published
    checkpoint ``external/NAME``: neither was trained here)."""

    model: str
    seed: int | None = None

    def _under(self, folder: str, suffix: str = "") -> Path:
        seed_folder = "" if self.seed is None else f"seed{self.seed}/"
        return Path(f"{folder}/{seed_folder}{self.model}{suffix}")

    @property
    def weights(self) -> Path:
        return self._under("models", ".pt")

    @property
    def card(self) -> Path:
        """The model card: arch, device, precision, threads, versions."""
        return self._under("models", ".json")

    @property
    def checkpoint(self) -> Path:
        return self._under("checkpoints", ".pt")

    @property
    def training_summary(self) -> Path:
        return self._under("metrics/train", ".json")

    @property
    def curves(self) -> Path:
        """The training history: loss and validation metrics by step, seconds and images seen."""
        return self._under("plots/train", ".csv")

    @property
    def results(self) -> Path:
        """SR images, per-image metrics, evaluation.json and the full means (metrics.json)."""
        return self._under("results")

    @property
    def headline(self) -> Path:
        """Y-PSNR and Y-SSIM of each test set: what `dvc metrics show` lists."""
        return self._under("metrics/eval", ".json")


def read_seeds(params: Params) -> list[int]:
    """``train.seeds``: the seeds each model trains with, a non-empty list of distinct integers
    in [0, 2^32) (dvc.yaml fans the train and evaluate stages out over them)."""
    seeds = params.get("train.seeds")
    valid = isinstance(seeds, list) and seeds and all(isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**32 for seed in seeds)
    if not valid or len(set(seeds)) != len(seeds):
        raise ParamError(f"{params.path}: train.seeds = {seeds!r}: a list of distinct integers from 0 to 2^32 - 1, e.g. [0] or [0, 1, 2]")
    return seeds


EXTERNAL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a published checkpoint's name (results/external/NAME, MLflow metric names)


def external_outputs(name: str) -> Outputs:
    """Where the evaluation of the published checkpoint ``name`` goes: results/external/NAME,
    metrics/eval/external/NAME.json (``report.external`` lists them)."""
    return Outputs(f"external/{name}")


def check_external_name(name: str, where: str) -> None:
    """Refuse, naming ``where``, a checkpoint name that is not a plain file name or that is bicubic's or a model's."""
    if not EXTERNAL_NAME.fullmatch(name):
        raise ParamError(f"{where}: checkpoint name {name!r}: letters, digits and . _ - (a folder name under results/external)")
    if name == "bicubic" or name in model_names():
        raise ParamError(f"{where}: checkpoint name {name!r} is bicubic's or a srbench model's: choose another (e.g. {name}-published)")
