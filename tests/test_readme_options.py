"""README.md against the command line: every option of every command (found by walking vidswap.cli's click
groups) is documented in that command's README section, every choice of a choice option is named there, and every
``--option`` the README mentions exists in some vidswap command (or is another tool's, listed below with it)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from vidswap.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")

#: ``--options`` the README mentions that belong to other tools, each with the tool.
FOREIGN = {
    "--max-retries-per-task": "deadline bundle submit",
}

OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


def walk(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    """Every command under ``group`` (groups included) with its path of names, e.g. ("models", "fetch")."""
    found = [(path, group)]
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        sub = group.get_command(ctx, name)
        if isinstance(sub, click.Group):
            found += walk(sub, path + (name,))
        else:
            found.append((path + (name,), sub))
    return found


def long_names(command: click.Command) -> dict[str, click.Option]:
    """The command's long option names (``--tune`` and ``--no-tune`` both), --help left out (documented once)."""
    names = {}
    for param in command.params:
        if isinstance(param, click.Option):
            for name in param.opts + param.secondary_opts:
                if name.startswith("--") and name != "--help":
                    names[name] = param
    return names


def sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) of every ``###`` section of the README."""
    parts = re.split(r"^(#{2,3} .*)$", text, flags=re.M)
    return [(parts[i], parts[i + 1]) for i in range(1, len(parts) - 1, 2) if parts[i].startswith("### ")]


def section_for(path: tuple[str, ...], text: str = README) -> str | None:
    """The README section of the command ``path``: the ``###`` heading naming ``vidswap <path>``, else the one
    naming its parent group (``vidswap models list | fetch ...``). The root's section is the CLI reference."""
    if not path:
        start = text.index("## CLI reference")
        return text[start:text.index("\n### ", start)]
    for n in range(len(path), 0, -1):
        name = re.compile(r"`vidswap " + re.escape(" ".join(path[:n])) + r"(?![\w-])")
        for heading, body in sections(text):
            if name.search(heading):
                return heading + body
    return None


COMMANDS = walk(main)
RUN = dict(COMMANDS)[("run",)]


def test_walk_finds_the_commands():
    paths = {" ".join(p) for p, _ in COMMANDS}
    assert {"", "run", "analyze", "render", "assemble", "tune", "eval", "farm export", "models fetch",
            "config show", "batch", "clean", "train", "train export"} <= paths, paths


def test_every_cli_option_is_in_its_readme_section():
    """Each option appears in its command's section; one that ``run`` has too may be documented in ``run``'s."""
    run_section = section_for(("run",))
    missing, no_section = [], []
    for path, command in COMMANDS:
        options = long_names(command)
        if not options:
            continue
        section = section_for(path)
        if section is None:
            no_section.append("vidswap " + " ".join(path))
            continue
        for name in options:
            documented = re.search(re.escape(name) + r"(?![\w-])", section)
            if not documented and name in long_names(RUN):
                documented = re.search(re.escape(name) + r"(?![\w-])", run_section)
            if not documented:
                missing.append(f"vidswap {' '.join(path)} {name}".replace("  ", " "))
    assert not no_section, f"commands without a README section (### `vidswap ...`): {no_section}"
    assert not missing, f"options missing from their README section: {missing}"
    assert "--help" in README


def test_every_choice_is_named_where_the_option_is_documented():
    """A choice option's README line (its row or heading) names every value it accepts."""
    wrong = []
    for path, command in COMMANDS:
        section = section_for(path) or ""
        for name, option in long_names(command).items():
            if not isinstance(option.type, click.Choice):
                continue
            lines = [line for line in (section + section_for(("run",))).splitlines()
                     if re.search(re.escape(name) + r"(?![\w-])", line)]
            unnamed = [c for c in option.type.choices if not any(c in line for line in lines)]
            if unnamed:
                wrong.append(f"vidswap {' '.join(path)} {name}: {unnamed}")
    assert not wrong, f"choices the README does not name next to their option: {wrong}"


def test_every_readme_option_exists():
    known = {"--help"}
    for _, command in COMMANDS:
        known |= set(long_names(command))
    documented = set(OPTION.findall(README))
    unknown = sorted(documented - known - set(FOREIGN))
    assert not unknown, f"README documents options no vidswap command has: {unknown}"
    stale_foreign = sorted(set(FOREIGN) - documented)
    assert not stale_foreign, f"FOREIGN lists options the README no longer mentions: {stale_foreign}"


@pytest.mark.parametrize("text, expected", [
    ("### `vidswap models list | fetch [NAME]`\nbody\n### `vidswap eval-suite X`\nother\n", "body"),
])
def test_section_lookup_uses_the_parent_group(text, expected):
    """``models fetch`` falls back to the ``vidswap models`` heading; ``eval`` never matches ``eval-suite``."""
    assert expected in section_for(("models", "fetch"), text)
    assert section_for(("eval",), text) is None
