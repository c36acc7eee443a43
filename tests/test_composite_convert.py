"""Plate pixels <-> float tensors: every code of every integer format round-trips bit-exactly."""

import numpy as np
import pytest
import torch

from vidswap.composite.convert import from_float, to_float
from vidswap.errors import InputError


@pytest.mark.parametrize("dtype,top", [(np.uint8, 255), (np.uint16, 65535)])
def test_all_integer_codes_round_trip(dtype, top):
    codes = np.arange(top + 1, dtype=np.int64)
    img = np.stack([codes, codes[::-1], (codes * 7919) % (top + 1)], axis=-1).astype(dtype).reshape(1, -1, 3)
    t = to_float(img)
    assert t.dtype == torch.float32 and t.shape == (3, 1, top + 1)
    assert float(t.min()) == 0.0 and float(t.max()) == 1.0
    back = from_float(t, dtype)
    assert back.dtype == dtype and back.shape == img.shape
    np.testing.assert_array_equal(back, img)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_float_round_trip_is_exact_including_hdr(dtype):
    rng = np.random.default_rng(0)
    img = (rng.standard_normal((2, 5, 7, 3)) * 4).astype(dtype)  # negatives and > 1 (scene-referred)
    img[0, 0, 0, 0] = np.nan
    t = to_float(img)
    assert t.shape == (2, 3, 5, 7)
    back = from_float(t, dtype)
    assert back.tobytes() == img.tobytes()


def test_integer_output_clips_and_rounds():
    t = torch.tensor([[[-0.5, 0.5 / 255, 1.6 / 255, 2.0, float("nan")]]]).expand(3, 1, 5)
    out = from_float(t, np.uint8)[0, :, 0]
    np.testing.assert_array_equal(out, [0, 0, 2, 255, 0])  # 0.5 rounds half to even


def test_bad_inputs_raise_input_error():
    with pytest.raises(InputError):
        to_float(np.zeros((4, 4, 3), np.int32))
    with pytest.raises(InputError):
        to_float(np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError):
        from_float(torch.zeros(3, 4, 4), np.int8)
