"""The GPU acceptance run: one script, one NVIDIA GPU, at most 8 minutes, for whoever gets one.

    python benchmarks/gpu_acceptance.py [--out benchmarks/results/gpu_acceptance]
    python benchmarks/gpu_acceptance.py --smoke        # the same code path on the CPU, tiny (CI)

It imports the library and the pipeline's recipe code directly (torch, numpy, pillow,
scikit-image, pyyaml and typer; no DVC, no MLflow) and runs, in order:

1. **CUDA checks**: the GPU branches the CPU tests cannot take give what the CPU gives. The patch
   store on the GPU, and on the host with pinned crops and the prefetch thread, cut the batches
   the CPU cuts; bf16 autocast follows fp32's first steps; a `torch.compile`d step follows the
   eager one; with two GPUs, two NCCL processes with synchronised batch norm take the step one
   process takes on the whole batch.
2. **Throughput of the paper profile** (`benchmarks/train_throughput.py`'s measurement): for every
   model, steps/s with the real input pipeline and with a fixed batch, their ratio, TFLOP/s
   against a matmul peak measured in the same run, and the hours the profile projects on 1 GPU
   and on 8 (each model on its own GPU, srgan after srresnet; or one after another with DDP).
3. **VDSR's whole paper recipe** (9,960 steps) on the quick photographs prepared at x4, and its
   validation Y-PSNR against bicubic's.
4. **`srbench check`'s verdict for every paper recipe** (300 steps each, VGG with random weights:
   the machine is offline).

It prints one table and writes `gpu_acceptance.json` (and `gpu_acceptance.md`) into ``--out``,
with each target and whether it was met: real / fixed >= 0.95 for every model, the paper profile
<= 8 h projected on one GPU and <= 1.5 h wall on eight. Exit 1 if a CUDA check fails.
"""

import argparse
import json
import math
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # train_throughput, beside this file
import train_throughput  # noqa: E402

from pipeline.params import Params  # noqa: E402
from pipeline.recipe import check_recipe, fresh_training, read_recipe  # noqa: E402
from srbench.inference import bicubic_validation_psnr, describe_machine  # noqa: E402
from srbench.models import build_model  # noqa: E402
from srbench.names import model_names  # noqa: E402
from srbench.sampling import PatchSampler  # noqa: E402
from srbench.train import PixelObjective, Precision  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO, TARGET_HOURS_ONE, TARGET_HOURS_EIGHT = 0.95, 8.0, 1.5
#: --smoke: every section on the CPU in about a minute (CI), the recipes cut to a few steps.
SMOKE = {
    "models": ["srcnn", "vdsr"],
    "set": ["train.compile=false", "train.precision=fp32", "srcnn.batch_size=4", "srcnn.patch_size=32", "vdsr.batch_size=4", "vdsr.patch_size=32",
            "vdsr.arch.depth=4", "prepare.patch_size=64"],
    "seconds": 0.5, "vdsr_steps": 6, "check_steps": 4,
}


def same(a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> bool:
    return all(torch.equal(x.cpu(), y.cpu()) for x, y in zip(a, b))


def check_sampler_branches(data: Path, device: torch.device) -> dict[str, Any]:
    """The store on ``device``, and on the host with pinned crops and the prefetch thread, against
    the plain CPU sampler."""
    reference = PatchSampler(data, batch_size=8, crop_size=32, seed=0, steps_per_chunk=2)
    on_device = PatchSampler(data, batch_size=8, crop_size=32, seed=0, device=device, store_on_device=True, steps_per_chunk=2)
    pinned = device.type == "cuda"
    hosted = PatchSampler(data, batch_size=8, crop_size=32, seed=0, device=device, store_on_device=False, prefetch=True, pin_memory=pinned, steps_per_chunk=2)
    try:
        steps = (1, 2, 3, 17, 4)
        ok = all(same(reference.batch(step), on_device.batch(step)) and same(reference.batch(step), hosted.batch(step)) for step in steps)
    finally:
        hosted.close()
    return {"check": "patch store on the device; on the host, pinned, prefetched", "ok": ok,
            "detail": f"steps {steps}: {'equal' if ok else 'DIFFER'}; store {on_device.store_device}, pinned {hosted.pin_memory}"}


def first_losses(params: Params, data: Path, device: torch.device, steps: int = 5, **overrides: Any) -> list[float]:
    _, _, objective, sampler = fresh_training(params, "srcnn", data, 100, {"batch_size": 8, "patch_size": 32, **overrides}, device)
    return [float(objective.step(*sampler.batch(step))["loss"]) for step in range(1, steps + 1)]


def check_mixed_precision(params: Params, data: Path, device: torch.device) -> dict[str, Any]:
    """bf16 autocast (on CUDA as training runs it; on the CPU through ``autocast_on_cpu``) against fp32."""
    sampler = PatchSampler(data, batch_size=8, crop_size=32, seed=0, device=device)
    losses = {}
    recipe = read_recipe(params, "srcnn-seed")  # no bicubic path: the convolutions make the whole output
    for name, precision in (("fp32", Precision(device, "fp32")), ("bf16", Precision(device, "bf16", autocast_on_cpu=True))):
        torch.manual_seed(0)
        objective = PixelObjective(build_model("srcnn-seed", sampler.scale, recipe.arch, "rgb").to(device), recipe.optimizer, precision)
        losses[name] = [float(objective.step(*sampler.batch(step))["loss"]) for step in range(1, 6)]
    worst = max(abs(a - b) / b for a, b in zip(losses["bf16"], losses["fp32"]))
    return {"check": "bf16 autocast follows fp32 (5 steps)", "ok": 0 < worst <= 0.03, "detail": f"worst relative loss difference {worst:.4f} (> 0: bf16 ran; <= 0.03)"}


def check_compile(params: Params, data: Path, device: torch.device) -> dict[str, Any]:
    eager = first_losses(params, data, device, compile=False, precision="fp32")
    compiled = first_losses(params, data, device, compile=True, precision="fp32")
    worst = max(abs(a - b) / b for a, b in zip(compiled, eager))
    return {"check": "torch.compile follows eager (5 steps, fp32)", "ok": worst <= 1e-3, "detail": f"worst relative loss difference {worst:.2e} (<= 1e-3)"}


def _ddp_rank(rank: int, port: int, data: str, queue: Any) -> None:
    """One NCCL process of :func:`check_nccl_syncbn`: SRResNet (batch norms) on half the batch."""
    import os

    import torch.distributed as dist

    from srbench.distributed import World

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    device = torch.device("cuda", rank)
    torch.cuda.set_device(device)
    dist.init_process_group("nccl", rank=rank, world_size=2, device_id=device)
    torch.manual_seed(0)
    network = World(rank, 2, rank).wrap(build_model("srresnet", 4, {"num_features": 16, "num_blocks": 2}, "rgb").to(device), device)
    lr, hr = PatchSampler(Path(data), batch_size=8, crop_size=32, seed=0, device=device, shard=(rank, 2)).batch(1)
    loss = torch.nn.functional.mse_loss(network(lr), hr)
    loss.backward()
    grad = next(network.parameters()).grad.detach().cpu()
    if rank == 0:
        queue.put(grad)
    dist.destroy_process_group()


def check_nccl_syncbn(data: Path) -> dict[str, Any]:
    """Two NCCL processes, synchronised batch norm: the first layer's gradient equals one process's on the whole batch."""
    if torch.cuda.device_count() < 2:
        return {"check": "NCCL + SyncBatchNorm (2 GPUs)", "ok": None, "detail": f"not run: {torch.cuda.device_count()} GPU(s)"}
    import torch.multiprocessing as mp

    context = mp.get_context("spawn")
    queue = context.Queue()
    port = free_port()
    mp.spawn(_ddp_rank, args=(port, str(data), queue), nprocs=2, join=True)
    ddp_grad = queue.get(timeout=60)
    device = torch.device("cuda", 0)
    torch.manual_seed(0)
    network = build_model("srresnet", 4, {"num_features": 16, "num_blocks": 2}, "rgb").to(device)
    lr, hr = PatchSampler(data, batch_size=8, crop_size=32, seed=0, device=device).batch(1)
    torch.nn.functional.mse_loss(network(lr), hr).backward()
    worst = float((ddp_grad - next(network.parameters()).grad.cpu()).abs().max() / next(network.parameters()).grad.abs().max())
    return {"check": "NCCL + SyncBatchNorm (2 GPUs) = one process", "ok": worst <= 1e-3, "detail": f"first layer's gradient, worst relative difference {worst:.2e}"}


def free_port() -> int:
    """A port nothing listens on now, for NCCL's rendezvous."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def projected_wall_hours(rows: list[dict], gpus: int) -> dict[str, float]:
    """The paper profile's wall time on ``gpus`` GPUs: each model on its own GPU (srgan after
    srresnet, which it starts from), or every model one after another over all of them (DDP,
    one rank's step at 1/N of the batch, all-reduce not included)."""
    one = {row["model"]: row["hours"][1] for row in rows}
    chained = one.get("srresnet", 0.0) + one.get("srgan", 0.0)
    parallel = max([chained, *(hours for model, hours in one.items() if model not in ("srresnet", "srgan"))]) if len(one) <= gpus else math.inf
    ddp = sum(row["hours"].get(gpus, math.inf) for row in rows)
    return {"side_by_side": parallel, "ddp_in_turn": ddp, "best": min(parallel, ddp)}


def markdown(result: dict) -> str:
    lines = [f"Machine: {result['machine']['gpu'] or result['machine']['cpu']} ({result['device']}), torch {result['machine']['torch']}; "
             f"{'SMOKE (tiny settings)' if result['smoke'] else 'full run'}, {result['seconds']:.0f} s.", "", "| section | result | target | met |", "|---|---|---|---|"]
    for check in result["cuda_checks"]:
        lines.append(f"| {check['check']} | {check['detail']} | equal | {'-' if check['ok'] is None else 'yes' if check['ok'] else 'NO'} |")
    for row in result["throughput"]["rows"]:
        lines.append(f"| throughput {row['model']} | real {row['real_steps_per_s']:.2f} / fixed {row['fixed_steps_per_s']:.2f} steps/s = "
                     f"{row['ratio']:.2f}; {row['tflops']:.2f} TFLOP/s ({100 * row['tflops'] / result['throughput']['matmul_tflops']:.0f} % of matmul) | "
                     f">= {TARGET_RATIO} | {'yes' if row['ratio'] >= TARGET_RATIO else 'NO'} |")
    hours = result["hours"]
    lines.append(f"| paper profile, 1 GPU | {hours['one']:.2f} h | <= {TARGET_HOURS_ONE} h | {'yes' if hours['one'] <= TARGET_HOURS_ONE else 'NO'} |")
    eight = hours["eight"]
    lines.append(f"| paper profile, 8 GPUs | {eight['best']:.2f} h (side by side {eight['side_by_side']:.2f}, DDP in turn {eight['ddp_in_turn']:.2f}) | "
                 f"<= {TARGET_HOURS_EIGHT} h | {'yes' if eight['best'] <= TARGET_HOURS_EIGHT else 'NO'} |")
    vdsr = result["vdsr"]
    lines.append(f"| VDSR, {vdsr['steps']} steps (paper recipe) | Y-PSNR {vdsr['val_psnr_y']:.3f} dB, bicubic {vdsr['bicubic_psnr_y']:.3f} | above bicubic | "
                 f"{'yes' if vdsr['val_psnr_y'] and vdsr['val_psnr_y'] > vdsr['bicubic_psnr_y'] else 'NO'} |")
    for check in result["checks"]:
        lines.append(f"| check {check['model']} ({check['steps']} steps) | {'; '.join(check['problems']) or 'pass'}, Y-PSNR {check['val_psnr_y']} | passes | {'yes' if not check['problems'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="Tiny settings, any device: the script's own test.")
    parser.add_argument("--params", type=Path, default=REPO / "profiles" / "paper.yaml")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_acceptance"))
    args = parser.parse_args()
    started = time.perf_counter()
    smoke = SMOKE if args.smoke else {"models": list(model_names()), "set": ["train.device=cuda"], "seconds": 4.0, "vdsr_steps": None, "check_steps": 300}
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU machine, or pass --smoke")

    with tempfile.TemporaryDirectory() as scratch:
        params = train_throughput.overridden(args.params, smoke["set"], Path(scratch))
        device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
        data = train_throughput.scratch_data(params, Path(scratch))  # the quick photographs at the profile's x4
        print(f"data: {data} (x{params.integer('prepare.scale')}); device {device}", flush=True)

        cuda_checks = [check_sampler_branches(data, device), check_mixed_precision(params, data, device)]
        cuda_checks.append(check_compile(params, data, device) if not args.smoke else
                           {"check": "torch.compile follows eager", "ok": None, "detail": "not run in --smoke (minutes of CPU compilation; tests/test_recipes.py compiles on the CPU)"})
        cuda_checks.append(check_nccl_syncbn(data) if device.type == "cuda" else {"check": "NCCL + SyncBatchNorm (2 GPUs)", "ok": None, "detail": "not run: no CUDA"})
        for check in cuda_checks:
            print(f"{check['check']}: {check['detail']}", flush=True)

        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(params.string("train.precision"), torch.float32) if device.type == "cuda" else torch.float32
        throughput = {"matmul_tflops": train_throughput.matmul_peak(device, dtype, seconds=0.5 if args.smoke else 2.0), "rows": []}
        for model in smoke["models"]:
            row = train_throughput.measure(params, model, data, device, smoke["seconds"], warmup=2 if args.smoke else 5, gpus=[1, 8])
            throughput["rows"].append(row)
            print(f"{model}: ratio {row['ratio']:.2f}, {row['tflops']:.3f} TFLOP/s, {row['hours'][1]:.3g} h on one", flush=True)
        hours = {"one": sum(row["hours"][1] for row in throughput["rows"]), "eight": projected_wall_hours(throughput["rows"], 8)}

        bicubic = bicubic_validation_psnr(data)
        vdsr_steps = smoke["vdsr_steps"] or read_recipe(params, "vdsr").steps
        vdsr = check_recipe(params, "vdsr", data, vdsr_steps, {}, True, bicubic, device).as_dict()
        print(f"vdsr, {vdsr_steps} steps: {vdsr['val_psnr_y']} dB against bicubic {bicubic:.3f}", flush=True)

        checks = []
        for model in smoke["models"]:
            overrides = {"compile": False} | ({"vgg_weights": "random"} if read_recipe(params, model).content_loss else {})
            checks.append(check_recipe(params, model, data, smoke["check_steps"], overrides, model == "vdsr", bicubic, device).as_dict())

    result = {
        "command": " ".join(["python", *sys.argv]), "smoke": args.smoke, "device": str(device), "machine": describe_machine(device),
        "params": str(args.params), "overrides": smoke["set"], "cuda_checks": cuda_checks, "throughput": throughput, "hours": hours,
        "vdsr": vdsr, "checks": checks, "seconds": time.perf_counter() - started,
        "targets": {"ratio": TARGET_RATIO, "hours_one_gpu": TARGET_HOURS_ONE, "hours_eight_gpus": TARGET_HOURS_EIGHT},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_acceptance.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    table = markdown(result)
    (args.out / "gpu_acceptance.md").write_text(table)
    print(table)
    if any(check["ok"] is False for check in cuda_checks):
        raise SystemExit("a CUDA check failed")


if __name__ == "__main__":
    main()
