"""The command line is generated from the config dataclasses: every field has its flag."""

from __future__ import annotations

import dataclasses

import pytest

from mvr3d.cli import build_parser, main
from mvr3d.cli.common import config_from_args, runtime_from_args
from mvr3d.cli.options import field_flag, scalar_fields
from mvr3d.engine.benchmark import config_key
from mvr3d.models import MVRConfig
from mvr3d.models.mvr.config import Runtime
from mvr3d.render import RenderConfig
from mvr3d.render.poses import make_poses

# Values that pass validation where "the default, changed" would not (sizes must divide).
SPECIAL = {"render_size": "448", "image_size": "112", "views": "paper27", "backbone": "tiny_test",
           "weights": "random", "device": "cpu", "max_points": "500"}
# Flags a field's other value is only valid with.
NEEDS = {"null_twins": ["--reference", "template"]}


def other_value(field: dataclasses.Field, default: object) -> tuple[list[str], object]:
    """Command-line words that set ``field`` to a value other than ``default``, and that value."""
    flag = field_flag(field.name)
    if field.name in SPECIAL:
        text = SPECIAL[field.name]
        return [flag, text], (int(text) if isinstance(default, int) or field.name == "max_points" else text)
    if isinstance(default, bool):
        return [flag if not default else "--no-" + flag[2:]], not default
    if "choices" in field.metadata:
        value = next(c for c in field.metadata["choices"] if c != default)
        return [flag, value], value
    if isinstance(default, int):
        return [flag, str(default + 1)], default + 1
    value = default * 0.5 if default else 0.001
    return [flag, repr(value)], value


CASES = [("config", f) for f in scalar_fields(MVRConfig)] + [("render", f) for f in scalar_fields(RenderConfig)]


@pytest.mark.parametrize(("owner", "field"), CASES, ids=[f"{o}.{f.name}" for o, f in CASES])
def test_every_config_field_has_a_working_flag(owner: str, field: dataclasses.Field, tmp_path) -> None:
    defaults = MVRConfig() if owner == "config" else MVRConfig().render
    words, value = other_value(field, getattr(defaults, field.name))
    for command in (["fit", "--data", str(tmp_path), "--out", str(tmp_path / "o")],
                    ["benchmark", "--data", str(tmp_path), "--out", str(tmp_path / "o")]):
        needed = NEEDS.get(field.name, [])
        config = config_from_args(build_parser().parse_args([*command, "--method", "mvr", *needed, *words]))
        got = getattr(config if owner == "config" else config.render, field.name)
        assert got == value, f"{' '.join(words)} gave {got!r}"


def test_runtime_flags_stay_out_of_the_config_key(tmp_path) -> None:
    base = ["benchmark", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--method", "mvr"]
    plain = build_parser().parse_args(base)
    fast = build_parser().parse_args(
        [*base, "--compile", "--device", "cpu", "--view-batch", "3", "--score-dtype", "bfloat16"])
    assert runtime_from_args(fast) == Runtime(device="cpu", compile=True, view_batch=3, score_dtype="bfloat16")
    assert runtime_from_args(plain) == Runtime()
    assert config_key(config_from_args(plain)) == config_key(config_from_args(fast))
    changed = config_from_args(build_parser().parse_args([*base, "--calibrate"]))
    assert config_key(changed) != config_key(config_from_args(plain))


def test_generated_mvr_flags_are_refused_for_other_methods(tmp_path, capsys) -> None:
    argv = ["fit", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--calibrate", "--depth-range", "near"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--calibrate, --depth-range only apply to --method mvr, not template (the default method)" in err
    assert not (tmp_path / "o").exists()


def test_version_builds_no_sub_command_and_imports_no_torch() -> None:
    import subprocess
    import sys

    code = ("import sys\nfrom mvr3d.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    from mvr3d import __version__

    assert out == ["mvr3d", __version__, "False"]


def test_only_the_requested_sub_command_is_built() -> None:
    from mvr3d.cli import _requested

    assert _requested(["-v", "fit", "--data", "x"]) == "fit"
    assert _requested(["--version"]) == ""
    assert _requested(["--help"]) is None
    assert _requested(["fitt"]) is None  # a typo: the full parser names the choices
    parser = build_parser("predict")
    assert parser.parse_args(["predict", "--checkpoint", "c", "--input", "i", "--output", "o"]).func


def test_cpu_preset_sets_the_demo_settings_and_flags_override_it(tmp_path) -> None:
    from mvr3d.engine.demo import demo_config

    base = ["fit", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--method", "mvr", "--preset", "cpu"]
    assert config_from_args(build_parser().parse_args(base)) == demo_config(None, 0)
    tuned = config_from_args(build_parser().parse_args([*base, "--iterations", "7", "--render-size", "448"]))
    assert tuned.iterations == 7 and tuned.render.render_size == 448 and tuned.render.image_size == 112
    assert config_from_args(build_parser().parse_args(base[:-2])) == MVRConfig()


def test_one_render_flag_keeps_the_other_mvr_render_defaults(tmp_path) -> None:
    argv = ["fit", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--method", "mvr", "--render-size", "448"]
    render = config_from_args(build_parser().parse_args(argv)).render
    assert render == dataclasses.replace(MVRConfig().render, render_size=448)


def test_preset_is_refused_for_other_methods(tmp_path, capsys) -> None:
    assert main(["fit", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--preset", "cpu"]) == 2
    assert "--preset only apply to --method mvr" in capsys.readouterr().err


def test_full_size_mvr_on_the_cpu_points_to_the_cpu_preset(tmp_path, capsys) -> None:
    from mvr3d.cli.fit import _hint_cpu_preset

    base = ["fit", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--method", "mvr", "--device", "cpu"]
    for extra, hinted in (([], True), (["--preset", "cpu"], False), (["--image-size", "112"], False),
                          (["--reference", "template"], False)):  # nothing to train
        args = build_parser().parse_args([*base, *extra])
        _hint_cpu_preset(args, config_from_args(args))
        assert ("--preset cpu fits in about 2 minutes" in capsys.readouterr().err) == hinted, extra


def test_reference_preset_sets_the_template_reference(tmp_path) -> None:
    base = ["fit", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--method", "mvr", "--preset", "reference"]
    config = config_from_args(build_parser().parse_args(base))
    assert (config.reference, config.view_selection, config.align) == ("template", "scan", True)
    assert config.sparse_discount == 1.5 and (config.null_twins, config.twin_rule) == (1, "top")
    assert config.views == "ring4x30+4x60" and make_poses(config.views).shape == (9, 3, 3)
    flagged = config_from_args(build_parser().parse_args([*base, "--view-selection", "fixed"]))
    assert (flagged.reference, flagged.view_selection) == ("template", "fixed")  # flags override the preset
