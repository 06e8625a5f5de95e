"""How far does the training seed move each model's result? Trains and evaluates models for several
seeds with the real `srbench train --seed` and `srbench evaluate --seed` commands, then prints one
row per model: Y-PSNR for each seed, the spread (max - min) and the mean margin over bicubic.
(`dvc exp run -S 'train.seeds=[0,1,2]'` gives the pipeline's own report over seeds; this script
also scores each seed on a folder of photographs.)

    python benchmarks/seed_spread.py [--params params.yaml] [--seeds 0 1 2] [--models srcnn vdsr ...]
                                     [--data data/prepared] [--hr-dir data/unseen] [--out benchmarks/results/seed_spread]

Each seed runs in its own scratch folder (params.yaml with `train.seeds` = [SEED], `data/prepared`
linked in), so the workspace's models and metrics are left alone. With `--hr-dir`, every model
is also evaluated on that folder of photographs (degraded like the training data). Writes
`seed_spread.json` and `seed_spread.md` into `--out`.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline.layout import Outputs

CANONICAL = ["srcnn", "vdsr", "srresnet", "srgan"]


def srbench(*args: str, cwd: Path) -> None:
    command = [str(Path(sys.executable).parent / "srbench"), *args]
    subprocess.run(command, cwd=cwd, check=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})


def psnr_y(metrics_file: Path, test_set: str) -> float:
    return json.loads(metrics_file.read_text())[test_set]["psnr_y"]


def run_seed(seed: int, params: dict, models: list[str], data: Path, hr_dir: Path | None, scratch: Path) -> dict[str, dict[str, float]]:
    """Y-PSNR per model (and bicubic) on ``valid`` (and on ``hr_dir``) for one seed."""
    work = (scratch / f"seed{seed}").resolve()  # the srbench commands run inside it
    shutil.rmtree(work, ignore_errors=True)
    (work / "data").mkdir(parents=True)
    (work / "data" / "prepared").symlink_to(data.resolve())
    params["train"]["seeds"] = [seed]
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    results: dict[str, dict[str, float]] = {}
    for model in ["bicubic", *models]:
        files = Outputs(model, None if model == "bicubic" else seed)
        if model == "srgan":
            srbench("train", "srgan", "--init", str(Outputs("srresnet", seed).weights), cwd=work)
        elif model != "bicubic":
            srbench("train", model, cwd=work)
        srbench("evaluate", model, cwd=work)
        results[model] = {"valid": psnr_y(work / files.headline, "valid")}
        if hr_dir is not None:
            out = work / "unseen" / model
            srbench("evaluate", model, "--hr-dir", str(hr_dir.resolve()), "--out", str(out), cwd=work)
            results[model]["unseen"] = psnr_y(out / "metrics.json", hr_dir.resolve().name)
    return results


def table(runs: dict[int, dict[str, dict[str, float]]], test_set: str) -> str:
    seeds = list(runs)
    lines = [
        f"| Model | {' | '.join(f'seed {s}' for s in seeds)} | Spread (dB) | Mean vs bicubic (dB) |",
        "|---|" + "---|" * (len(seeds) + 2),
    ]
    for model in runs[seeds[0]]:
        values = [runs[s][model][test_set] for s in seeds]
        margins = [runs[s][model][test_set] - runs[s]["bicubic"][test_set] for s in seeds]
        lines.append(
            f"| {model} | {' | '.join(f'{v:.2f}' for v in values)} | {max(values) - min(values):.2f} | {statistics.mean(margins):+.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=CANONICAL)
    parser.add_argument("--data", type=Path, default=Path("data/prepared"))
    parser.add_argument("--hr-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/seed_spread"))
    args = parser.parse_args()
    if "srgan" in args.models and "srresnet" not in args.models:
        parser.error("srgan starts from srresnet: list srresnet before it")
    params = yaml.safe_load(args.params.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    runs = {seed: run_seed(seed, params, args.models, args.data, args.hr_dir, args.out / "scratch") for seed in args.seeds}
    text = f"Validation ({args.data}/valid), Y-PSNR (dB):\n\n{table(runs, 'valid')}"
    if args.hr_dir is not None:
        text += f"\nUnseen photographs ({args.hr_dir}), Y-PSNR (dB):\n\n{table(runs, 'unseen')}"
    (args.out / "seed_spread.json").write_text(json.dumps(runs, indent=2) + "\n")
    (args.out / "seed_spread.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
