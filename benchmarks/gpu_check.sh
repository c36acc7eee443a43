#!/usr/bin/env bash
# GPU check for issue 19 (prepared on a CPU machine, not run there). One short script for an H100/H200 session:
#   1. the CUDA-only tests (tests/test_composite_device.py: compositor CUDA == CPU; skipped on CPU machines) and
#      the face-region render test on CUDA's device (tests/test_render_region.py);
#   2. `vidswap run --device cuda` at 1920x1080 and 3840x2160 with batch 1, 8 and 32: frames/s end to end and of
#      the render pass, peak GPU memory (torch.cuda.max_memory_allocated), peak RSS.
#
# The device machine has no network: carry the model and media cache with the working tree.
#   here:       benchmarks/gpu_check.sh prepare          # copies ~/.cache/vidswap/{models,media} (~55 MB) to .device/
#   run tool:   carry [".device"], command "bash benchmarks/gpu_check.sh run", timeout_s ~540
# Needs a Python with CUDA torch and the project's dependencies ($PYTHON, default python3); the upscaled plates
# are made there with PyAV (cached in .device/bench). Results go to stdout and $OUT/gpu_check.txt.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
FRAMES="${GPU_FRAMES:-48}"
FRAMES_4K="${GPU_FRAMES_4K:-24}"
BATCHES="${GPU_BATCHES:-1,8,32}"

case "${1:-run}" in
prepare)
    mkdir -p .device/vidswap_home
    cp -r "$HOME/.cache/vidswap/models" "$HOME/.cache/vidswap/media" .device/vidswap_home/
    du -sh .device
    ;;
run)
    export VIDSWAP_HOME="$ROOT/.device/vidswap_home" VIDSWAP_BENCH_CACHE="$ROOT/.device/bench" PYTHONPATH="$ROOT"
    out="${OUT:-$ROOT/.device/out}"
    mkdir -p "$out"
    {
        date -u
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
        "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
        echo "## CUDA tests"
        timeout 240 "$PY" -m pytest -q -rs tests/test_composite_device.py tests/test_render_region.py || echo "TESTS FAILED: $?"
        echo "## vidswap run --device cuda (frames: 1080p $FRAMES, 4K $FRAMES_4K)"
        timeout 420 "$PY" benchmarks/bench_speed.py --gpu-matrix "$FRAMES" "$FRAMES_4K" "$BATCHES" || echo "MATRIX FAILED: $?"
        nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv
    } 2>&1 | tee "$out/gpu_check.txt"
    ;;
*)
    echo "usage: $0 prepare|run" >&2
    exit 2
    ;;
esac
