"""The effective job config, value by value, with the layer each value came from (``vidswap config show``).

    layers = config_layers(shot="sh010.yaml", overrides={"scale": 0.5})
    for row in config_provenance(layers):
        print(row.key, row.value, row.origin)       # scale 0.5 command line

Origins: ``default`` (the dataclass default), ``preset <name>``, ``shot file <path>``, ``command line``.  Shot-file
values that had environment variables keep the text as written (``$SHOW/plates/...``) in ``written``.  The swap
core's section is shown for the selected core (``swap.<core>.<key>``), defaults included.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidswap.config import ConfigLayer, JobConfig, build_config


@dataclass(frozen=True)
class ConfigValue:
    """One effective setting: dotted key, value, where it came from, and the shot-file text when it had
    environment variables."""

    key: str
    value: Any
    origin: str
    written: str | None = None


def _leaves(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict) and data:
        return [leaf for key, value in data.items() for leaf in _leaves(value, f"{prefix}{key}.")]
    return [(prefix.rstrip("."), data)]


def _effective(cfg: JobConfig) -> dict:
    """The config as nested data, with ``swap`` as the layers spell it: ``core`` and the selected core's section."""
    data = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    data = {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in data.items()}
    data["swap"] = {"core": cfg.swap.core, cfg.swap.core: dataclasses.asdict(cfg.swap.section())}
    return data


def _origin(layer: ConfigLayer) -> str:
    if layer.kind == "preset":
        return f"preset {layer.data['preset']}"
    return layer.kind if layer.kind == "command line" else f"{layer.kind} {layer.source}"


def _given(data: dict, key: str) -> bool:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def config_provenance(layers: list[ConfigLayer]) -> list[ConfigValue]:
    """Every effective setting of the job ``layers`` make, in config order, with its origin."""
    cfg = build_config(layers)
    rows = []
    for key, value in _leaves(_effective(cfg)):
        origin, written = "default", None
        for layer in layers:
            if _given(layer.data, key):
                origin, written = _origin(layer), layer.written.get(key)
        if key == "preset":
            origin = next((_origin(layer) for layer in reversed(layers[1:]) if "preset" in layer.data), "default")
        rows.append(ConfigValue(key, list(value) if isinstance(value, tuple) else value, origin, written))
    return rows


def _text(value: Any) -> str:
    if isinstance(value, Path):
        return str(value)
    return value if isinstance(value, str) else json.dumps(value)


def format_provenance(rows: list[ConfigValue]) -> str:
    """A table: key, value, where it came from (and the shot-file text of expanded values)."""
    width = max(len(r.key) for r in rows)
    value_width = min(48, max(len(_text(r.value)) for r in rows))
    lines = [f"{'key':<{width}}  {'value':<{value_width}}  from"]
    for r in rows:
        origin = r.origin + (f" (as written: {r.written})" if r.written else "")
        lines.append(f"{r.key:<{width}}  {_text(r.value):<{value_width}}  {origin}")
    return "\n".join(lines)


def provenance_json(rows: list[ConfigValue]) -> str:
    """The rows as JSON: ``{key: {"value": ..., "from": ..., "written": ...}}``."""
    return json.dumps({r.key: {"value": r.value, "from": r.origin, **({"written": r.written} if r.written else {})}
                       for r in rows}, indent=2, default=str)
