"""README vs CLI: every option of every command's --help is documented in README.md, every `--option` the README
names exists in some command (or belongs to another tool, listed here with the reason), and every command has a
README section."""

from __future__ import annotations

import re
from pathlib import Path

import click

from vidswap.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
#: options the README names that belong to other programs
OTHER_TOOLS = {"--max-retries-per-task": "Deadline Cloud's `deadline bundle submit`"}


def commands(cmd: click.Command = main, path: tuple[str, ...] = ()):
    """(path, command) for every command and subcommand of the CLI."""
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from commands(sub, path + (name,))


def cli_options() -> dict[str, list[str]]:
    """Long option name (both halves of --x/--no-x) -> the commands that take it."""
    found: dict[str, list[str]] = {}
    for path, cmd in commands():
        for param in cmd.get_params(click.Context(cmd)):
            if isinstance(param, click.Option):
                for opt in param.opts + param.secondary_opts:
                    if opt.startswith("--"):
                        found.setdefault(opt, []).append(" ".join(("vidswap",) + path))
    return found


def test_every_cli_option_is_in_the_readme():
    text = README.read_text()
    missing = {opt: where for opt, where in cli_options().items()
               if not re.search(re.escape(opt) + r"(?![\w-])", text)}
    assert not missing, f"options in --help but not in README.md: {missing}"


def test_every_readme_option_exists():
    text = README.read_text()
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", text))
    unknown = sorted(named - set(cli_options()) - set(OTHER_TOOLS))
    assert not unknown, f"README.md names options no vidswap command has: {unknown}"


def test_every_command_has_a_readme_section():
    headings = [line for line in README.read_text().splitlines() if line.startswith("### ")]
    undocumented = []
    for path, cmd in commands():
        if not path or isinstance(cmd, click.Group) and cmd.commands and not cmd.callback:
            continue
        if not any(f"vidswap {path[0]}" in h and all(re.search(rf"\b{re.escape(p)}\b", h) for p in path)
                   for h in headings):
            undocumented.append(" ".join(path))
    assert not undocumented, f"commands without a README section heading: {undocumented}"


def _listed(command: str) -> set[str]:
    cmd = main.commands[command]
    return {o for p in cmd.get_params(click.Context(cmd)) if isinstance(p, click.Option) and not p.hidden
            for o in p.opts if o.startswith("--")}


def test_farm_passes_list_only_the_options_they_use():
    from click.testing import CliRunner

    run = _listed("run")
    assert _listed("render") == run - {"--debug-frames", "--contact-sheet"} | {"--force"}
    analyze, tune, assemble = _listed("analyze"), _listed("tune"), _listed("assemble")
    assert not analyze & {"--codec", "--crf", "--tune", "--compare", "--burn-in", "--overwrite"}
    assert {"--source", "--frames", "--target", "--scale", "--swap-core", "--overlay"} <= analyze
    assert not tune & {"--codec", "--crf", "--compare", "--burn-in", "--patches", "--overwrite"}
    assert {"--tune", "--retune", "--source", "--target"} <= tune
    assert not assemble & {"--source", "--device", "--target", "--map", "--swap-core", "--tune"}
    assert {"--codec", "--crf", "--output", "--compare", "--overwrite", "--config"} <= assemble
    # hidden options are still accepted, so a hand-run pass describes the same job as the others
    result = CliRunner().invoke(main, ["assemble", "--source", "x.jpg", "--help"])
    assert result.exit_code == 0 and "--source" not in result.output
