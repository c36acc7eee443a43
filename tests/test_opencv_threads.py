"""``opencv_threads``: OpenCV's pool narrowed inside the block, restored after (also on an error), and the work
done inside gives the same result as on the full pool."""

import cv2
import numpy as np
import pytest

from vidswap.opencv_threads import opencv_threads


@pytest.fixture
def two_threads():
    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    yield
    cv2.setNumThreads(before)


def test_narrows_and_restores(two_threads):
    with opencv_threads(1):
        assert cv2.getNumThreads() == 1
    assert cv2.getNumThreads() == 2


def test_restores_when_the_block_raises(two_threads):
    with pytest.raises(KeyError):
        with opencv_threads(1):
            raise KeyError("x")
    assert cv2.getNumThreads() == 2


def test_same_count_leaves_the_pool_alone(two_threads):
    with opencv_threads(2):
        assert cv2.getNumThreads() == 2
    assert cv2.getNumThreads() == 2


def test_results_equal_on_one_thread(two_threads):
    rng = np.random.default_rng(0)
    img = rng.random((181, 257), np.float32)
    mask = (rng.random((181, 257)) > 0.3).astype(np.uint8)
    full = (cv2.GaussianBlur(img, (0, 0), 3.0), cv2.distanceTransform(mask, cv2.DIST_L2, cv2.DIST_MASK_PRECISE),
            cv2.resize(img, (97, 61), interpolation=cv2.INTER_AREA))
    with opencv_threads(1):
        one = (cv2.GaussianBlur(img, (0, 0), 3.0), cv2.distanceTransform(mask, cv2.DIST_L2, cv2.DIST_MASK_PRECISE),
               cv2.resize(img, (97, 61), interpolation=cv2.INTER_AREA))
    for a, b in zip(full, one):
        assert np.array_equal(a, b)
