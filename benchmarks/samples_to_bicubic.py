"""How many training samples does each model need before it beats bicubic on the validation images?

    python benchmarks/samples_to_bicubic.py [--params params.yaml] [--models srcnn vdsr srresnet]
                                            [--steps 20000] [--validate-every 500] [--minutes 20]
                                            [--data data/prepared] [--device auto] [--out benchmarks/results/samples_to_bicubic]

Trains each model (not the GANs) with its recipe from the params file stretched to ``--steps``
(its schedule too, as ``train.budget`` would), validating every ``--validate-every`` steps, until its validation
Y-PSNR exceeds bicubic's, the steps run out or ``--minutes`` of training pass. Prints, per model,
the training samples (steps × batch) and training time at the first validation above bicubic, or
the best Y-PSNR reached when it never got there. Writes the curves and the table into ``--out``.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from pipeline.params import Params
from pipeline.recipe import fresh_training
from srbench.data import load_pairs, read_meta
from srbench.inference import bicubic_validation_psnr, describe_machine, pick_device
from srbench.models import model_specs
from srbench.train import Schedule, fit


class TimeUp(Exception):
    """The model crossed bicubic or its time ran out."""


def run(params: Params, model: str, steps: int, validate_every: int, minutes: float, data: Path, device: torch.device, bicubic: float) -> dict:
    recipe, _, objective, sampler = fresh_training(params, model, data, steps, {}, device)
    curve: list[dict] = []
    started = time.perf_counter()

    def watch(step: int, metrics: dict[str, float]) -> None:
        if "val_psnr_y" in metrics:
            curve.append({"step": step, "samples": step * recipe.batch_size, "psnr_y": metrics["val_psnr_y"],
                          "minutes": (time.perf_counter() - started) / 60})
            if metrics["val_psnr_y"] > bicubic or curve[-1]["minutes"] > minutes:
                raise TimeUp

    schedule = Schedule(steps=steps, log_every=validate_every, validate_every=validate_every, checkpoint_every=steps)
    with tempfile.TemporaryDirectory() as scratch:
        try:
            fit(objective, sampler, schedule, device, load_pairs(data / "valid"), Path(scratch) / "ckpt.pt", on_metrics=watch)
        except TimeUp:
            pass
    crossed = next((point for point in curve if point["psnr_y"] > bicubic), None)
    best = max(curve, key=lambda point: point["psnr_y"])
    return {"model": model, "batch_size": recipe.batch_size, "patch_size": recipe.patch_size, "crossed": crossed, "best": best, "curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--models", nargs="+", default=["srcnn", "vdsr", "srresnet"], choices=[name for name, spec in model_specs().items() if not spec.adversarial])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--validate-every", type=int, default=500)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--data", type=Path, default=Path("data/prepared"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/samples_to_bicubic"))
    args = parser.parse_args()
    device = pick_device(args.device)
    meta = read_meta(args.data)
    bicubic = bicubic_validation_psnr(args.data)
    params = Params(args.params)
    results = [run(params, model, args.steps, args.validate_every, args.minutes, args.data, device, bicubic) for model in args.models]
    lines = [
        f"Bicubic: {bicubic:.2f} dB Y-PSNR on {args.data}/valid (x{meta.scale}); {describe_machine(device)}",
        "",
        "| Model | Batch × crop | Samples to cross bicubic | Wall time (validations included) | Best Y-PSNR (dB) at samples |",
        "|---|---|---|---|---|",
    ]
    for result in results:
        crossed, best = result["crossed"], result["best"]
        when = f"{crossed['samples']:,}" if crossed else f"not within {result['curve'][-1]['samples']:,}"
        minutes = f"{(crossed or result['curve'][-1])['minutes']:.1f} min"
        lines.append(f"| {result['model']} | {result['batch_size']} × {result['patch_size']} | {when} | {minutes} | {best['psnr_y']:.2f} at {best['samples']:,} |")
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "samples_to_bicubic.json").write_text(json.dumps({"bicubic_psnr_y": bicubic, "results": results}, indent=2) + "\n")
    (args.out / "samples_to_bicubic.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
