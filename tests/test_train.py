"""The training loop: it learns, it resumes exactly, it checkpoints, SRGAN's step runs."""

from pathlib import Path

import torch

from srbench.data import PatchSampler, load_pairs
from srbench.losses import VGGContentLoss
from srbench.models import SRCNN, Discriminator, SRResNet
from srbench.train import AdversarialObjective, PixelObjective, Precision, Schedule, fit

CPU = torch.device("cpu")


def small_srcnn() -> SRCNN:
    torch.manual_seed(0)
    return SRCNN(scale=2, n1=16, n2=8, f1=5, f2=1, f3=3)


def run(prepared: Path, tmp_path: Path, steps: int, resume: bool = False, model: SRCNN | None = None) -> tuple[SRCNN, list[dict]]:
    model = model or small_srcnn()
    objective = PixelObjective(model, lr=1e-3, precision=Precision(CPU, "fp32"))
    sampler = PatchSampler(prepared, batch_size=8, crop_size=16, seed=0)
    schedule = Schedule(steps=steps, log_every=5, validate_every=10, checkpoint_every=5)
    history = fit(objective, sampler, schedule, CPU, load_pairs(prepared / "valid"), tmp_path / "ckpt.pt", resume)
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
    straight, straight_history = run(prepared_x2, tmp_path / "straight", steps=20)
    run(prepared_x2, tmp_path / "split", steps=10)
    checkpoint = torch.load(tmp_path / "split" / "ckpt.pt", weights_only=True)
    assert checkpoint["step"] == 10
    resumed, resumed_history = run(prepared_x2, tmp_path / "split", steps=20, resume=True)
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
        generator, discriminator, VGGContentLoss("22", "random"), lr=1e-3, adversarial_weight=1e-3, precision=Precision(CPU, "fp32")
    )
    before_g = [p.detach().clone() for p in generator.parameters()]
    before_d = [p.detach().clone() for p in discriminator.parameters()]
    lr, hr = PatchSampler(prepared_x2, batch_size=4, crop_size=32, seed=0).batch(1)
    losses = objective.step(lr, hr)
    assert set(losses) >= {"loss", "content_loss", "adversarial_loss", "discriminator_loss"}
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert any(not torch.equal(a, b) for a, b in zip(before_g, generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before_d, discriminator.parameters()))
    assert not any(p.requires_grad for p in objective.content_loss.parameters())
