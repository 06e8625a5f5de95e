"""Does a training recipe train? A short run's history judged on four counts: the loss stayed
finite, it fell, it never spiked, and (for models that start from bicubic) the network ended
above the bicubic baseline on the validation images.

The verdicts are deliberately plain so that they can be tested on a CPU in minutes:

- *falls*: the mean of the last three logged losses is at most ``FALL_RATIO`` of the first.
- *spike*: a logged loss (a mean over ``log_every`` steps, at least :data:`WINDOW_CROPS` crops) more than ``SPIKE_RATIO`` times the
  lowest logged before it. A recipe on the edge of divergence shows one long before it returns NaN.
"""

from dataclasses import asdict, dataclass

FALL_RATIO = 0.5
SPIKE_RATIO = 2.0
#: The fewest training crops a logged loss averages over: a mean over fewer varies with the
#: photographs drawn more than with the optimisation (the quick data run from the black Hubble
#: field to textured temple roofs; VDSR's paper recipe, 6-step means of 8 crops: 2.6x apart).
WINDOW_CROPS = 128


@dataclass(frozen=True)
class RecipeCheck:
    """The outcome of a short training run of one model's recipe."""

    model: str
    steps: int
    batch_size: int
    patch_size: int
    first_loss: float
    last_loss: float
    finite: bool
    worst_spike: float
    val_psnr_y: float | None
    bicubic_psnr_y: float
    steps_per_second: float
    above_bicubic_required: bool

    @property
    def falls(self) -> bool:
        return self.finite and self.last_loss <= FALL_RATIO * self.first_loss

    @property
    def spiked(self) -> bool:
        return self.worst_spike > SPIKE_RATIO

    @property
    def margin(self) -> float | None:
        """Validation Y-PSNR minus bicubic's, in dB (None when the run did not finish)."""
        return None if self.val_psnr_y is None else self.val_psnr_y - self.bicubic_psnr_y

    @property
    def problems(self) -> list[str]:
        """What failed, in words; empty when the recipe passes."""
        found = []
        if not self.finite:
            found.append("diverged (non-finite loss)")
        elif not self.falls:
            found.append(f"loss did not fall to {FALL_RATIO:g}x its start")
        if self.spiked:
            found.append(f"loss spiked {self.worst_spike:.1f}x")
        if self.above_bicubic_required and (self.margin is None or self.margin <= 0):
            found.append("ended below bicubic")
        return found

    def as_dict(self) -> dict:
        return asdict(self) | {"falls": self.falls, "spiked": self.spiked, "margin_db": self.margin, "problems": self.problems}


def loss_summary(losses: list[float]) -> tuple[float, float, float]:
    """(first, last, worst spike) of a series of logged losses: the first value, the mean of the
    last three, and the largest ratio of a value to the lowest value logged before it."""
    if not losses:
        raise ValueError("no logged losses")
    tail = losses[-3:]
    worst, lowest = 1.0, losses[0]
    for value in losses[1:]:
        worst = max(worst, value / lowest)
        lowest = min(lowest, value)
    return losses[0], sum(tail) / len(tail), worst


def markdown(checks: list[RecipeCheck]) -> str:
    """The checks as a Markdown table, one row per recipe."""
    lines = [
        "| Model | Steps | Batch × crop | Loss start → end | Finite | Worst spike | Val Y-PSNR (dB) | vs bicubic (dB) | Steps/s | Verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for check in checks:
        psnr = "–" if check.val_psnr_y is None else f"{check.val_psnr_y:.2f}"
        margin = "–" if check.margin is None else f"{check.margin:+.2f}"
        verdict = "; ".join(check.problems) or "pass"
        lines.append(
            f"| {check.model} | {check.steps} | {check.batch_size} × {check.patch_size} | "
            f"{check.first_loss:.3g} → {check.last_loss:.3g} | {'yes' if check.finite else 'no'} | "
            f"{check.worst_spike:.2f}x | {psnr} | {margin} | {check.steps_per_second:.2f} | {verdict} |"
        )
    return "\n".join(lines) + "\n"
