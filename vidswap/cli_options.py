"""The job options the shot commands share, and the config layers they make (the CLI's parsing; no logic).

Which options each farm pass lists in ``--help`` (each accepts them all, so hand-run passes agree on the job):
:data:`ANALYZE_HIDES`, :data:`TUNE_HIDES`, :data:`ASSEMBLE_HIDES`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import click

if TYPE_CHECKING:  # the config module is imported by the functions that build a job, not by --help
    from vidswap.config import ConfigLayer, JobConfig

# A pass hides only options that change nothing it reads or writes (tests/test_cli_pass_options.py). The output
# options that name the job folder (-o, --preview, --compare, --patches) stay listed everywhere.
#: the analyze pass reads the input, sources, frames, scale, target selection and core; not the encode or tuning
ANALYZE_HIDES = ("--codec", "--crf", "--tune", "--retune", "--burn-in", "--overwrite", "--appearance",
                 "--render-threads")
#: the tune pass: no output encoding
TUNE_HIDES = ("--codec", "--crf", "--burn-in", "--overwrite")
#: assemble finds the chunks by a hash of every render setting (sources, targets, core, tuning included), so it
#: lists them all but the device, batch size and render threads (the same pictures whatever they are)
ASSEMBLE_HIDES = ("--device", "--batch-size", "--render-threads")


def job_options(fn=None, *, hide: Iterable[str] = ()):
    """The options every shot command takes (run, analyze, tune, render, assemble, config show).

    ``hide``: long names of options the command accepts (so a hand-run farm pass agrees with the others on the
    job, its folder and its analysis key) but does not use; its ``--help`` does not list them.
    """
    if fn is None:
        return lambda f: job_options(f, hide=hide)
    hidden = set(hide)
    options = [
        click.argument("input", required=False, type=click.Path(dir_okay=False, path_type=str)),
        _option(hidden, "-s", "--source", "sources", multiple=True, help="Source portrait (repeatable)."),
        _option(hidden, "-o", "--output", help="Output file or sequence pattern (default: <input stem>_swapped.<ext>; "
                     "_preview / _compare with --preview / --compare)."),
        _option(hidden, "--frames", help="Frame range, e.g. 1001-1100, 0-99x2 or 0-3,10-12."),
        _option(hidden, "--preview", is_flag=True, help="Fast preview: the 'preview' preset (half scale, fast encode)."),
        _option(hidden, "--scale", type=float, help="Output scale factor (e.g. 0.5)."),
        _option(hidden, "--every", type=int, help="Render every N-th frame."),
        _option(hidden, "--config", "shot", type=click.Path(dir_okay=False), help="Per-shot job YAML."),
        _option(hidden, "--preset", type=click.Choice(["default", "preview", "final"]), help="Config preset."),
        _option(hidden, "--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Torch device."),
        _option(hidden, "--batch-size", type=int, help="Frames per batch on the device."),
        _option(hidden, "--render-threads", help="Batches rendered at once: a count or 'auto' (2 on a CPU with 2+ "
                     "cores, 1 on a GPU; the same pictures)."),
        _option(hidden, "--codec", type=click.Choice(["h264", "prores_hq", "prores_4444", "ffv1", "exr", "png", "tiff"]),
                     help="Output codec (default from the output extension)."),
        _option(hidden, "--crf", type=int, help="H.264 quality (0-51, lower is better)."),
        _option(hidden, "--target", "target_mode", type=click.Choice(["largest", "all"]),
                     help="Which faces to replace (default largest)."),
        _option(hidden, "--target-index", type=int, help="Replace the K-th face track (by first appearance)."),
        _option(hidden, "--target-face", type=click.Path(dir_okay=False), help="Replace the face most like this image."),
        _option(hidden, "--map", "mapping", multiple=True, help="TRACK:SOURCE pairs for several sources (repeatable)."),
        _option(hidden, "--tune/--no-tune", "tune", default=None, help="Per-clip generator tuning (default: config)."),
        _option(hidden, "--retune", is_flag=True, default=None, help="Tune again even if the job folder has weights."),
        _option(hidden, "--compare", is_flag=True, default=None, help="Side by side: plate | result (twice as wide)."),
        _option(hidden, "--burn-in/--no-burn-in", "burnin", default=None,
                     help="Burn shot, frame, timecode and preset into the picture (previews)."),
        _option(hidden, "--patches", is_flag=True, default=None,
                     help="Write face patches (crop + alpha + transform, Nuke script) instead of frames; "
                          "-o face.####.png or .exr."),
        _option(hidden, "--passthrough", is_flag=True, help="Copy frames without swapping (I/O check)."),
        _option(hidden, "--overwrite/--no-overwrite", "overwrite", default=None,
                     help="Replace an existing output (default: output.overwrite, on) or refuse with exit 2."),
        _option(hidden, "--swap-core", help="Swap core (swap.core): geometric, inswapper, simswap, hyperswap, ghost, "
                "facedancer, e4s-pti, megafs, e4s, mfim, idatt, passthrough or a plug-in."),
        _option(hidden, "--checkpoint", type=click.Path(dir_okay=False),
                     help="FaceDancer core: the trained checkpoint (swap.facedancer.checkpoint); e4s-pti core: "
                          "the converted StyleGAN2 file (swap.e4s-pti.checkpoint); megafs core: the trained MegaFS "
                          "file (swap.megafs.checkpoint); e4s, mfim, idatt cores: the trained file "
                          "(swap.e4s.checkpoint, swap.mfim.checkpoint, swap.idatt.checkpoint)."),
        _option(hidden, "--appearance", type=click.Choice(["relit", "texture"]),
                     help="Geometric core: the source's albedo under the plate's light (relit, default) or the "
                          "source photo's texture as it is (texture)."),
        _option(hidden, "-q", "--quiet", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _option(hidden: set[str], *decls: str, **attrs):
    """``click.option`` hidden from ``--help`` when one of its long names is in ``hidden``."""
    names = {n for d in decls for n in d.split("/") if n.startswith("--")}
    return click.option(*decls, hidden=bool(names & hidden), **attrs)


#: cores whose --checkpoint goes to their own section (swap.<core>.checkpoint); others: swap.facedancer
CHECKPOINT_CORES = ("e4s-pti", "megafs", "e4s", "mfim", "idatt")


def job_layers(input, sources, output, frames, preview, scale, every, shot, preset, device, batch_size, codec, crf,
               target_mode, target_index, target_face, mapping, passthrough, tune=None, retune=None, compare=None,
               burnin=None, patches=None, appearance=None, overwrite=None, swap_core=None, checkpoint=None,
               render_threads=None, **_) -> list[ConfigLayer]:
    """The job's config layers (preset, shot YAML, command-line flags), lowest precedence first."""
    from vidswap.config import config_layers

    if input is None and shot is None:
        raise click.UsageError("give an INPUT clip or --config shot.yaml")
    mode = target_mode or ("index" if target_index is not None else "reference" if target_face else None)
    overrides = {
        "input": input, "sources": list(sources) or None, "frames": frames, "scale": scale, "every": every,
        "device": device, "batch_size": batch_size,
        "render_threads": render_threads if render_threads in (None, "auto") else _count(render_threads),
        "output": {"path": output, "codec": codec, "crf": crf, "compare": compare, "burnin": burnin,
                   "kind": "patch" if patches else None, "overwrite": overwrite},
        "swap": {"core": "passthrough" if passthrough else swap_core, "geometric": {"appearance": appearance},
                 **({(swap_core if swap_core in CHECKPOINT_CORES else "facedancer"): {"checkpoint": checkpoint}}
                    if checkpoint else {})},
        "target": {"mode": mode, "index": target_index, "reference": target_face, "map": list(mapping) or None},
        "tune": {"enabled": tune, "retune": retune or None},
        "preset": preset or ("preview" if preview else None),  # a flag: beats the shot file's preset
    }
    return config_layers(shot=shot, overrides=overrides)


def _count(text: str) -> int:
    """``--render-threads N``: an integer, or a usage error naming the option."""
    try:
        return int(text)
    except ValueError:
        raise click.BadParameter(f"expected a count or 'auto', got {text!r}", param_hint="--render-threads") from None


def load_job(**opts) -> JobConfig:
    """The job config from the shot YAML, the preset and the command-line flags."""
    from vidswap.config import build_config

    return build_config(job_layers(**opts))
