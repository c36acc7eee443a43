"""Fetch the real face media listed in samples/media.yaml into $VIDSWAP_HOME/media (pinned by sha256).

Usage: python samples/fetch_media.py [--link DIR] [NAME ...]      (no names: all of them)
Prints one line per file: name and cached path. ``--link DIR`` also puts a symbolic link to each file in DIR
(the sample shot job reads its media from out/media). Importable: ``fetch(name) -> Path``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from vidswap.models.sources import cache_home, fetch_artifact

MANIFEST = Path(__file__).with_name("media.yaml")


def load_manifest(path: Path = MANIFEST) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def fetch(name: str, manifest: dict | None = None) -> Path:
    """Return the cached path of sample ``name``, fetching it from the registry if needed."""
    entries = manifest or load_manifest()
    entry = entries[name]
    return fetch_artifact(entry["file"], entry["sha256"], [entry["source"]], cache_home() / "media")


def main(argv: list[str]) -> int:
    link_dir = None
    if argv[:1] == ["--link"]:
        link_dir, argv = Path(argv[1]), argv[2:]
        link_dir.mkdir(parents=True, exist_ok=True)
    entries = load_manifest()
    for name in argv or list(entries):
        path = fetch(name, entries)
        if link_dir is not None:
            link = link_dir / path.name
            link.unlink(missing_ok=True)
            link.symlink_to(path)
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
