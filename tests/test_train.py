"""The training loop: it learns, it resumes exactly, it checkpoints, SRGAN's step runs."""

import math
from pathlib import Path

import pytest
import torch

from srbench.data import load_pairs
from srbench.errors import SrbenchError
from srbench.losses import VGGContentLoss
from srbench.models import SRCNN, Discriminator, SRResNet, build_model, save_model
from srbench.sampling import PatchSampler
from srbench.train import (
    AdversarialObjective,
    OptimizerConfig,
    Optimization,
    PixelObjective,
    Precision,
    Schedule,
    DIVERGENCE_FACTOR,
    CheckpointMismatch,
    TrainingDiverged,
    fit,
    use_deterministic_kernels,
)

CPU = torch.device("cpu")


def small_srcnn() -> SRCNN:
    torch.manual_seed(0)
    return SRCNN(scale=2, n1=16, n2=8, f1=5, f2=1, f3=3)


def run(
    prepared: Path,
    tmp_path: Path,
    steps: int,
    resume: bool = False,
    config: OptimizerConfig = OptimizerConfig(lr=1e-3),
    fingerprint: dict | None = None,
) -> tuple[SRCNN, list[dict]]:
    model = small_srcnn()
    objective = PixelObjective(model, config, Precision(CPU, "fp32"))
    sampler = PatchSampler(prepared, batch_size=8, crop_size=16, seed=0)
    schedule = Schedule(steps=steps, log_every=5, validate_every=10, checkpoint_every=5)
    history = fit(objective, sampler, schedule, CPU, load_pairs(prepared / "valid"), tmp_path / "ckpt.pt", resume, fingerprint=fingerprint)
    return model, history


def test_a_few_steps_lower_the_loss(prepared_x2: Path, tmp_path: Path) -> None:
    _, history = run(prepared_x2, tmp_path, steps=60)
    losses = [row["loss"] for row in history if "loss" in row]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3
    validations = [row for row in history if "val_psnr_y" in row]
    assert [row["step"] for row in validations] == [10, 20, 30, 40, 50, 60]
    assert validations[-1]["val_psnr_y"] > validations[0]["val_psnr_y"]


def test_resume_continues_from_the_checkpoint_step(prepared_x2: Path, tmp_path: Path) -> None:
    decaying = OptimizerConfig(lr=1e-3, decay_every=7, decay_factor=0.5)  # the schedule resumes too
    straight, straight_history = run(prepared_x2, tmp_path / "straight", steps=20, config=decaying)
    run(prepared_x2, tmp_path / "split", steps=10, config=decaying)
    checkpoint = torch.load(tmp_path / "split" / "ckpt.pt", weights_only=True)
    assert checkpoint["step"] == 10
    resumed, resumed_history = run(prepared_x2, tmp_path / "split", steps=20, resume=True, config=decaying)
    assert [row["step"] for row in resumed_history] == [row["step"] for row in straight_history]
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_resume_without_checkpoint_starts_from_zero(prepared_x2: Path, tmp_path: Path) -> None:
    _, history = run(prepared_x2, tmp_path, steps=5, resume=True)
    assert history[0]["step"] == 5


def test_adversarial_step_updates_generator_and_discriminator(prepared_x2: Path) -> None:
    torch.manual_seed(0)
    generator, discriminator = SRResNet(scale=2, num_features=8, num_blocks=1), Discriminator(base_features=8)
    objective = AdversarialObjective(
        generator, discriminator, VGGContentLoss("22", "random"), OptimizerConfig(lr=1e-3), adversarial_weight=1e-3, precision=Precision(CPU, "fp32")
    )
    before_g = [p.detach().clone() for p in generator.parameters()]
    before_d = [p.detach().clone() for p in discriminator.parameters()]
    lr, hr = PatchSampler(prepared_x2, batch_size=4, crop_size=32, seed=0).batch(1)
    losses = objective.step(lr, hr)
    assert set(losses) >= {"loss", "content_loss", "adversarial_loss", "discriminator_loss"}
    assert all(torch.isfinite(value).all() for value in losses.values())
    assert any(not torch.equal(a, b) for a, b in zip(before_g, generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before_d, discriminator.parameters()))
    assert not any(p.requires_grad for p in objective.content_loss.parameters())


def test_step_decay_follows_the_schedule(prepared_x2: Path, tmp_path: Path) -> None:
    _, history = run(prepared_x2, tmp_path, steps=30, config=OptimizerConfig(lr=1e-3, decay_every=15, decay_factor=0.5))
    rates = {row["step"]: row["lr"] for row in history if "lr" in row}
    assert rates[10] == 1e-3 and rates[15] == 5e-4 and rates[30] == 2.5e-4


def test_sgd_weight_decay_and_last_layer_rate() -> None:
    model = small_srcnn()
    config = OptimizerConfig(name="sgd", lr=1e-4, momentum=0.9, weight_decay=1e-4, last_layer_lr=1e-5)
    optimizer = Optimization(model, config, Precision(CPU, "fp32")).optimizer
    assert isinstance(optimizer, torch.optim.SGD)
    last, rest = optimizer.param_groups[1], optimizer.param_groups[0]
    assert last["lr"] == 1e-5 and rest["lr"] == 1e-4 and rest["momentum"] == 0.9 and rest["weight_decay"] == 1e-4
    assert {id(p) for p in last["params"]} == {id(model.reconstruction.weight), id(model.reconstruction.bias)}
    assert len(rest["params"]) == 4


def test_adjustable_clipping_bounds_each_gradient_by_theta_over_lr() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    before = model.weight.detach().clone()
    optimization = Optimization(model, OptimizerConfig(name="sgd", lr=0.1, momentum=0.0, grad_clip=0.001, grad_clip_mode="adjustable"), Precision(CPU, "fp32"))
    loss = (model(torch.full((1, 4), 1000.0)) ** 2).sum()  # huge gradients
    optimization.step(loss)
    assert torch.allclose((model.weight - before).abs(), torch.full_like(before, 0.1 * 0.001 / 0.1))


def test_bad_optimizer_settings_are_refused() -> None:
    with pytest.raises(SrbenchError, match="optimizer 'rmsprop'"):
        OptimizerConfig(name="rmsprop")
    with pytest.raises(SrbenchError, match="grad_clip_mode 'value'"):
        OptimizerConfig(grad_clip_mode="value")


def test_loss_scale_multiplies_the_gradient_and_the_logged_loss_stays_the_mse() -> None:
    torch.manual_seed(0)
    hr = torch.rand(4, 3, 8, 8)
    lr = hr[:, :, ::2, ::2]
    with torch.no_grad():
        expected_loss = float(torch.nn.functional.mse_loss(small_srcnn()(lr), hr))
    gradients = {}
    for scale in (1.0, 220.5):  # Keras' 'mse'; Caffe's EuclideanLoss on SRCNN's 21 x 21 labels
        model = small_srcnn()
        objective = PixelObjective(model, OptimizerConfig(name="sgd", lr=1e-9, momentum=0.0), Precision(CPU, "fp32"), scale)
        logged = objective.step(lr, hr)
        gradients[scale] = model.reconstruction.weight.grad.clone()
        assert float(logged["loss"]) == pytest.approx(expected_loss, rel=1e-5)
    assert torch.allclose(gradients[220.5], gradients[1.0] * 220.5, rtol=1e-4)
    with pytest.raises(SrbenchError, match="loss_scale 0"):
        PixelObjective(small_srcnn(), OptimizerConfig(), Precision(CPU, "fp32"), 0)


def test_bias_and_last_layer_rates_follow_caffes_lr_mult() -> None:
    model = small_srcnn()
    config = OptimizerConfig(name="sgd", lr=1e-4, last_layer_lr=1e-5, bias_lr=1e-5)
    groups = Optimization(model, config, Precision(CPU, "fp32")).optimizer.param_groups
    assert groups[0]["lr"] == 1e-4
    assert {id(p) for p in groups[0]["params"]} == {id(model.patch_extraction.weight), id(model.non_linear_mapping.weight)}
    assert groups[1]["lr"] == 1e-5 and len(groups[1]["params"]) == 4  # three biases and the reconstruction weights


def test_cosine_schedule_with_warmup_ends_at_zero() -> None:
    config = OptimizerConfig(lr=1.0, schedule="cosine", total_steps=100, warmup_steps=10)
    assert config.lr_factor(0) == pytest.approx(0.1 * (0.5 + 0.5 * math.cos(0)))
    assert config.lr_factor(9) == pytest.approx(0.5 * (1 + math.cos(math.pi * 9 / 100)))
    assert config.lr_factor(50) == pytest.approx(0.5)
    assert config.lr_factor(100) == pytest.approx(0.0)
    with pytest.raises(SrbenchError, match="schedule 'cosine' needs total_steps"):
        OptimizerConfig(schedule="cosine")
    with pytest.raises(SrbenchError, match="schedule 'linear'"):
        OptimizerConfig(schedule="linear", total_steps=10)


def test_history_carries_training_seconds(prepared_x2: Path, tmp_path: Path) -> None:
    _, history = run(prepared_x2, tmp_path, steps=10)
    seconds = [row["seconds"] for row in history]
    assert all(s > 0 for s in seconds) and seconds == sorted(seconds)


def test_divergence_stops_before_the_checkpoint(prepared_x2: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingDiverged, match="training diverged by step 5"):
        run(prepared_x2, tmp_path, steps=10, config=OptimizerConfig(name="sgd", lr=1e12))
    assert not (tmp_path / "ckpt.pt").exists()


def test_training_twice_gives_byte_identical_weights(prepared_x2: Path, tmp_path: Path) -> None:
    """Same params, data, machine and thread count: the same bytes (the README's promise)."""
    before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    use_deterministic_kernels(True)
    try:
        files = []
        for name in ("first", "second"):
            model, _ = run(prepared_x2, tmp_path / name, steps=10)
            save_model(tmp_path / name / "srcnn.pt", model, "srcnn", 2, {"n1": 16, "n2": 8, "f1": 5, "f2": 1, "f3": 3})
            files.append((tmp_path / name / "srcnn.pt").read_bytes())
        assert files[0] == files[1]
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[1:]


def test_resuming_another_recipes_checkpoint_is_refused(prepared_x2: Path, tmp_path: Path) -> None:
    run(prepared_x2, tmp_path, steps=5)
    torch.manual_seed(0)
    other = PixelObjective(SRCNN(scale=2, n1=8, n2=8, f1=5, f2=1, f3=3), OptimizerConfig(lr=1e-3), Precision(CPU, "fp32"))
    sampler = PatchSampler(prepared_x2, batch_size=8, crop_size=16, seed=0)
    with pytest.raises(SrbenchError, match="ckpt.pt: a checkpoint of another model, recipe or srbench version .*run without --resume"):
        fit(other, sampler, Schedule(steps=10), CPU, load_pairs(prepared_x2 / "valid"), tmp_path / "ckpt.pt", resume=True)


def test_a_finite_loss_far_above_its_start_is_divergence(prepared_x2: Path, tmp_path: Path) -> None:
    """Adam at 1e3 keeps the loss finite (1e32 on the tester's run): before, the run ended with
    exit 0 and a useless model; now the rule stops it before anything is checkpointed."""
    with pytest.raises(TrainingDiverged, match=rf"by step 5: loss \S+ is over {DIVERGENCE_FACTOR:g}x the first batch's"):
        run(prepared_x2, tmp_path, steps=10, config=OptimizerConfig(name="adam", lr=1e3))
    assert not (tmp_path / "ckpt.pt").exists()


def test_a_one_step_run_that_blows_up_is_divergence(prepared_x2: Path, tmp_path: Path) -> None:
    """Issue 22, case 6: one step at Adam 1e3 logs only the first batch's loss (before the update),
    so no logged loss can show the damage; the last batch with the final weights does."""
    with pytest.raises(TrainingDiverged, match=rf"by step 1: loss after the last update \S+ is over {DIVERGENCE_FACTOR:g}x"):
        run(prepared_x2, tmp_path, steps=1, config=OptimizerConfig(name="adam", lr=1e3))
    assert not (tmp_path / "ckpt.pt").exists()


def test_the_last_batch_check_changes_nothing() -> None:
    """The extra forward pass of the last step leaves BatchNorm's running statistics as they were."""
    torch.manual_seed(0)
    model = SRResNet(scale=2, num_features=8, num_blocks=1).train()
    objective = PixelObjective(model, OptimizerConfig(lr=1e-3), Precision(CPU, "fp32"))
    before = {name: buffer.clone() for name, buffer in model.named_buffers()}
    lr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16)
    checked = objective.watched_loss(lr, hr).item()
    assert all(torch.equal(buffer, before[name]) for name, buffer in model.named_buffers())
    assert checked == pytest.approx(torch.nn.functional.mse_loss(model(lr), hr).item(), rel=1e-6)  # training mode: batch statistics


def test_resume_continues_only_a_checkpoint_of_the_same_run(prepared_x2: Path, tmp_path: Path) -> None:
    run(prepared_x2, tmp_path, steps=5, fingerprint={"settings": {"lr": 1e-3, "steps": 5}, "data": "a"})
    with pytest.raises(CheckpointMismatch, match=r"ckpt.pt: made by another run \(settings.lr: 0.001 -> 0.0001; settings.steps: 5 -> 300\); run without --resume"):
        run(prepared_x2, tmp_path, steps=300, resume=True, fingerprint={"settings": {"lr": 1e-4, "steps": 300}, "data": "a"})
    _, history = run(prepared_x2, tmp_path, steps=10, resume=True, fingerprint={"settings": {"lr": 1e-3, "steps": 5}, "data": "a"})
    assert [row["step"] for row in history if "loss" in row] == [5, 10]  # the same run's checkpoint resumes


def test_an_empty_or_hand_edited_checkpoint_is_refused_in_one_line(prepared_x2: Path, tmp_path: Path) -> None:
    """Issue 22, case 11: a zero-length checkpoint gave an IndexError traceback on --resume, and a
    step edited to 1e9 a StopIteration one."""
    (tmp_path / "ckpt.pt").write_bytes(b"")
    with pytest.raises(CheckpointMismatch, match=r"ckpt.pt: not a readable checkpoint \(EOFError: 0 bytes\); run without --resume"):
        run(prepared_x2, tmp_path, steps=10, resume=True)
    run(prepared_x2, tmp_path, steps=5)
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    torch.save({**state, "step": 10**9}, tmp_path / "ckpt.pt")
    with pytest.raises(CheckpointMismatch, match=r"ckpt.pt: step 1000000000 is not a step of this 10-step run; run without --resume"):
        run(prepared_x2, tmp_path, steps=10, resume=True)


def test_a_checkpoint_that_would_run_code_is_refused_in_one_line(prepared_x2: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (marker.write_text, ("pwned",))

    torch.save({"model": Payload()}, tmp_path / "ckpt.pt")
    with pytest.raises(CheckpointMismatch, match=r"ckpt.pt: not a srbench checkpoint \(it holds objects that weights-only loading refuses\)") as error:
        run(prepared_x2, tmp_path, steps=5, resume=True)
    assert "\n" not in str(error.value) and not marker.exists()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_the_gpus_mixed_precision_branch_runs_on_the_cpu_and_trains_like_fp32(prepared_x2: Path, precision: str) -> None:
    """Autocast and (fp16) the loss scaler, as on CUDA, taken on the CPU: the first steps' losses
    follow fp32's to the precision's rounding."""
    sampler = PatchSampler(prepared_x2, batch_size=8, crop_size=16, seed=0)
    losses = {}
    for name, branch in (("fp32", Precision(CPU, "fp32")), (precision, Precision(CPU, precision, autocast_on_cpu=True))):
        torch.manual_seed(0)  # the study's SRCNN: no bicubic path, the convolutions make the whole output
        network = build_model("srcnn-seed", 2, {"n1": 16, "n2": 8, "f1": 5, "f2": 1, "f3": 3, "upsampling": "nearest"}, "rgb")
        objective = PixelObjective(network, OptimizerConfig(lr=1e-3), branch)
        losses[name] = [float(objective.step(*sampler.batch(step))["loss"]) for step in range(1, 6)]
    mixed = Precision(CPU, precision, autocast_on_cpu=True)
    assert mixed.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    assert mixed.scaler.is_enabled() == (precision == "fp16") and Precision(CPU, precision).dtype is None  # the default stays fp32
    with mixed.autocast():
        assert small_srcnn()(sampler.batch(1)[0]).dtype == mixed.dtype
    assert losses[precision] != losses["fp32"] and losses[precision] == pytest.approx(losses["fp32"], rel=0.03)  # rounded, not another training


def test_pinned_crops_are_the_one_branch_that_needs_an_nvidia_driver(prepared_x2: Path) -> None:
    sampler = PatchSampler(prepared_x2, batch_size=4, crop_size=16, seed=0)
    assert sampler.pin_memory is False  # the store and the model both on the CPU
    if torch.cuda.is_available():
        pytest.skip("a GPU machine pins: benchmarks/gpu_acceptance.py covers it")
    pinned = PatchSampler(prepared_x2, batch_size=4, crop_size=16, seed=0, pin_memory=True)
    with pytest.raises(RuntimeError, match="NVIDIA driver"):
        pinned.batch(1)
