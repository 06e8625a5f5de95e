"""srbench.stats against examples worked by hand (and SciPy's exact Wilcoxon where it has no ties)."""

import numpy as np
import pytest

from srbench.stats import bootstrap_interval, mean_over_seeds, paired_comparison, wilcoxon_signed_rank


def test_signed_rank_p_values_worked_by_hand() -> None:
    # [1, 2, 3]: ranks 1, 2, 3 all positive, W+ = 6, the largest of 8 equally likely sums: P(W+ >= 6) = 1/8.
    assert wilcoxon_signed_rank([1.0, 2.0, 3.0]) == pytest.approx(2 / 8)
    assert wilcoxon_signed_rank([-1.0, -2.0, -3.0]) == pytest.approx(2 / 8)
    # [1, -2, 3, 4]: W+ = 1 + 3 + 4 = 8; subset sums of {1, 2, 3, 4} >= 8: {1,3,4}, {2,3,4}, {1,2,3,4}: 3 of 16.
    assert wilcoxon_signed_rank([1.0, -2.0, 3.0, 4.0]) == pytest.approx(2 * 3 / 16)
    # A zero difference is dropped: the same as [1, 2, 3].
    assert wilcoxon_signed_rank([0.0, 1.0, 2.0, 3.0]) == pytest.approx(2 / 8)
    # Ties: |d| = 1, 1, 2 take ranks 1.5, 1.5, 3; W+ = 3; sums over the 8 sign patterns: 0, 1.5, 1.5, 3, 3, 4.5, 4.5, 6;
    # P(W+ <= 3) = 5/8 = P(W+ >= 3), so p = min(1, 2 x 5/8) = 1.
    assert wilcoxon_signed_rank([1.0, 1.0, -2.0]) == 1.0
    # [1, 1, 2]: W+ = 6, the largest: 1/8 each side.
    assert wilcoxon_signed_rank([1.0, 1.0, 2.0]) == pytest.approx(2 / 8)
    assert wilcoxon_signed_rank([0.0, 0.0]) == 1.0


def test_signed_rank_matches_scipys_exact_test_without_ties() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    differences = np.random.default_rng(3).normal(0.3, 1.0, size=12)
    expected = scipy_stats.wilcoxon(differences, method="exact").pvalue
    assert wilcoxon_signed_rank(differences) == pytest.approx(expected, rel=1e-9)


def test_bootstrap_interval_worked_by_hand() -> None:
    # [1, 3]: a resample of two is (1, 1), (1, 3), (3, 1) or (3, 3): means 1, 2, 2, 3, so mean 1 and mean 3
    # each have probability 1/4, far more than the 2.5 % each tail leaves out: the 95 % interval is [1, 3].
    assert bootstrap_interval([1.0, 3.0]) == (1.0, 3.0)
    assert bootstrap_interval([-1.0, 3.0]) == (-1.0, 3.0)
    assert bootstrap_interval([2.0, 2.0, 2.0]) == (2.0, 2.0)
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_interval([])


def test_the_interval_is_seeded_and_narrows_with_more_images() -> None:
    rng = np.random.default_rng(0)
    few, many = rng.normal(0.5, 1.0, size=10), rng.normal(0.5, 1.0, size=400)
    assert bootstrap_interval(few, seed=7) == bootstrap_interval(few, seed=7)
    assert bootstrap_interval(few, seed=7) != bootstrap_interval(few, seed=8)
    low, high = bootstrap_interval(many)
    assert 0.3 < low < 0.5 < high < 0.7


def test_a_lead_whose_interval_contains_zero_is_not_established() -> None:
    lead = paired_comparison([31.0, 33.0], [30.0, 30.0])  # differences 1 and 3
    assert (lead.n, lead.mean_difference, lead.ci_low, lead.ci_high) == (2, 2.0, 1.0, 3.0)
    assert lead.established and lead.p_value == pytest.approx(2 / 4)
    unsure = paired_comparison([29.0, 33.0], [30.0, 30.0])  # differences -1 and 3
    assert unsure.mean_difference == 1.0 and (unsure.ci_low, unsure.ci_high) == (-1.0, 3.0)
    assert not unsure.established
    with pytest.raises(ValueError, match="the same images"):
        paired_comparison([1.0], [1.0, 2.0])


def test_mean_over_seeds_by_hand() -> None:
    seeds = [
        {"psnr_y": 33.0, "ssim_y": 0.90, "mean_error_r": 1.0, "max_worst_channel_error": 2.5},
        {"psnr_y": 34.0, "ssim_y": 0.94, "mean_error_r": -3.0, "max_worst_channel_error": 0.5},
        {"psnr_y": 35.0, "ssim_y": 0.92, "mean_error_r": 0.5, "max_worst_channel_error": 1.0},
    ]
    combined = mean_over_seeds(seeds, spread=("psnr_y", "ssim_y"))
    assert combined["psnr_y"] == pytest.approx(34.0) and combined["ssim_y"] == pytest.approx(0.92)
    assert combined["mean_error_r"] == pytest.approx(-0.5) and combined["max_worst_channel_error"] == 2.5  # the worst, not the mean
    # sample sd: sqrt(((-1)^2 + 0^2 + 1^2) / (3 - 1)) = 1; sqrt((0.02^2 + 0.02^2) / 2) = 0.02
    assert combined["psnr_y_sd"] == pytest.approx(1.0) and combined["ssim_y_sd"] == pytest.approx(0.02)
    assert "mean_error_r_sd" not in combined


def test_one_seed_has_no_spread() -> None:
    one = {"psnr_y": 33.0, "ssim_y": 0.9}
    assert mean_over_seeds([one]) == one
