"""Tests of the MATLAB-compatible bicubic resize in srbench.degradation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from srbench.degradation import (
    ROUNDINGS,
    degrade,
    imresize,
    imresize_tensor,
    modcrop,
    resize_matrix,
    upscale_bicubic,
)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("factor_kind", ["down", "up"])
def test_constant_image_stays_constant(scale: int, factor_kind: str) -> None:
    factor = 1.0 / scale if factor_kind == "down" else float(scale)
    image_u8 = np.full((24, 36, 3), 173, dtype=np.uint8)
    out_u8 = imresize(image_u8, factor)
    assert out_u8.dtype == np.uint8
    assert np.array_equal(out_u8, np.full_like(out_u8, 173))

    image_f = np.full((24, 36), 0.3721, dtype=np.float64)
    out_f = imresize(image_f, factor)
    assert out_f.dtype == np.float64
    # Weights sum to 1, so only floating-point rounding (a few ulps) can separate the result from 0.3721.
    np.testing.assert_allclose(out_f, 0.3721, rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    ("shape", "factor", "expected"),
    [
        ((13, 17), 0.5, (7, 9)),
        ((12, 18, 3), 3.0, (36, 54, 3)),
        ((12, 18), 1.0 / 3.0, (4, 6)),
        ((300, 301), 1.0 / 3.0, (100, 101)),
        ((5, 7, 3), 4.0, (20, 28, 3)),
    ],
)
def test_output_sizes(shape: tuple[int, ...], factor: float, expected: tuple[int, ...]) -> None:
    assert imresize(np.zeros(shape, dtype=np.uint8), factor).shape == expected


@pytest.mark.parametrize("in_size", [1, 2, 5, 13, 40])
@pytest.mark.parametrize("factor", [0.25, 1.0 / 3.0, 0.5, 2.0, 3.0, 4.0])
def test_matrix_rows_sum_to_one(in_size: int, factor: float) -> None:
    matrix = resize_matrix(in_size, factor)
    assert matrix.dtype == np.float64
    assert matrix.shape == (int(np.ceil(in_size * factor - 1e-9)), in_size)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_linear_ramp_stays_linear_after_downscaling() -> None:
    # Column c (0-based) holds 3c + 10. Output column o (0-based) is x = o + 1 (1-based), which maps to
    # 1-based input u = x/(1/2) + 0.5*(1 - 2) = 2x - 0.5, i.e. 0-based position u - 1 = 2o + 0.5 (the
    # midpoint of input columns 2o and 2o + 1). Cubic convolution reproduces linear functions, so away
    # from the mirrored edges the output is 3(2o + 0.5) + 10.
    width = 40
    ramp = np.tile(3.0 * np.arange(width) + 10.0, (16, 1))
    out = imresize(ramp, 0.5)
    o = np.arange(out.shape[1])
    expected = 3.0 * (2.0 * o + 0.5) + 10.0
    interior = slice(3, out.shape[1] - 3)  # the 8-wide antialiased kernel reaches 4 inputs = 2 outputs
    np.testing.assert_allclose(out[:, interior], np.broadcast_to(expected[interior], out[:, interior].shape), atol=1e-10)
    assert not np.allclose(out[:, 0], expected[0])  # the edge is mirrored, not extrapolated


def test_upscale_weights_by_hand() -> None:
    # Keys kernel, a = -0.5: k(t) = 1.5|t|^3 - 2.5|t|^2 + 1 for |t| <= 1,
    #                        k(t) = -0.5|t|^3 + 2.5|t|^2 - 4|t| + 2 for 1 < |t| <= 2.
    # k(0.25) = 0.0234375 - 0.15625 + 1          = 0.8671875
    # k(0.75) = 0.6328125 - 1.40625 + 1          = 0.2265625
    # k(1.25) = -0.9765625 + 3.90625 - 5 + 2     = -0.0703125
    # k(1.75) = -2.6796875 + 7.65625 - 7 + 2     = -0.0234375
    # x2 upscaling maps 1-based output x to u = x/2 + 0.5*(1 - 1/2) = x/2 + 0.25.
    # x = 2 -> u = 1.25: inputs 0, 1, 2, 3 at distances 1.25, 0.25, -0.75, -1.75
    #   -> weights [-0.0703125, 0.8671875, 0.2265625, -0.0234375]; input 0 mirrors onto input 1,
    #   so the matrix row is [0.796875, 0.2265625, -0.0234375, 0, ...].
    # x = 6 -> u = 3.25: inputs 2..5 get [-0.0703125, 0.8671875, 0.2265625, -0.0234375].
    # x = 7 -> u = 3.75: inputs 2..5 at distances 1.75, 0.75, -0.25, -1.25
    #   -> [-0.0234375, 0.2265625, 0.8671875, -0.0703125] (the sequence quoted for "pixel 2" in the
    #   brief belongs to the odd outputs; pixel 2 gets its mirror image).
    # All weights already sum to 1, so normalisation changes nothing. Columns below are 0-based.
    matrix = resize_matrix(20, 2.0)
    assert matrix.shape == (40, 20)
    row2 = np.zeros(20)
    row2[:3] = [0.796875, 0.2265625, -0.0234375]
    np.testing.assert_allclose(matrix[1], row2, rtol=0, atol=1e-15)
    row6 = np.zeros(20)
    row6[1:5] = [-0.0703125, 0.8671875, 0.2265625, -0.0234375]
    np.testing.assert_allclose(matrix[5], row6, rtol=0, atol=1e-15)
    row7 = np.zeros(20)
    row7[1:5] = [-0.0234375, 0.2265625, 0.8671875, -0.0703125]
    np.testing.assert_allclose(matrix[6], row7, rtol=0, atol=1e-15)


def test_symmetric_padding_at_both_ends() -> None:
    # x2 downscaling of a length-4 signal: kernel width 8, weights h(t) = 0.5 k(0.5 t), k as above.
    # Output 1 -> u = 1/0.5 + 0.5*(1 - 2) = 1.5; nonzero taps j = -2..5 (1-based) at distances 3.5..-3.5:
    #   j = 1, 2: 0.5 k(0.25) = 0.43359375     j = 0, 3: 0.5 k(0.75) = 0.11328125
    #   j = -1, 4: 0.5 k(1.25) = -0.03515625   j = -2, 5: 0.5 k(1.75) = -0.01171875
    # Symmetric padding folds j = 0 -> 1, -1 -> 2, -2 -> 3 and 5 -> 4, so the row is
    #   [0.43359375 + 0.11328125, 0.43359375 - 0.03515625, 0.11328125 - 0.01171875, -0.03515625 - 0.01171875]
    # = [0.546875, 0.3984375, 0.1015625, -0.046875]. Output 2 (u = 3.5) sees the mirror image.
    matrix = resize_matrix(4, 0.5)
    row = np.array([0.546875, 0.3984375, 0.1015625, -0.046875])
    np.testing.assert_allclose(matrix, np.stack([row, row[::-1]]), rtol=0, atol=1e-15)


@pytest.mark.parametrize("factor", [0.5, 1.0 / 3.0, 0.25, 2.0, 3.0, 4.0])
def test_interior_matches_pillow_bicubic(factor: float) -> None:
    # Pillow's BICUBIC uses the same Keys kernel (a = -0.5), the same pixel-centre mapping and the same
    # antialiased support when downscaling; it differs only near the edges, where it truncates and
    # renormalises the kernel instead of mirroring. So the interiors must agree (up to Pillow's float32).
    rng = np.random.default_rng(1)
    image = rng.random((72, 96)).astype(np.float32)
    ours = imresize(image.astype(np.float64), factor)
    height, width = ours.shape
    theirs = np.asarray(Image.fromarray(image, mode="F").resize((width, height), Image.Resampling.BICUBIC))
    border = int(2 * max(factor, 1.0)) + 2
    np.testing.assert_allclose(ours[border:-border, border:-border], theirs[border:-border, border:-border], atol=1e-6)


def test_uint8_rounding_and_clipping() -> None:
    # A sharp black/white edge overshoots (negative lobes) when upscaled: the uint8 result must be clipped,
    # and with rounding "once" equal the rounded float result.
    image = np.zeros((8, 8), dtype=np.uint8)
    image[:, 4:] = 255
    as_float = imresize(image.astype(np.float64), 3.0)
    assert as_float.max() > 255 and as_float.min() < 0
    expected = np.clip(np.rint(as_float), 0, 255).astype(np.uint8)
    assert np.array_equal(imresize(image, 3.0, "once"), expected)


def _matlab_two_pass(image: np.ndarray, factor: float) -> np.ndarray:
    """MATLAB's uint8 imresize spelled out: per channel, rows (height) then columns, each pass cast
    to uint8 (round half away from zero, saturate)."""

    def to_uint8(x: np.ndarray) -> np.ndarray:
        return np.clip(np.floor(x + 0.5), 0, 255)

    weights_h = resize_matrix(image.shape[0], factor)
    weights_w = resize_matrix(image.shape[1], factor)
    channels = [to_uint8(to_uint8(weights_h @ image[..., c].astype(np.float64)) @ weights_w.T) for c in range(image.shape[2])]
    return np.stack(channels, axis=2).astype(np.uint8)


@pytest.mark.parametrize("factor", [0.5, 1.0 / 3.0, 0.25, 2.0, 3.0, 4.0])
def test_per_pass_is_matlab_uint8_two_pass(factor: float) -> None:
    # Full range, so that the first pass also overshoots [0, 255] and is saturated.
    image = np.random.default_rng(5).integers(0, 256, (24, 36, 3), dtype=np.uint8)
    expected = _matlab_two_pass(image, factor)
    assert np.array_equal(imresize(image, factor, "per_pass"), expected)
    assert np.array_equal(imresize(image, factor), expected)  # the default


def test_per_pass_rounds_half_away_from_zero() -> None:
    # Height 4 -> 2 at x1/2: the rows of resize_matrix(4, 0.5) are [0.546875, 0.3984375, 0.1015625, -0.046875]
    # and its mirror image, so the column [4, 0, 4, 2] gives 2.1875 + 0.40625 - 0.09375 = 2.5 and
    # -0.1875 + 1.59375 + 1.09375 = 2.5 (exact in binary). Width 1 stays 1 (a single weight of 1).
    # MATLAB's uint8 cast rounds 2.5 up to 3; "once" rounds half to even, like NumPy and BasicSR.
    image = np.array([4, 0, 4, 2], dtype=np.uint8).reshape(4, 1)
    np.testing.assert_array_equal(imresize(image.astype(np.float64), 0.5), [[2.5], [2.5]])
    assert imresize(image, 0.5, "per_pass").ravel().tolist() == [3, 3]
    assert imresize(image, 0.5, "once").ravel().tolist() == [2, 2]


@pytest.mark.parametrize("factor", [0.5, 1.0 / 3.0, 0.25, 2.0, 3.0, 4.0])
def test_roundings_differ_by_at_most_one_level_without_saturation(factor: float) -> None:
    # With values in [32, 223] no pass leaves [0, 255], so the schemes differ only through the first
    # pass's rounding error (|e| <= 0.5), weighted by the second pass (sum of |weights| < 2): at most one
    # level. Measured: 9-22% of values differ, depending on the factor.
    image = np.random.default_rng(6).integers(32, 224, (60, 72, 3), dtype=np.uint8)
    diff = imresize(image, factor, "per_pass").astype(np.int64) - imresize(image, factor, "once")
    assert np.abs(diff).max() == 1
    assert 0.05 < np.mean(diff != 0) < 0.3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_input_ignores_rounding(dtype: type) -> None:
    image = np.random.default_rng(7).random((13, 17, 3)).astype(dtype)
    for factor in (0.5, 3.0):
        once = imresize(image, factor, "once")
        assert once.dtype == dtype
        assert np.array_equal(imresize(image, factor, "per_pass"), once)


def test_invalid_rounding_raises() -> None:
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    assert ROUNDINGS == ("per_pass", "once")
    with pytest.raises(ValueError, match="rounding='twice'"):
        imresize(image, 0.5, "twice")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rounding='nearest'"):
        degrade(image, 2, "nearest")  # type: ignore[arg-type]


@pytest.mark.parametrize("factor", [2.0, 3.0, 4.0, 0.5, 0.25])
def test_tensor_matches_numpy(factor: float) -> None:
    rng = np.random.default_rng(2)
    image = rng.random((2, 3, 11, 14))
    expected = np.stack([np.stack([imresize(image[n, c], factor) for c in range(3)]) for n in range(2)])
    x32 = torch.from_numpy(image.astype(np.float32))
    out32 = imresize_tensor(x32, factor)
    assert out32.dtype == torch.float32
    assert out32.shape == expected.shape
    np.testing.assert_allclose(out32.numpy(), expected, atol=1e-5)
    out64 = imresize_tensor(torch.from_numpy(image), factor)
    assert out64.dtype == torch.float64
    np.testing.assert_allclose(out64.numpy(), expected, atol=1e-12)


def test_tensor_gradients_flow() -> None:
    x = torch.rand(1, 3, 6, 5, dtype=torch.float64, requires_grad=True)
    out = imresize_tensor(x, 2.0)
    assert out.requires_grad
    out.sum().backward()
    assert x.grad is not None
    # d(sum of outputs)/d(input) is the column sum of W_h times the column sum of W_w.
    expected = np.outer(resize_matrix(6, 2.0).sum(axis=0), resize_matrix(5, 2.0).sum(axis=0))
    np.testing.assert_allclose(x.grad[0, 0].numpy(), expected, atol=1e-12)
    assert torch.autograd.gradcheck(lambda t: imresize_tensor(t, 3.0), (x,))


@pytest.mark.parametrize(
    ("shape", "scale", "expected"),
    [((13, 17, 3), 2, (12, 16, 3)), ((12, 18), 3, (12, 18)), ((255, 130, 3), 4, (252, 128, 3))],
)
def test_modcrop_sizes(shape: tuple[int, ...], scale: int, expected: tuple[int, ...]) -> None:
    image = np.arange(np.prod(shape)).reshape(shape)
    cropped = modcrop(image, scale)
    assert cropped.shape == expected
    assert np.array_equal(cropped, image[: expected[0], : expected[1]])  # keeps top-left


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_degrade_and_upscale_shapes_and_dtypes(scale: int, rounding: str) -> None:
    rng = np.random.default_rng(scale)
    hr = modcrop(rng.integers(0, 256, (50, 38, 3), dtype=np.uint8), scale)
    lr = degrade(hr, scale, rounding)
    assert lr.dtype == np.uint8
    assert lr.shape == (hr.shape[0] // scale, hr.shape[1] // scale, 3)
    assert np.array_equal(lr, imresize(hr, 1.0 / scale, rounding))
    up = upscale_bicubic(lr, scale, rounding)
    assert up.dtype == np.uint8
    assert up.shape == hr.shape
    assert np.array_equal(up, imresize(lr, float(scale), rounding))


def test_degrade_rejects_size_not_multiple_of_scale() -> None:
    with pytest.raises(ValueError, match="multiple"):
        degrade(np.zeros((13, 12, 3), dtype=np.uint8), 2)
    with pytest.raises(ValueError, match="uint8"):
        degrade(np.zeros((12, 12, 3), dtype=np.float32), 2)
