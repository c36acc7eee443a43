"""Shared checks of the StyleGAN-family swap cores' end-to-end tests (test_swap_e4s / e4s_pti / idatt / megafs /
mfim): a short `vidswap run` with a core and a checkpoint, "the face is replaced and the frame border is the
plate's", and the exit-4 one-line errors for unusable checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner
from media_helpers import read_frames
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from vidswap.cli import main


def run_core(core: str, clip, source, checkpoint, out: Path, shot_text: str = "", frames: str = "0-3",
             command: tuple[str, ...] = ("run",)):
    """``vidswap <command> --config shot.yaml --swap-core core --checkpoint FILE -q`` on ``frames`` of ``clip``
    to ``out`` (ffv1); the click result."""
    shot = out.parent / f"{out.stem}.yaml"
    shot.write_text(f"input: {clip}\nsources: [{source}]\nframes: {frames}\noutput: {{path: {out}, codec: ffv1}}\n"
                    + shot_text)
    return CliRunner().invoke(main, [*command, "--config", str(shot), "--swap-core", core, "--checkpoint",
                                     str(checkpoint), "-q"])


def assert_face_replaced(clip, out: Path, frames: int, changed: float = 0.2, border: bool = True) -> None:
    """More than ``changed`` of the face area (the frame's centre) differs from the plate by > 8 code values in
    the first ``frames`` frames; with ``border``, the left and right eighths stay within 3 of the plate."""
    got = [f.astype(np.float32) for f in read_frames(out)]
    plate = [f.astype(np.float32) for f in read_frames(clip)][:frames]
    diff = np.stack([np.abs(g - p).mean(-1) for g, p in zip(got, plate)])  # (frames, H, W)
    h, w = diff.shape[1:]
    assert (diff[:, h // 4: 3 * h // 4, w // 3: 2 * w // 3] > 8).mean() > changed  # the face is replaced
    if border:
        assert diff[:, :, : w // 8].max() < 3 and diff[:, :, -w // 8:].max() < 3  # the border is the plate's


def bad_checkpoints(checkpoint: Path, folder: Path, core: str, not_ours: str, config_edit: tuple[str, str] | None,
                    other_format: str | None = None,
                    unreadable: str = "unreadable (corrupt, truncated or not safetensors)") -> list[tuple[Path, str, str]]:
    """(file, shot settings, expected line) for: a truncated copy, another kind of safetensors file (format
    ``other_format`` when given), a copy whose recorded config is edited (``config_edit`` = (old, new) in its JSON;
    None: skip), the generator at another resolution, a missing file."""
    corrupt = folder / "corrupt.safetensors"
    corrupt.write_bytes(checkpoint.read_bytes()[:300])
    other = folder / "other.safetensors"
    save_file({"encoder.weight": torch.zeros(2, 2)}, str(other),
              metadata={"format": other_format} if other_format else None)
    cases = [(corrupt, "", unreadable), (other, "", not_ours)]
    if config_edit is not None:
        with safe_open(str(checkpoint), "pt") as fh:
            meta = fh.metadata()
        wrong = folder / "wrong.safetensors"  # the recorded architecture does not match the tensors
        save_file(load_file(str(checkpoint)), str(wrong),
                  metadata={**meta, "config": meta["config"].replace(*config_edit)})
        cases.append((wrong, "", "does not fit its recorded architecture"))
    return cases + [(checkpoint, f"swap: {{{core}: {{resolution: 1024}}}}\n",
                     "generator is 64x64, this core needs 1024x1024"),
                    (folder / "missing.safetensors", "", "does not exist")]


def assert_exit_4_one_line(core: str, clip, source, cases: list[tuple[Path, str, str]], folder: Path) -> None:
    """Each case (file, shot settings, expected text) of a run: exit 4 and one line, ``error: ...`` with it."""
    for path, settings, needle in cases:
        result = run_core(core, clip, source, path, folder / "bad.mkv", settings)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 4, result.output
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.output
