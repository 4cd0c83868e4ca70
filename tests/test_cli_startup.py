"""``mvr3d --help``, ``--version``, a typo and no command answer without importing the
sub-commands (torch: seconds), from the help strings in ``mvr3d.cli.COMMANDS``, which
must stay what each sub-command's module registers."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys

import pytest

from mvr3d.cli import COMMANDS, build_parser, main

# Runs main, then says whether torch was imported: behaviour, not timing.
_PROBE = (
    "import sys\n"
    "from mvr3d.cli import main\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "except SystemExit:\n"
    "    pass\n"
    "print('torch imported:', 'torch' in sys.modules)\n"
)
_WIDE = {"COLUMNS": "200", "PYTHON_COLORS": "0", "NO_COLOR": "1"}  # one help layout here and there


def probe(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **_WIDE})


@pytest.mark.parametrize("argv", [["--help"], ["-v", "-h"], ["--version"], ["fitt"], []])
def test_top_level_answers_do_not_import_torch(argv: list[str]) -> None:
    done = probe(argv)
    assert done.stdout.splitlines()[-1] == "torch imported: False", done.stderr


def test_top_level_help_is_the_full_parsers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in _WIDE.items():
        monkeypatch.setenv(name, value)
    full = build_parser().format_help()
    assert probe(["--help"]).stdout == full + "torch imported: False\n"


def test_a_typo_lists_every_command() -> None:
    error = probe(["fitt"]).stderr
    assert "invalid choice: 'fitt'" in error and all(repr(name) in error for name in COMMANDS)


class _Recorder:
    """Stands in for argparse's subparsers: keeps the help each module registers."""

    def __init__(self) -> None:
        self.helps: dict[str, str | None] = {}

    def add_parser(self, name: str, **kwargs: object) -> argparse.ArgumentParser:
        self.helps[name] = kwargs.get("help")
        return argparse.ArgumentParser(prog=name)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_commands_help_is_what_the_module_registers(name: str) -> None:
    recorder = _Recorder()
    importlib.import_module(f"mvr3d.cli.{COMMANDS[name].module}").register(recorder)
    assert recorder.helps == {name: COMMANDS[name].help}


def test_a_sub_commands_help_still_comes_from_its_module(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as done:
        main(["export", "--help"])
    assert done.value.code == 0 and "--checkpoint DIR" in capsys.readouterr().out
