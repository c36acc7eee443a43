"""composite.filters: the per-item blur (kornia) keeps its per-item sigma and truncation radius; the O(log r)
morphology equals kornia's morphology with the same structuring element, bit for bit, on OpenCV (float CPU tensors)
and on the torch operations alike."""

from __future__ import annotations

import kornia
import numpy as np
import torch

from vidswap.composite.filters import dilate, erode, gaussian_blur


def _reference_blur(image: np.ndarray, sigma: float, radius: int) -> np.ndarray:
    """Separable truncated Gaussian, replicate border, written out in numpy (float64)."""
    t = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    pad = np.pad(image, radius, mode="edge")
    rows = sum(k[i] * pad[i:i + image.shape[0], :] for i in range(2 * radius + 1))
    return sum(k[i] * rows[:, i:i + image.shape[1]] for i in range(2 * radius + 1))


def test_blur_per_item_sigma_and_radius_match_the_definition():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((4, 1, 40, 50), dtype=np.float32))
    sigma = torch.tensor([1.0, 2.5, 0.0, 4.0])
    radius = torch.tensor([3.0, 5.0, 6.0, 2.0])  # three radii in one batch; a zero sigma leaves its item alone
    out = gaussian_blur(x, sigma, radius)
    for i in range(4):
        want = x[i, 0].numpy() if sigma[i] == 0 else _reference_blur(x[i, 0].double().numpy(), float(sigma[i]),
                                                                      int(radius[i]))
        np.testing.assert_allclose(out[i, 0].numpy(), want, atol=2e-6)


def test_blur_on_opencv_kornia_and_with_gradient_match_the_definition():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.random((3, 4, 23, 37)))  # float64; channels and items blurred independently
    sigma, radius = torch.tensor([0.8, 3.0, 6.0]), torch.tensor([3.0, 9.0, 18.0])  # reach past the 23 rows
    before = x.clone()
    outs = [gaussian_blur(x, sigma, radius), gaussian_blur(x.float(), sigma, radius),
            gaussian_blur(x.float(), sigma, radius, opencv=False),
            gaussian_blur(x.float().requires_grad_(), sigma, radius).detach()]  # autograd: kornia
    assert torch.equal(x, before) and outs[0].dtype == torch.float64 and outs[1].dtype == torch.float32
    for out, tol in zip(outs, (1e-12, 2e-6, 2e-6, 2e-6)):
        for i in range(3):
            for c in range(4):
                want = _reference_blur(x[i, c].numpy(), float(sigma[i]), int(radius[i]))
                np.testing.assert_allclose(out[i, c].double().numpy(), want, atol=tol)


def test_opencv_blur_keeps_ones_exactly_one_and_masks_in_range():
    """The OpenCV path's taps sum to exactly 1 in float32 and float64, whatever the order: a mask's interior
    stays exactly 1 (full strength downstream) and a blurred mask never leaves [0, 1]."""
    rng = np.random.default_rng(3)
    for dtype in (torch.float32, torch.float64):
        mask = torch.zeros(2, 1, 61, 67, dtype=dtype)
        mask[:, :, 10:50, 8:60] = 1.0
        mask[1, 0, 20:30, 20:30] = torch.from_numpy(rng.random((10, 10))).to(dtype)
        out = gaussian_blur(mask, torch.tensor([0.7, 4.3]), torch.tensor([3.0, 13.0]))
        assert torch.all(out[0, 0, 14:46, 12:56] == 1.0) and torch.all(out[1, 0, 10 + 13:50 - 13, 45:60 - 13] == 1.0)
        assert float(out.min()) >= 0.0 and float(out.max()) == 1.0
        ones = torch.ones(1, 2, 9, 40, dtype=dtype)
        assert torch.equal(gaussian_blur(ones, 2.9), ones)


def test_blur_never_reaches_past_its_radius():
    x = torch.zeros(2, 1, 31, 31)
    x[:, :, 15, 15] = 1.0
    out = gaussian_blur(x, torch.tensor([3.0, 3.0]), torch.tensor([2.0, 4.0]))
    assert out[0, 0, 15, 18] == 0.0 and out[0, 0, 15, 17] > 0  # item 0 stops at 2 px, item 1 at 4 px
    assert out[1, 0, 15, 20] == 0.0 and out[1, 0, 15, 19] > 0
    assert torch.allclose(out.sum(dim=(2, 3)), torch.ones(2, 1))


def _element(radius: int, shape: str) -> torch.Tensor:
    impulse = torch.zeros(1, 1, 2 * radius + 3, 2 * radius + 3)
    impulse[..., radius + 1, radius + 1] = 1.0
    return dilate(impulse, radius, shape=shape)[0, 0, 1:-1, 1:-1]


def test_morphology_equals_kornia_with_the_same_element():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.random((3, 1, 48, 64), dtype=np.float32))
    for shape, radius in (("octagon", 4), ("octagon", 7), ("square", 3)):
        kernel = _element(radius, shape)
        assert kernel[radius, 0] == 1 and kernel[radius, -1] == 1  # the element reaches the radius on the axes
        assert torch.equal(erode(x, radius, shape), kornia.morphology.erosion(x, kernel, border_type="geodesic"))
        assert torch.equal(dilate(x, radius, shape), kornia.morphology.dilation(x, kernel, border_type="geodesic"))


def test_morphology_on_opencv_equals_the_torch_operations_bit_for_bit():
    """Float CPU tensors go to OpenCV (the octagon part by part on a padded plane): the same values as the doubling
    torch operations for every radius 0-40, per-item radii, two channels, float32 and float64, planes smaller
    than the element and soft, signed values."""
    rng = np.random.default_rng(7)
    for dtype in (torch.float32, torch.float64):
        for h, w in ((48, 64), (7, 5), (1, 30)):
            x = rng.random((2, 2, h, w)) * (rng.random((2, 2, h, w)) > 0.3) - 0.25 * (rng.random((2, 2, h, w)) > 0.9)
            x = torch.from_numpy(x).to(dtype)
            for r in range(41):
                for shape in ("octagon", "square"):
                    for fn in (erode, dilate):
                        radii = torch.tensor([float(r), float(r // 3)])
                        got, want = fn(x, radii, shape), fn(x, radii, shape, opencv=False)
                        assert got.dtype == dtype and torch.equal(got, want), (dtype, h, w, r, shape, fn.__name__)
    x = torch.rand(1, 1, 20, 20)
    assert torch.equal(erode(x, 0), x) and erode(x[:, :, :0], 3).shape == (1, 1, 0, 20)
    assert torch.equal(_element(6, "octagon"), dilate(torch.nn.functional.pad(torch.ones(1, 1, 1, 1), (7, 7, 7, 7)),
                                                      6, opencv=False)[0, 0, 1:-1, 1:-1])


def test_support_window_is_the_bounding_box_of_positive_values_grown_and_clipped():
    """The NumPy path (CPU float, uint8, bool) and the torch path (bfloat16 here, any device) both give the rows and
    columns where any item and channel is > 0 (NaN and negative values are not), grown by the margin and clipped;
    None when there is none. Non-contiguous tensors included."""
    from vidswap.composite.filters import support_window

    rng = np.random.default_rng(5)

    def expected(x: np.ndarray, margin: int):
        inside = (x > 0).reshape(-1, *x.shape[-2:]).any(0)
        ys, xs = np.nonzero(inside)
        if len(ys) == 0:
            return None
        h, w = inside.shape
        return (slice(max(ys.min() - margin, 0), min(ys.max() + margin + 1, h)),
                slice(max(xs.min() - margin, 0), min(xs.max() + margin + 1, w)))

    for _ in range(40):
        b, c, h, w = rng.integers(1, 4), rng.integers(1, 3), rng.integers(1, 30), rng.integers(1, 30)
        x = np.zeros((b, c, h, w), np.float32)
        n = rng.integers(0, 4)
        x.reshape(-1)[rng.integers(0, x.size, n)] = rng.choice([0.5, -1.0, np.nan, 1e-30], n)
        margin = int(rng.integers(0, 4))
        want = expected(x, margin)
        t = torch.from_numpy(x)
        for variant in (t, t.double(), (t > 0).to(torch.uint8), t > 0, t.to(torch.bfloat16),
                        t.transpose(-1, -2).contiguous().transpose(-1, -2)):
            assert support_window(variant, margin) == want
    assert support_window(torch.zeros(2, 1, 5, 5), 2) is None


def test_below_box_filters_down_and_upsamples_back():
    from vidswap.composite.filters import below

    x = torch.arange(30, dtype=torch.float32).reshape(1, 1, 5, 6)
    seen = []

    def keep(small):
        seen.append(small.clone())
        return small

    assert torch.equal(below(x, 1, keep), x) and torch.equal(seen[0], x)
    out = below(x, 2, keep)
    # 2x2 block means; the last row is padded with zeros (constant) -> (24 + 25) / 4, ...
    assert torch.equal(seen[1], torch.tensor([[[[3.5, 5.5, 7.5], [15.5, 17.5, 19.5], [12.25, 13.25, 14.25]]]]))
    assert out.shape == x.shape
    assert torch.equal(out, torch.nn.functional.interpolate(seen[1], scale_factor=2, mode="bilinear",
                                                            align_corners=False)[..., :5, :6])
    below(x, 2, keep, pad="replicate")  # the partial row's block repeats row 4: mean of 24..26 twice
    assert torch.equal(seen[2][..., 2, :], torch.tensor([[[24.5, 26.5, 28.5]]]))
