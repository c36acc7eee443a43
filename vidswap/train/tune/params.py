"""The settings of per-clip generator tuning: the job config's ``tune`` section (declared once, here)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TuneParams:
    """Settings of per-clip generator tuning.

    Attributes:
        enabled: run tuning at all (the pipeline's switch; ``--tune/--no-tune``).
        retune: tune again even when the job folder has weights for these inputs (``--retune``).
        steps: optimisation steps on CUDA.
        cpu_steps: optimisation steps on CPU (tuning is ~50x slower there).
        lr: Adam learning rate of the network weights.
        gain_lr: learning rate of the zero-initialised output gains γ.
        batch: samples per step (self-reenactment pairs + swap frames).
        swap_fraction: share of the batch given to the swap branch (rounded to whole consecutive pairs).
        max_frames: frames sampled from the clip (evenly, as consecutive pairs).
        pairs_per_frame: texture frames rendered onto each sampled frame (self-reenactment pool).
        texture_frames: frames (evenly spread) that texture the self-reenactment renders.
        val_fraction: share of the consecutive pairs held out for validation.
        val_every: steps between validations (early stopping).
        patience: validations without improvement before stopping.
        min_delta: relative improvement of the validation loss that counts.
        w_l1, w_ssim: self-reenactment reconstruction weights (L1, multi-scale 1 - SSIM).
        w_identity: identity hinge weight (swap branch): SFace cosine to the source below the render's.
        identity_every: apply the identity term every N steps (SFace forward + backward is ~40% of a CPU step).
        identity_margin: drops of the SFace cosine below the render's that the hinge tolerates (batch-size
            numerical noise of the identity network is ~1e-4; the acceptance budget is 0.02).
        w_temporal, w_mask_temporal: flow-warped output and mask consistency (swap branch).
        w_mask: blend mask kept near the render's alpha.
        w_locality: PTI weight regulariser (mean squared distance to the starting weights).
        channels: generator channels when no checkpoint is given.
        seed: seeds initialisation and sampling.
        checkpoint: safetensors file of a generic generator to start from (None: the zero-gain initialisation,
            which is exactly the swap core's render).
    """

    # switches
    enabled: bool = False
    retune: bool = False
    # budget and optimiser
    steps: int = 300
    cpu_steps: int = 40
    lr: float = 1e-3
    gain_lr: float = 1e-2
    batch: int = 8
    swap_fraction: float = 0.5
    # the training set
    max_frames: int = 48
    pairs_per_frame: int = 3
    texture_frames: int = 8
    # validation and early stopping
    val_fraction: float = 0.15
    val_every: int = 5
    patience: int = 4
    min_delta: float = 1e-3
    # loss weights
    w_l1: float = 1.0
    w_ssim: float = 0.5
    w_identity: float = 1.0
    identity_every: int = 2
    identity_margin: float = 0.005
    w_temporal: float = 1.0
    w_mask_temporal: float = 0.5
    w_mask: float = 1.0
    w_locality: float = 10.0
    # the generator
    channels: tuple[int, int, int, int] = (32, 64, 128, 256)
    seed: int = 0
    checkpoint: str | None = None

    def __post_init__(self) -> None:
        if len(self.channels) != 4:
            raise ValueError(f"channels must list 4 widths (encoder levels), got {self.channels!r}")

    def steps_for(self, device: torch.device | str) -> int:
        """The step budget on ``device``: ``steps`` on CUDA, ``cpu_steps`` elsewhere."""
        return self.steps if torch.device(device).type == "cuda" else self.cpu_steps


#: Seconds per CPU tuning step of the default generator at a 256 px crop and batch 8 (benchmarks/RESULTS.md,
#: bench_tune.py on a 2-core machine); other crops and batches scale with their pixel count.
CPU_STEP_SECONDS_256 = 5.1


def cpu_tuning_estimate(params: TuneParams, crop: int) -> tuple[int, float]:
    """(steps, seconds) tuning is expected to take on a CPU with ``crop`` px training crops."""
    per_step = CPU_STEP_SECONDS_256 * (crop / 256) ** 2 * (params.batch / 8)
    return params.cpu_steps, params.cpu_steps * per_step


def cpu_tuning_warning(params: TuneParams, crop: int) -> str:
    """The line said before tuning on a CPU: how long it will take and how to avoid it."""
    steps, seconds = cpu_tuning_estimate(params, crop)
    return (f"tuning on the CPU: {steps} steps at {crop} px, about {seconds / 60:.0f} min "
            f"(~{seconds / steps:.0f} s a step on 2 cores); --no-tune skips it, a CUDA GPU is ~50x faster")
