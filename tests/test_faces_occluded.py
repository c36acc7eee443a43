"""Face landmarks behind a hand follow the face's image motion (vidswap.faces.occluded), synthetic data."""

import numpy as np

from vidswap.faces.motion import motion_path
from vidswap.faces.occluded import hand_hulls, hold_occluded, inside_hulls, occluded_noise_gain, occluded_points

SQUARE = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])


def test_inside_hulls_either_winding_and_a_margin():
    pts = np.array([[5.0, 5.0], [10.5, 5.0], [11.5, 5.0], [5.0, -0.9], [-3.0, 5.0]])
    for hull in (SQUARE, SQUARE[::-1]):
        assert inside_hulls(pts, [hull]).tolist() == [True, False, False, False, False]
        assert inside_hulls(pts, [hull], margin=1.0).tolist() == [True, True, False, True, False]
    assert inside_hulls(pts, [SQUARE + 20.0, SQUARE]).tolist() == [True, False, False, False, False]
    assert not inside_hulls(pts, [SQUARE[:2]]).any()  # a degenerate outline holds nothing


def test_occluded_points_per_frame_margin_in_face_units():
    face = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [0.0, -2.0]])  # RMS radius 2
    track = np.stack([face + [30.0, 30.0], face + [5.0, 5.0]])
    hand = np.zeros((1, 21, 3), np.float32)  # as stored in the tracks file (a strided x, y view for OpenCV)
    hand[0, :, :2] = SQUARE[np.arange(21) % 4]
    occ = occluded_points(track, [np.zeros((0, 21, 3)), hand], margin=0.5)  # 1 px
    assert occ[0].tolist() == [False] * 4
    assert occ[1].tolist() == [True] * 4  # (7, 5), (3, 5), (5, 7), (5, 3) inside the square
    hand[0, :, 0] += 3.5  # x from 3.5: (3, 5) is 0.5 px outside, within the margin
    assert occluded_points(track, [hand, hand], margin=0.5)[1].tolist() == [True] * 4
    hand[0, :, 0] += 1.0  # x from 4.5: 1.5 px outside
    assert occluded_points(track, [hand, hand], margin=0.5)[1].tolist() == [True, False, True, True]
    assert len(hand_hulls(hand)) == 1


def test_hold_occluded_follows_the_path_and_interpolates_the_departure():
    T = 7
    path = np.zeros((T, 2, 2))
    path[:, :, 0] = np.arange(T)[:, None] * 3.0  # the face moves 3 px a frame to the right
    track = np.zeros((T, 2, 3))
    track[..., :2] = path
    track[:, 1, 0] += np.linspace(0.0, 6.0, T)  # point 1 drifts away from the path by 1 px a frame
    track[:, 1, 2] = np.linspace(0.0, 0.6, T)
    noisy = track.copy()
    noisy[2:5, 1] += [[9.0, -7.0, 0.5], [-8.0, 4.0, -0.3], [5.0, 5.0, 0.2]]  # the model's guesses behind a hand
    occ = np.zeros((T, 2), bool)
    occ[2:5, 1] = True
    held = hold_occluded(noisy, path, occ)
    np.testing.assert_allclose(held, track, atol=1e-12)
    assert hold_occluded(noisy, path, np.zeros((T, 2), bool)).tolist() == noisy.tolist()


def test_hold_occluded_holds_at_the_ends_and_leaves_a_never_seen_point():
    T = 5
    path = np.zeros((T, 2, 2))
    track = np.arange(T * 2 * 3, dtype=float).reshape(T, 2, 3)
    occ = np.zeros((T, 2), bool)
    occ[:2, 0] = True  # hidden at the start: departure of frame 2 held
    occ[:, 1] = True  # never seen
    held = hold_occluded(track, path, occ)
    assert held[:2, 0].tolist() == [track[2, 0].tolist()] * 2
    assert held[:, 1].tolist() == track[:, 1].tolist()


def test_hold_occluded_on_a_rotating_motion_path():
    angle = 0.05
    m = np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0]])
    motions = np.stack([np.full((2, 3), np.nan)] + [m] * 9)
    start = np.array([[10.0, 0.0], [0.0, 10.0]])
    path = motion_path(start, motions)
    track = np.concatenate([path, np.zeros((10, 2, 1))], 2)
    noisy = track.copy()
    noisy[3:8, 0, :2] += 4.0
    occ = np.zeros((10, 2), bool)
    occ[3:8, 0] = True
    np.testing.assert_allclose(hold_occluded(noisy, path, occ), track, atol=1e-9)


def test_occluded_noise_gain_is_one_plus_weight_times_the_hidden_fraction():
    occ = np.zeros((3, 4), bool)
    occ[1, :2] = True
    occ[2] = True
    np.testing.assert_array_equal(occluded_noise_gain(occ, 10.0), [1.0, 6.0, 11.0])
    assert occluded_noise_gain(occ, 0.0) is None
