"""Training throughput of each model of a profile: is the GPU (or CPU) fed, and how busy is it?

    python benchmarks/train_throughput.py [--params params.yaml] [--models srcnn vdsr ...]
                                          [--data data/prepared] [--seconds 6] [--gpus 1 8]
                                          [--set train.channels_last=false ...]
                                          [--out benchmarks/results/train_throughput]

For each model, with the profile's recipe (batch, crop, precision, memory format, compile):
steps/s when every step cuts its batch with the real input pipeline (srbench.sampling, as
``srbench train`` does), steps/s when the same batch already on the device is reused, and their
ratio (1.0: the input pipeline costs nothing); FLOPs per training step (torch.utils.flop_counter,
forward and backward, both networks of a GAN) and the TFLOP/s achieved, beside the dense matmul
peak measured in the same run; and the hours the profile's steps would take at the real speed.
``--gpus N``: the step rate at 1/N of the batch on this device, i.e. one rank's share under
``train.nproc = N`` (gradient all-reduce not included), and the hours it projects.

Without ``--data``, training patches are prepared in a scratch folder from the photographs inside
scikit-image at the profile's scale and patch size (the pixels differ from DIV2K's, the work does not).
Writes ``train_throughput.json`` and ``train_throughput.md`` into ``--out``.
"""

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from pipeline.params import Params
from pipeline.recipe import Recipe, fresh_training, read_recipe
from srbench.data import prepare
from srbench.download.local import export_samples
from srbench.inference import describe_machine, pick_device
from srbench.names import model_names
from srbench.sampling import PatchSampler
from srbench.train import Objective

ROUNDS = 6  # rounds of each pipeline, interleaved
MIN_STEPS = 10  # per round


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, seconds: float = 2.0) -> float:
    """Dense matmul TFLOP/s on ``device`` in ``dtype`` (square matrices, best of the timed rounds)."""
    n = 8192 if device.type == "cuda" else 2048
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    best, deadline = 0.0, time.perf_counter() + seconds
    a @ b
    while time.perf_counter() < deadline:
        synchronize(device)
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        synchronize(device)
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - start) / 1e12)
    return best


def recipe(params: Params, model: str, data: Path, device: torch.device, **overrides: Any) -> tuple[Recipe, Objective, PatchSampler]:
    """``model``'s recipe for the profile's steps (with ``overrides``), objective (srgan: from a
    fresh SRResNet) and sampler on ``device``."""
    settings, _, objective, sampler = fresh_training(params, model, data, read_recipe(params, model).steps, overrides, device)
    return settings, objective, sampler


def steps_per_second(
    objective: Objective, batches: Callable[[int], tuple[torch.Tensor, torch.Tensor]], device: torch.device, seconds: float, first_step: int
) -> tuple[float, int]:
    """Training steps per second over about ``seconds`` (at least MIN_STEPS steps) from
    ``first_step`` on, as fit runs them (losses summed on the device, read once at the end);
    and the next step, where the following round goes on (no batch is served twice)."""
    running: dict[str, torch.Tensor] = {}
    synchronize(device)
    start, step = time.perf_counter(), first_step
    while True:
        lr, hr = batches(step)
        for key, value in objective.step(lr, hr).items():
            running[key] = running[key] + value if key in running else value
        step += 1
        if step - first_step >= MIN_STEPS and time.perf_counter() - start > seconds:
            break
    float(torch.stack(list(running.values())).sum())  # the log step's one synchronisation
    return (step - first_step) / (time.perf_counter() - start), step


def flops_per_step(params: Params, model: str, data: Path, device: torch.device) -> int:
    """FLOPs of one training step (forward and backward of every network), counted eagerly."""
    _, objective, sampler = recipe(params, model, data, device, compile=False)
    lr, hr = sampler.batch(1)
    with FlopCounterMode(display=False) as counter:
        objective.step(lr, hr)
    return counter.get_total_flops()


def measure(params: Params, model: str, data: Path, device: torch.device, seconds: float, warmup: int, gpus: list[int]) -> dict:
    settings, objective, sampler = recipe(params, model, data, device)
    for step in range(1, warmup + 1):  # compilation, autotuning, allocator warm-up
        objective.step(*sampler.batch(step))
    fixed_batch = sampler.batch(0)
    real, fixed, step = [], [], warmup + 1
    for _ in range(ROUNDS):  # interleaved short rounds, best of each: a busy neighbour slows a round, never speeds it
        rate, step = steps_per_second(objective, sampler.batch, device, seconds / 2 / ROUNDS, step)
        real.append(rate)
        fixed.append(steps_per_second(objective, lambda _: fixed_batch, device, seconds / 2 / ROUNDS, step)[0])
    row = {
        "model": model,
        "batch_size": settings.batch_size,
        "patch_size": settings.patch_size,
        "real_steps_per_s": max(real),
        "fixed_steps_per_s": max(fixed),
        "ratio": max(real) / max(fixed),
        "flops_per_step": flops_per_step(params, model, data, device),
        "steps": settings.steps,
    }
    row["tflops"] = row["flops_per_step"] * row["real_steps_per_s"] / 1e12
    row["hours"] = {1: settings.steps / row["real_steps_per_s"] / 3600}
    for n in gpus:
        if n > 1 and settings.batch_size % n == 0:
            _, shard_objective, shard_sampler = recipe(params, model, data, device, batch_size=settings.batch_size // n)
            for step in range(1, warmup + 1):
                shard_objective.step(*shard_sampler.batch(step))
            rates, step = [], warmup + 1
            for _ in range(ROUNDS):
                rate, step = steps_per_second(shard_objective, shard_sampler.batch, device, seconds / 2 / ROUNDS, step)
                rates.append(rate)
            row["hours"][n] = settings.steps / max(rates) / 3600
    return row


def scratch_data(params: Params, folder: Path) -> Path:
    """Training patches from scikit-image's photographs at the profile's scale and patch size."""
    scale, patch_size = params.integer("prepare.scale"), params.integer("prepare.patch_size")
    export_samples(folder / "raw", n_valid=2, seed=0, max_side=max(384, 2 * patch_size))
    prepare(folder / "raw", folder / "prepared", scale, patch_size, stride=patch_size // 2, workers=2, dataset="samples")
    return folder / "prepared"


def overridden(params_file: Path, overrides: list[str], folder: Path) -> Params:
    """The params file with ``KEY=VALUE`` overrides (YAML values) applied, as a scratch copy."""
    data = yaml.safe_load(params_file.read_text())
    for override in overrides:
        key, _, value = override.partition("=")
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = yaml.safe_load(value)
    path = folder / params_file.name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return Params(path)


def markdown(result: dict) -> str:
    gpus = sorted({int(n) for row in result["rows"] for n in row["hours"]})
    settings = result["settings"]
    lines = [
        f"Device: {result['machine']['gpu'] or result['machine']['cpu']} ({result['device']}, {result['machine']['torch_threads']} threads, "
        f"torch {result['machine']['torch']}); matmul peak {result['matmul_tflops']:.2f} TFLOP/s ({result['matmul_dtype']}).",
        f"Profile {result['params']}: precision {settings['precision']}, channels_last {settings['channels_last']}, compile {settings['compile']}.",
        f"Command: `{result['command']}`",
        "",
        "| model | batch x crop | steps/s, real pipeline | steps/s, fixed batch | ratio | GFLOP/step | TFLOP/s | % of matmul peak | steps | "
        + " | ".join(f"hours, {n} GPU{'s' if n > 1 else ''}" if result["device"] != "cpu" else f"hours, {n} proc" for n in gpus)
        + " |",
        "|---|---|---|---|---|---|---|---|---|" + "---|" * len(gpus),
    ]
    for row in result["rows"]:
        hours = " | ".join(f"{row['hours'][n]:.3g}" if n in row["hours"] else "-" for n in gpus)
        lines.append(
            f"| {row['model']} | {row['batch_size']} x {row['patch_size']} | {row['real_steps_per_s']:.2f} | {row['fixed_steps_per_s']:.2f} "
            f"| {row['ratio']:.2f} | {row['flops_per_step'] / 1e9:.1f} | {row['tflops']:.3f} | {100 * row['tflops'] / result['matmul_tflops']:.1f} "
            f"| {row['steps']} | {hours} |"
        )
    total = {n: sum(row["hours"].get(n, row["hours"][1]) for row in result["rows"]) for n in gpus}
    lines.append("")
    lines.append("Profile total: " + ", ".join(f"{total[n]:.3g} h at {n}" for n in gpus) + " (models run one after another; "
                 "N > 1: one rank's step at 1/N of the batch, all-reduce not included).")
    return "\n".join(lines) + "\n"


def main() -> None:
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--models", nargs="+", default=list(model_names()))
    parser.add_argument("--data", type=Path, default=None, help="A prepared folder at the profile's scale (default: made from the samples).")
    parser.add_argument("--seconds", type=float, default=6.0, help="Measured time per model and pipeline.")
    parser.add_argument("--warmup", type=int, default=5, help="Steps before measuring (compilation included).")
    parser.add_argument("--gpus", type=int, nargs="+", default=[1])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/train_throughput"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        params = overridden(args.params, args.overrides, Path(scratch))
        device = pick_device(params.string("train.device"))
        data = args.data or scratch_data(params, Path(scratch))
        precision = params.string("train.precision")
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32) if device.type == "cuda" else torch.float32
        result: dict[str, Any] = {
            "command": " ".join(["python", *sys.argv]),
            "params": str(args.params),
            "overrides": args.overrides,
            "device": str(device),
            "machine": describe_machine(device),
            "settings": {key: params.get(f"train.{key}") for key in ("precision", "channels_last", "compile")},
            "matmul_dtype": str(dtype).removeprefix("torch."),
            "matmul_tflops": matmul_peak(device, dtype),
            "rows": [],
        }
        for model in args.models:
            row = measure(params, model, data, device, args.seconds, args.warmup, args.gpus)
            result["rows"].append(row)
            print(f"{model}: {row['real_steps_per_s']:.2f} / {row['fixed_steps_per_s']:.2f} steps/s (ratio {row['ratio']:.2f}), "
                  f"{row['tflops']:.3f} TFLOP/s, {row['hours'][1]:.3g} h", flush=True)
    result["ratio_min"] = min(row["ratio"] for row in result["rows"])
    result["ratio_median"] = statistics.median(row["ratio"] for row in result["rows"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (args.out / "train_throughput.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
