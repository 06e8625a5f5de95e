"""Running the DVC pipeline in a temporary copy of the repository (for the end-to-end tests)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
COPIED = ["dvc.yaml", "params.yaml", "profiles", ".dvc/config", ".dvc/plots", ".dvcignore", ".gitignore", "pipeline", "src"]
MODELS = ["srcnn", "srcnn-seed", "vdsr", "vdsr-seed", "srresnet", "srgan", "srgan-seed"]


def stages(seeds: tuple[int, ...] = (0,)) -> set[str]:
    """The pipeline's stages with ``train.seeds`` = ``seeds``: dvc.yaml's matrix names them
    train@MODEL-SEED, train-srgan@SEED, evaluate@MODEL-SEED."""
    per_seed = {
        *(f"train@{m}-{seed}" for m in MODELS if m != "srgan" for seed in seeds),
        *(f"train-srgan@{seed}" for seed in seeds),
        *(f"evaluate@{m}-{seed}" for m in MODELS for seed in seeds),
    }
    return {"download", "prepare", "evaluate-bicubic", "report", *per_seed}


STAGES = stages()


def merge(base: dict, override: dict) -> dict:
    """``base`` updated in place with ``override``, nested sections merged (``arch`` replaced
    whole), new ones added."""
    for key, value in override.items():
        base[key] = merge(base[key], value) if key in base and isinstance(value, dict) and key != "arch" else value
    return base


def dvc(*args: str, cwd: Path) -> str:
    """``dvc ARGS`` in ``cwd`` with the venv's console scripts (``srbench``) on PATH; its output."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def copy_repo(root: Path, params: dict | None = None) -> Path:
    """The pipeline's files in a fresh git repository at ``root``, with ``params`` as params.yaml
    (default: the repository's params.yaml as it is)."""
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, root / name)
    if params is not None:
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "tiny profile"], cwd=root, check=True)
    return root


def srbench(*args: str, cwd: Path) -> None:
    """``srbench ARGS`` in ``cwd``, which must succeed."""
    result = subprocess.run([str(Path(sys.executable).parent / "srbench"), *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"srbench {' '.join(args)} failed:\n{result.stderr}"


def ran_stages(output: str) -> set[str]:
    """The stages a ``dvc repro`` output says it ran."""
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}
