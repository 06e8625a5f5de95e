"""Shared fixtures: a tiny real data set made from the photographs inside scikit-image."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from srbench.data import prepare  # noqa: E402
from srbench.download import export_samples  # noqa: E402


@pytest.fixture(scope="session")
def raw_samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/raw made of scikit-image's photographs, centre-cropped to 64 px."""
    raw = tmp_path_factory.mktemp("data") / "raw"
    export_samples(raw, n_valid=2, seed=0, max_side=64)
    return raw


@pytest.fixture(scope="session")
def prepared_x2(raw_samples: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/prepared at x2 with 32-px patches."""
    out = tmp_path_factory.mktemp("prepared") / "prepared"
    prepare(raw_samples, out, scale=2, patch_size=32, stride=16, workers=1)
    return out
