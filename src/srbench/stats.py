"""Paired comparisons over images: is one method's lead over another real on the images tested?
And one model's results over several training seeds (:func:`mean_over_seeds`).

Two methods scored on the same images (say the Y-PSNR of a model and of bicubic on each
validation image) give one difference per image. :func:`paired_comparison` reports

- their mean;
- its percentile bootstrap confidence interval (Efron and Tibshirani, "An Introduction to the
  Bootstrap", 1993, ch. 13): the images are resampled with replacement from a seeded generator,
  and the interval holds the central ``confidence`` of the resampled means. A lead whose interval
  contains 0 is not established on these images;
- the two-sided p-value of the exact Wilcoxon signed-rank test (Wilcoxon 1945): zero differences
  are dropped (Wilcoxon's convention), tied absolute values share their average rank, and the
  p-value is computed from the exact null distribution of the positive rank sum, every sign pattern
  equally likely. With n non-zero differences no p-value can fall below 2 / 2**n (0.25 for 3).
"""

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TEST_NAME = "Wilcoxon signed-rank test (exact, two-sided; zero differences dropped, tied ranks averaged)"
CONFIDENCE = 0.95
RESAMPLES = 10_000
SEED = 0


@dataclass(frozen=True)
class PairedComparison:
    """Mean of the per-image differences (first method minus second), its bootstrap interval
    and the signed-rank test's p-value, over ``n`` images."""

    n: int
    mean_difference: float
    ci_low: float
    ci_high: float
    p_value: float

    @property
    def established(self) -> bool:
        """Whether the interval excludes 0: the sign of the difference holds on these images."""
        return not self.ci_low <= 0.0 <= self.ci_high


def bootstrap_interval(
    differences: Sequence[float], confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``differences`` (resampled with replacement)."""
    values = np.asarray(differences, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"bootstrap_interval: expected a non-empty list of differences, got shape {values.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"bootstrap_interval: confidence = {confidence}: must lie in (0, 1)")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def wilcoxon_signed_rank(differences: Sequence[float]) -> float:
    """Two-sided p-value of the exact Wilcoxon signed-rank test of ``differences`` against 0
    (1.0 when every difference is 0)."""
    values = np.asarray(differences, dtype=np.float64)
    values = values[values != 0]
    if len(values) == 0:
        return 1.0
    magnitudes = np.abs(values)
    order = np.argsort(magnitudes, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for magnitude in np.unique(magnitudes):  # ties share their average rank
        tied = magnitudes == magnitude
        ranks[tied] = ranks[tied].mean()
    doubled = np.rint(2 * ranks).astype(np.int64)  # average ranks are multiples of 1/2
    observed = int(doubled[values > 0].sum())
    # Null distribution of the doubled positive rank sum: each rank's sign is + or - with probability 1/2.
    probabilities = np.zeros(int(doubled.sum()) + 1)
    probabilities[0] = 1.0
    for rank in doubled:
        shifted = np.zeros_like(probabilities)
        shifted[rank:] = probabilities[:-rank]
        probabilities = 0.5 * (probabilities + shifted)
    lower, upper = probabilities[: observed + 1].sum(), probabilities[observed:].sum()
    return float(min(1.0, 2 * min(lower, upper)))


def paired_comparison(
    first: Sequence[float], second: Sequence[float], confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = SEED
) -> PairedComparison:
    """``first`` against ``second``, per-image scores of two methods on the same images (in the
    same order): mean of first - second, its bootstrap interval and the signed-rank p-value."""
    if len(first) != len(second):
        raise ValueError(f"paired_comparison: {len(first)} scores against {len(second)}: the same images are needed")
    differences = np.asarray(first, dtype=np.float64) - np.asarray(second, dtype=np.float64)
    low, high = bootstrap_interval(differences, confidence, resamples, seed)
    return PairedComparison(len(differences), float(differences.mean()), low, high, wilcoxon_signed_rank(differences))


#: The means a table shows with their spread over seeds.
SPREAD_KEYS = ("psnr_y", "ssim_y", "psnr_rgb")


def mean_over_seeds(results: list[dict[str, float]], spread: tuple[str, ...] = SPREAD_KEYS) -> dict[str, float]:
    """One model's results of several seeds (the same keys in each) as one: the mean of every
    number, but the largest of each ``max_*`` key; with two seeds or more, also the sample
    standard deviation of each ``spread`` key as ``KEY_sd``."""
    combined = {key: (max if key.startswith("max_") else statistics.fmean)([result[key] for result in results]) for key in results[0]}
    if len(results) > 1:
        combined |= {f"{key}_sd": statistics.stdev([result[key] for result in results]) for key in spread if key in results[0]}
    return combined
