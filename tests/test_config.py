"""Config layering and validation: exact expectations."""

import json
import re
from pathlib import Path

import pytest

from vidswap.config import JobConfig, expand_env, load_config
from vidswap.errors import ConfigError


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_without_layers():
    cfg = load_config()
    assert cfg == JobConfig(preset="default", output=cfg.output, smoothing=cfg.smoothing, composite=cfg.composite)
    assert cfg.scale == 1.0 and cfg.every == 1 and cfg.output.crf == 18 and cfg.smoothing.method == "rts"


def test_precedence_preset_then_shot_then_cli(tmp_path):
    shot = write(tmp_path, "shot.yaml", "preset: preview\nscale: 0.25\noutput: {crf: 30}\n")
    cfg = load_config(shot=shot)
    assert cfg.preset == "preview"
    assert cfg.scale == 0.25  # shot beats preset (0.5)
    assert cfg.output.crf == 30  # shot beats preset (23)
    assert cfg.output.encoder_preset == "veryfast"  # from the preset
    assert cfg.smoothing.method == "one_euro"  # from the preset
    cfg = load_config(shot=shot, overrides={"scale": 0.75, "output": {"crf": None, "path": "x.mov"}})
    assert cfg.scale == 0.75  # CLI beats shot
    assert cfg.output.crf == 30  # None on the CLI means "not given"
    assert cfg.output.path == "x.mov"


def test_cli_preset_beats_shot_preset(tmp_path):
    shot = write(tmp_path, "shot.yaml", "preset: final\n")
    assert load_config(shot=shot).preset == "final"
    assert load_config(shot=shot, overrides={"preset": "preview"}).preset == "preview"


def test_shot_paths_are_relative_to_the_shot_file(tmp_path):
    (tmp_path / "sub").mkdir()
    shot = write(tmp_path / "sub", "shot.yaml", "input: plate.mp4\nsources: [a.jpg, /abs/b.jpg]\n"
                                               "output: {path: ../out/o.mov}\n")
    cfg = load_config(shot=shot)
    assert cfg.input == str(tmp_path / "sub" / "plate.mp4")
    assert cfg.sources == (str(tmp_path / "sub" / "a.jpg"), "/abs/b.jpg")
    assert cfg.output.path == str(tmp_path / "out" / "o.mov")


def test_config_is_immutable():
    cfg = load_config()
    with pytest.raises(AttributeError):
        cfg.scale = 2.0  # type: ignore[misc]


@pytest.mark.parametrize("text, needle", [
    ("bogus: 1\n", "unknown key 'bogus'"),
    ("output: {colour: red}\n", "unknown key 'output.colour'"),
    ("scale: fast\n", "scale in"),
    ("batch_size: 2.5\n", "batch_size in"),
    ("swap: {geometric: {inner: nose}}\n", "swap.geometric.inner in"),
    ("swap: {core: nosuch}\n", "unknown swap core 'nosuch' (swap.core in"),
    ("swap: {inner: target}\n", "swap.geometric.inner"),
    ("composite: {occlusion: 1}\n", "composite.occlusion in"),
    ("output: 3\n", "output in"),
])
def test_bad_shot_yaml_names_key_and_file(tmp_path, text, needle):
    shot = write(tmp_path, "shot.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_config(shot=shot)
    assert needle in str(err.value)
    assert str(shot) in str(err.value)


def test_bad_yaml_syntax_names_file_and_line(tmp_path):
    shot = write(tmp_path, "shot.yaml", "input: a.mp4\nsources: [a.jpg\nscale: 1\n")
    with pytest.raises(ConfigError, match=r"bad YAML in .*shot.yaml line \d+"):
        load_config(shot=shot)


def test_missing_shot_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(shot=tmp_path / "nope.yaml")


def test_cli_override_errors_name_command_line():
    with pytest.raises(ConfigError, match="every in command line"):
        load_config(overrides={"every": "x"})


@pytest.mark.parametrize("over, needle", [
    ({"scale": 0.0}, "scale must be"),
    ({"every": 0}, "every must be"),
    ({"swap": {"geometric": {"crop_size": 100}}}, "swap.geometric: crop_size must be auto or a multiple of 32"),
    ({"tune": {"channels": [8, 16]}}, "tune: channels must list 4"),
    ({"target": {"mode": "index"}}, "target.index"),
])
def test_value_ranges(over, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(overrides=over)


def test_lists_become_tuples_and_comma_strings_split():
    cfg = load_config(overrides={"sources": ["a.jpg", "b.jpg"], "composite": {"regions": "eyes,mouth"}})
    assert cfg.sources == ("a.jpg", "b.jpg")
    assert cfg.composite.regions == ("eyes", "mouth")


# --------------------------------------------------------------------------------------------------------------
# environment variables in shot-file paths, and `vidswap config show`


def test_shot_file_paths_expand_environment_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOW", "/shows/demo")
    monkeypatch.setenv("SHOT", "sh010")
    shot = write(tmp_path, "shot.yaml", "input: $SHOW/$SHOT/plate.####.exr\n"
                                        "sources: ['${SHOW}/cast/actor.jpg', actor2.jpg]\n"
                                        "output: {path: 'comp/$SHOT/face.$F4.exr'}\n"
                                        "target: {reference: $$literal/ref.png, mode: reference}\n")
    cfg = load_config(shot=shot)
    assert cfg.input == "/shows/demo/sh010/plate.####.exr"
    assert cfg.sources == ("/shows/demo/cast/actor.jpg", str(tmp_path / "actor2.jpg"))
    assert cfg.output.path == str(tmp_path / "comp" / "sh010" / "face.$F4.exr")  # $F4: Houdini frame token
    assert cfg.target.reference == str(tmp_path / "$literal" / "ref.png")  # $$ is a literal $


def test_unset_variable_is_a_config_error_naming_key_and_file(tmp_path, monkeypatch):
    monkeypatch.delenv("VIDSWAP_TEST_UNSET", raising=False)
    shot = write(tmp_path, "shot.yaml", "input: $VIDSWAP_TEST_UNSET/plate.mov\n")
    with pytest.raises(ConfigError, match=r"input in .*shot.yaml: environment variable \$VIDSWAP_TEST_UNSET"):
        load_config(shot=shot)


def test_expansion_is_text_only_never_a_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shot = write(tmp_path, "shot.yaml", "input: '$(touch pwned)/`touch pwned2`/plate.mov'\n")
    cfg = load_config(shot=shot)
    assert cfg.input == str(tmp_path / "$(touch pwned)" / "`touch pwned2`" / "plate.mov")
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()
    assert expand_env("${A}-$B-$F-$$", "k", "f", {"A": "1", "B": "2"}) == "1-2-$F-$"


def test_config_show_prints_every_value_with_its_origin(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from vidswap.cli import main

    monkeypatch.setenv("SHOT", "sh010")
    shot = write(tmp_path, "shot.yaml", "input: plates/$SHOT.mov\npreset: preview\noutput: {crf: 30}\n"
                                        "swap: {geometric: {crop_size: 320}}\n")
    result = CliRunner().invoke(main, ["config", "show", "--config", str(shot), "--scale", "0.75", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows["scale"] == {"value": 0.75, "from": "command line"}
    assert rows["output.crf"] == {"value": 30, "from": f"shot file {shot}"}
    assert rows["output.encoder_preset"] == {"value": "veryfast", "from": "preset preview"}
    assert rows["every"] == {"value": 1, "from": "default"}
    assert rows["swap.geometric.crop_size"]["from"] == f"shot file {shot}"
    assert rows["swap.geometric.shape"] == {"value": "source", "from": "default"}
    assert rows["input"] == {"value": str(tmp_path / "plates" / "sh010.mov"), "from": f"shot file {shot}",
                             "written": "plates/$SHOT.mov"}
    assert rows["preset"] == {"value": "preview", "from": f"shot file {shot}"}
    table = CliRunner().invoke(main, ["config", "show", "--config", str(shot), "--preset", "final"]).output
    assert re.search(r"^preset +final +command line$", table, re.MULTILINE)  # the flag beats the shot's preset
    assert re.search(r"^smoothing\.method +rts +preset final$", table, re.MULTILINE)
    assert "(as written: plates/$SHOT.mov)" in table
