"""The plate's skin colour statistics per face, measured in the analyze pass and smoothed over each track there,
so the compositor's colour match of a frame depends on that frame alone (farm chunks agree with a single pass)."""

from __future__ import annotations

import numpy as np
import torch

from vidswap.composite.colour import masked_lab_stats, pack_stats
from vidswap.composite.compositor import CompositeParams, build_masks
from vidswap.composite.roi import region_crops
from vidswap.faces.align import MeshCrop, transform_landmarks

STATS_CROP_MARGIN = 0.2  # the statistics crop: a mesh crop with this margin (the geometric core's default)


def plate_skin_stats(images: np.ndarray | list[np.ndarray], points: np.ndarray | list[np.ndarray],
                     regions: dict[str, np.ndarray], crop_size: int = 128,
                     device: torch.device | str = "cpu") -> np.ndarray | list[np.ndarray]:
    """The plate's skin colour statistics of each face, as the compositor samples them.

    Args:
        images: one HxWx3 RGB frame (uint8 / uint16 / float), or a list of frames (a batch: one batched mask
            and statistics pass over every face of every frame, much cheaper than frame by frame).
        points: (N, 478, 3) landmarks of the N faces in frame pixels, or a list of them (one per frame).

    Returns:
        (N, 6) float32 masked LAB mean and std (:func:`pack_stats`), NaN rows where too little skin is visible;
        a list of them for a list of frames.
    """
    if not isinstance(images, (list, tuple)):
        return plate_skin_stats([images], [points], regions, crop_size, device)[0]
    counts = [len(p) for p in points]
    if sum(counts) == 0:
        return [np.zeros((0, 6), np.float32) for _ in counts]
    crop = MeshCrop(size=crop_size, margin=STATS_CROP_MARGIN)
    crops, lms = [], []
    for image, pts in zip(images, points):
        if len(pts) == 0:
            continue
        lm = torch.from_numpy(np.asarray(pts, np.float32)).to(device)
        frame_to_crop = crop.frame_to_crop(lm)
        crops.append(region_crops(image, frame_to_crop, crop_size, device))  # the faces' region, not the frame
        lms.append(transform_landmarks(lm, frame_to_crop))
    crop_images = torch.cat(crops)
    masks = build_masks(crop_images, torch.cat(lms), regions, CompositeParams())
    stats = pack_stats(*masked_lab_stats(crop_images, masks.stats)).cpu().numpy().astype(np.float32)
    enough = masks.stats.sum(dim=(1, 2, 3)).cpu().numpy() >= 64 * (crop_size / 256) ** 2
    stats[~enough] = np.nan
    bounds = np.cumsum([0] + counts)
    return [stats[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
