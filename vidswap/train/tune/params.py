"""The settings of per-clip generator tuning: the job config's ``tune`` section (declared once, here)."""

from __future__ import annotations

from vidswap.sections import TuneParams  # noqa: F401 - declared there (torch-free)


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
