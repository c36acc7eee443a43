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
    assert not analyze & {"--codec", "--crf", "--tune", "--burn-in", "--overwrite"}
    assert {"--source", "--frames", "--target", "--scale", "--swap-core", "--overlay", "--compare"} <= analyze
    assert not tune & {"--codec", "--crf", "--burn-in", "--overwrite"}
    assert {"--tune", "--retune", "--source", "--target", "--compare", "--patches"} <= tune
    # assemble finds the chunks by a hash of every render setting: it lists them all but the device, batch size and
    # render threads
    assert assemble == run - {"--debug-frames", "--contact-sheet", "--device", "--batch-size", "--render-threads"}
    # hidden options are still accepted, so a hand-run pass describes the same job as the others
    result = CliRunner().invoke(main, ["assemble", "--device", "cpu", "--help"])
    assert result.exit_code == 0 and "--device" not in result.output


def readme_sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) of every ``###`` section of the README."""
    parts = re.split(r"^(#{2,3} .*)$", text, flags=re.M)
    return [(parts[i], parts[i + 1]) for i in range(1, len(parts) - 1, 2) if parts[i].startswith("### ")]


def section_for(path: tuple[str, ...], text: str) -> str | None:
    """The README section of the command ``path``: the ``###`` heading naming ``vidswap <path>``, else the one naming
    its parent group (``vidswap models list | fetch ...``). The root command's is the CLI reference."""
    if not path:
        start = text.index("## CLI reference")
        return text[start:text.index("\n### ", start)]
    for n in range(len(path), 0, -1):
        name = re.compile(r"`vidswap " + re.escape(" ".join(path[:n])) + r"(?![\w-])")
        for heading, body in readme_sections(text):
            if name.search(heading):
                return heading + body
    return None


def listed_options(cmd: click.Command) -> dict[str, click.Option]:
    """The long names (--x and --no-x) of the options ``cmd --help`` lists, --help left out (documented once)."""
    return {o: p for p in cmd.get_params(click.Context(cmd)) if isinstance(p, click.Option) and not p.hidden
            for o in p.opts + p.secondary_opts if o.startswith("--") and o != "--help"}


def mentions(option: str, text: str) -> bool:
    return re.search(re.escape(option) + r"(?![\w-])", text) is not None


def test_every_listed_option_is_in_its_commands_section():
    """Each option ``--help`` lists is in its command's README section; the farm passes' and ``config show``'s
    job options, shared with ``run``, may be documented in ``run``'s table instead."""
    text = README.read_text()
    run_section, run_options = section_for(("run",), text), listed_options(main.commands["run"])
    missing = []
    for path, cmd in commands():
        section = section_for(path, text) or ""
        for option in listed_options(cmd):
            if not mentions(option, section) and not (option in run_options and mentions(option, run_section)):
                missing.append(" ".join(("vidswap",) + path + (option,)))
    assert not missing, f"options missing from their command's README section: {missing}"


def test_every_choice_is_named_beside_its_option():
    """A choice option's README lines (its table row or heading) name every value it accepts."""
    text = README.read_text()
    run_section = section_for(("run",), text)
    unnamed = []
    for path, cmd in commands():
        section = (section_for(path, text) or "") + run_section
        for option, param in listed_options(cmd).items():
            if isinstance(param.type, click.Choice):
                lines = [line for line in section.splitlines() if mentions(option, line)]
                gaps = [c for c in param.type.choices if not any(c in line for line in lines)]
                if gaps:
                    unnamed.append(f"vidswap {' '.join(path)} {option}: {gaps}")
    assert not unnamed, f"choices the README does not name beside their option: {unnamed}"


def test_section_lookup_falls_back_to_the_parent_group():
    text = "## CLI reference\n### `vidswap models list | fetch [NAME]`\nbody\n### `vidswap eval-suite X`\nother\n"
    assert "body" in section_for(("models", "fetch"), text)
    assert section_for(("eval",), text) is None  # eval never matches eval-suite's heading


def test_readme_states_the_eval_verdict_thresholds():
    """The README's verdict table states each rule's thresholds exactly as the report does."""
    from vidswap.eval.verdict import RULES

    text = README.read_text()
    stale = [rule.name for rule in RULES if f"| {rule.name} | {rule.meaning} | {rule.threshold_text()} |" not in text]
    assert not stale, f"README verdict rows missing or out of date with vidswap/eval/verdict.py: {stale}"
