"""Evaluation suite: run a list of swaps through the CLI, evaluate each, and summarise (with ID retrieval).

    python -m vidswap.eval.suite vidswap/configs/eval_suite.yaml [-o out/eval_suite]

Config (YAML; names are sample media from ``samples/media.yaml`` -- fetched on demand -- or paths relative to
the YAML file)::

    output: out/eval_suite          # default output folder (relative to the current directory)
    frames: 0-47                    # default frame range of every swap (fileseq syntax; omit = whole clip)
    every: 1                        # evaluate every N-th frame
    options: []                     # extra `vidswap run` options for every swap, e.g. ["--preview"]
    gallery: [grace_hopper]         # extra identities for retrieval (distractors); swap sources are included
    swaps:
      - target: single_face_clip
        sources: [portrait_f1]
      - target: pexels_clip
        sources: [portrait_m7, astronaut]   # several photos of one identity
        frames: 0-95
        options: ["--preview"]

Each swap runs as ``python -m vidswap.cli run TARGET --source S ... -o OUT -q [--frames F] [options]`` in a
subprocess (so the suite depends on the command line only), then :func:`vidswap.eval.report.evaluate` writes
its report into ``<output>/<NN>_<target>_<sources>/eval/``.

Identity retrieval (FaceForensics++ protocol): the 10 evenly sampled frames of every swap are queries; the
gallery holds one ArcFace embedding per identity -- every distinct source set of the suite, the ``gallery``
extras, and the plates' own faces (a swap that keeps the actor's identity retrieves the plate). Top-1 / top-5
rates are over all queries.

Writes ``summary.json`` (everything) and ``summary.md`` (a table per swap and the retrieval rates).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from vidswap.errors import ConfigError, InputError
from vidswap.eval import metrics as M
from vidswap.eval.report import Judges, evaluate, frame_range

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class SwapSpec:
    """One swap of the suite."""

    target: str
    sources: list[str]
    frames: str | None = None
    options: list[str] = field(default_factory=list)


@dataclass
class SuiteSpec:
    output: str = "out/eval_suite"
    frames: str | None = None
    every: int = 1
    options: list[str] = field(default_factory=list)
    gallery: list[str] = field(default_factory=list)
    swaps: list[SwapSpec] = field(default_factory=list)
    base: Path = Path(".")


def load_suite(path: Path | str) -> SuiteSpec:
    """Read and check a suite YAML (ConfigError naming the problem)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read suite config {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("swaps"), list) or not data["swaps"]:
        raise ConfigError(f"suite config {path} needs a non-empty 'swaps:' list")
    known = {"output", "frames", "every", "options", "gallery", "swaps"}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"suite config {path}: unknown keys {', '.join(sorted(unknown))}")
    swaps = []
    for i, item in enumerate(data["swaps"]):
        if not isinstance(item, dict) or "target" not in item or not item.get("sources"):
            raise ConfigError(f"suite config {path}: swap {i + 1} needs 'target' and 'sources'")
        sources = item["sources"] if isinstance(item["sources"], list) else [item["sources"]]
        swaps.append(SwapSpec(str(item["target"]), [str(s) for s in sources],
                              None if item.get("frames") is None else str(item["frames"]),
                              [str(o) for o in item.get("options", [])]))
    return SuiteSpec(output=str(data.get("output", "out/eval_suite")),
                     frames=None if data.get("frames") is None else str(data["frames"]),
                     every=int(data.get("every", 1)), options=[str(o) for o in data.get("options", [])],
                     gallery=[str(g) for g in data.get("gallery", [])], swaps=swaps, base=path.resolve().parent)


def resolve_media(name: str, base: Path) -> Path:
    """A sample-media name (``samples/media.yaml``, fetched on demand) or a path (relative to ``base``)."""
    sys.path.insert(0, str(ROOT / "samples"))
    try:
        import fetch_media
    finally:
        sys.path.pop(0)
    manifest = fetch_media.load_manifest()
    if name in manifest:
        return fetch_media.fetch(name, manifest)
    path = Path(name) if Path(name).is_absolute() else base / name
    if not path.exists():
        raise InputError(f"suite media {name!r} is neither a sample name ({', '.join(manifest)}) nor a file")
    return path


def _option_value(options: list[str], name: str) -> str | None:
    for i, opt in enumerate(options):
        if opt == name and i + 1 < len(options):
            return options[i + 1]
        if opt.startswith(name + "="):
            return opt.split("=", 1)[1]
    return None


_WROTE = re.compile(r"wrote .*: (\d+) frames (\d+)x(\d+) in ([\d.]+) s \(([\d.]+) frames/s\)")
_SWAPPED = re.compile(r"swapped (\d+) frames")


def run_swap(target: Path, sources: list[Path], out: Path, frames: str | None, options: list[str]) -> dict:
    """Run one swap through the CLI in a subprocess; returns what it reported."""
    cmd = [sys.executable, "-m", "vidswap.cli", "run", str(target)]
    for s in sources:
        cmd += ["--source", str(s)]
    cmd += ["-o", str(out), "-q"]
    if frames is not None:
        cmd += ["--frames", frames]
    cmd += options
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
    info = {"command": cmd, "returncode": proc.returncode, "wall_seconds": time.perf_counter() - start,
            "stdout": proc.stdout.strip(), "stderr": proc.stderr.strip()[-2000:]}
    m = _WROTE.search(proc.stdout)
    if m:
        info.update(frames_written=int(m[1]), width=int(m[2]), height=int(m[3]), seconds=float(m[4]),
                    fps=float(m[5]))
    m = _SWAPPED.search(proc.stdout)
    info["frames_swapped"] = int(m[1]) if m else None
    return info


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:40] or "x"


def run_suite(config_yaml: Path | str, out_dir: Path | str | None = None, reuse: bool = False) -> dict:
    """Run every swap of the suite, evaluate it, and write ``summary.md`` and ``summary.json``.

    Args:
        config_yaml: the suite config (module doc).
        out_dir: output folder (default: the config's ``output``).
        reuse: skip a swap whose result file already exists (re-evaluate only).

    Returns:
        the summary dict written to ``summary.json``.
    """
    spec = load_suite(config_yaml)
    out = Path(out_dir) if out_dir is not None else Path(spec.output)
    out.mkdir(parents=True, exist_ok=True)
    previous = _previous_runs(out / "summary.json") if reuse else {}
    rows = []
    for i, swap in enumerate(spec.swaps):
        target = resolve_media(swap.target, spec.base)
        sources = [resolve_media(s, spec.base) for s in swap.sources]
        frames = swap.frames if swap.frames is not None else spec.frames
        options = spec.options + swap.options
        name = f"{i + 1:02d}_{_slug(Path(swap.target).stem)}_{_slug('+'.join(Path(s).stem for s in swap.sources))}"
        work = out / name
        work.mkdir(parents=True, exist_ok=True)
        result = work / "result.mp4"
        row = {"name": name, "target": swap.target, "sources": swap.sources, "frames": frames,
               "options": options, "result": str(result)}
        if reuse and result.exists():
            row["run"] = {**previous.get(name, {}), "returncode": 0, "reused": True}
        else:
            print(f"[{i + 1}/{len(spec.swaps)}] swap {swap.target} <- {', '.join(swap.sources)}", file=sys.stderr)
            row["run"] = run_swap(target, sources, result, frames, options)
        if row["run"]["returncode"] != 0 or not result.exists():
            row["error"] = (row["run"].get("stderr") or "vidswap run failed").splitlines()[-1]
            rows.append(row)
            continue
        every_run = int(_option_value(options, "--every") or 1)
        print(f"[{i + 1}/{len(spec.swaps)}] eval {name}", file=sys.stderr)
        try:
            metrics = evaluate(result, target, sources, work / "eval", frames=frame_range(frames, every_run),
                               every=spec.every)
        except Exception as exc:  # noqa: BLE001 - one failing swap must not stop the suite
            row["error"] = f"evaluation failed: {type(exc).__name__}: {exc}"
            rows.append(row)
            continue
        row["metrics"] = {k: metrics[k] for k in ("frames", "identity", "pose", "expression", "temporal",
                                                   "quality", "timing")}
        row["report"] = str((work / "eval" / "report.html").relative_to(out))
        rows.append(row)

    retrieval = _retrieval(rows, spec, out, M, Judges)
    judges_note = ("identity judge ArcFace MobileFaceNet (arcface_mbf) and landmarks InsightFace 2d106: "
                   "non-commercial research models, used for evaluation only, fetched on demand")
    summary = {"config": str(Path(config_yaml).resolve()), "output": str(out), "swaps": rows,
               "retrieval": retrieval, "judges": judges_note}
    (out / "summary.json").write_text(json.dumps(_clean(summary), indent=2, allow_nan=False))
    (out / "summary.md").write_text(summary_markdown(summary))
    return summary


def _previous_runs(path: Path) -> dict[str, dict]:
    """name -> the 'run' record of an earlier summary.json (for --reuse), empty when there is none."""
    try:
        return {row["name"]: row.get("run", {}) for row in json.loads(path.read_text())["swaps"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _retrieval(rows: list[dict], spec: SuiteSpec, out: Path, M, judges_cls) -> dict:
    """Top-1 / top-5 identity retrieval over the suite's swaps (module doc)."""
    keys: list[str] = []
    gallery: list[np.ndarray] = []
    queries, truth = [], []

    def add(key: str, emb: np.ndarray) -> int:
        if key not in keys:
            keys.append(key)
            gallery.append(emb)
        return keys.index(key)

    for row in rows:
        if "metrics" not in row:
            continue
        emb = np.load(out / row["name"] / "eval" / "embeddings.npz")
        src_key = "source:" + "+".join(sorted(row["sources"]))
        truth.append(add(src_key, emb["source"]))
        queries.append(emb["result"])
        if np.isfinite(emb["target"]).all():
            add("plate:" + row["target"], emb["target"])
    extras = [g for g in spec.gallery if "source:" + g not in keys]
    if extras and queries:
        judges = judges_cls()
        for g in extras:
            add("source:" + g, judges.source_embedding([resolve_media(g, spec.base)]))
    if not queries:
        return {"top1": None, "top5": None, "queries": 0, "gallery": keys}
    top1, top5 = M.retrieval(queries, np.stack(gallery), truth, k=5)
    n = int(sum(np.isfinite(q).all(1).sum() for q in queries))
    return {"top1": top1, "top5": top5, "queries": n, "clips": len(queries), "gallery_size": len(keys),
            "gallery": keys}


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, (np.floating, np.integer)):
        return _clean(obj.item())
    return obj


def _f(v, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{digits}f}"


def summary_markdown(summary: dict) -> str:
    """The suite's summary table in Markdown."""
    lines = ["# vidswap evaluation suite", "",
             f"Config `{summary['config']}`; judges: {summary['judges']}.", "",
             "| # | target | sources | frames | run fps | swapped | ID→src | ID→plate | plate→src | pose err° "
             "| mouth err | eye err | flicker × | jitter × | sharp × | noise × | seam × | tone | report |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for i, row in enumerate(summary["swaps"], 1):
        head = f"| {i} | {row['target']} | {', '.join(row['sources'])} | {row['frames'] or 'all'} "
        run = row.get("run", {})
        if "metrics" not in row:
            lines.append(head + f"| {_f(run.get('fps'), 1)} | | failed: {row.get('error', '')} |" + " |" * 12)
            continue
        m = row["metrics"]
        lines.append(
            head + f"| {_f(run.get('fps'), 1)} | {run.get('frames_swapped', 'n/a')} "
            f"| {_f(m['identity']['to_source']['mean'])} | {_f(m['identity']['to_target']['mean'])} "
            f"| {_f(m['identity']['target_to_source']['mean'])} | {_f(m['pose']['motion_error_deg']['mean'], 2)} "
            f"| {_f(m['expression']['mouth_open_error']['mean'])} | {_f(m['expression']['eye_open_error']['mean'])} "
            f"| {_f(m['temporal']['flicker']['ratio'], 2)} | {_f(m['temporal']['jitter']['ratio'], 2)} "
            f"| {_f(m['quality']['sharpness_ratio'], 2)} | {_f((m['quality'].get('noise') or {}).get('ratio'), 2)} "
            f"| {_f(m['quality']['seam_ratio']['mean'], 2)} "
            f"| {_f(m['quality']['boundary_tone']['mean'], 1)} "
            f"| [report]({row['report']}) |")
    r = summary["retrieval"]
    lines += ["", "## Identity retrieval (FaceForensics++ protocol)", ""]
    if r.get("queries"):
        lines.append(f"Top-1 **{_f(r['top1'])}**, top-5 **{_f(r['top5'])}** over {r['queries']} sampled frames of "
                     f"{r['clips']} swaps; gallery of {r['gallery_size']} identities (swap sources, extras, and "
                     "the plates' own faces as distractors).")
    else:
        lines.append("No evaluated swap: retrieval not computed.")
    lines += ["", "Columns: ID→src / ID→plate = ArcFace cosine of the result to the sources / to the plate's face "
              "(plate→src: the plate's own similarity, the baseline); pose err = geodesic head-pose error in "
              "degrees, the clip's constant offset taken out (the verdict's head motion); mouth / eye err = "
              "opening-ratio errors; × = result relative to the plate (1 = as the plate); tone = how much the "
              "swapped area as a whole is lighter or another colour than the plate around its border (8-bit "
              "levels, 0 best; the verdict's colour step)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("-o", "--output")
    parser.add_argument("--reuse", action="store_true", help="re-evaluate existing results without re-running")
    args = parser.parse_args(argv)
    summary = run_suite(args.config, args.output, reuse=args.reuse)
    print(summary_markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
