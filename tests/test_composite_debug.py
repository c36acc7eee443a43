"""Debug pictures: labelled strips and contact sheets are uint8 RGB of the expected layout."""

import numpy as np
import torch

from vidswap.composite.debug import contact_sheet, strip, to_uint8_rgb


def test_strip_layout_and_inputs_of_any_kind():
    target = torch.rand(1, 3, 64, 48)
    render = np.random.default_rng(0).integers(0, 65536, (64, 48, 3)).astype(np.uint16)
    mask = torch.rand(1, 64, 48)
    final = np.random.default_rng(1).random((32, 24, 3)).astype(np.float32)  # resized to the panel height
    img = strip(target, render, mask, final, gap=4)
    assert img.dtype == np.uint8 and img.shape == (64, 4 * 48 + 3 * 4, 3)
    assert (img[:, 48:52] == 0).all()  # separators
    panel = img[:, 2 * 52 : 2 * 52 + 48]
    assert (panel[..., 0] == panel[..., 1]).mean() > 0.95  # the mask panel is grey (except the label)
    plain = to_uint8_rgb(target)
    assert not np.array_equal(img[:, :48], plain)  # a label was drawn
    assert np.array_equal(img[40:, :48], plain[40:])  # ... only at the top


def test_contact_sheet_grid():
    pairs = [(torch.rand(3, 50, 40), torch.rand(3, 50, 40)) for _ in range(5)]
    sheet = contact_sheet(pairs, cols=2, cell_height=64, labels=[f"f{i}" for i in range(5)], gap=4)
    cell_w = 2 * round(40 * 64 / 50) + 2
    assert sheet.dtype == np.uint8
    assert sheet.shape == (3 * 64 + 2 * 4, 2 * cell_w + 4, 3)
    assert sheet[2 * 68 :, cell_w + 4 :].max() == 0  # the 6th cell is empty
    assert contact_sheet([], cols=3).shape == (1, 1, 3)
