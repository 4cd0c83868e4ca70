"""Issue 18's hostile cases (fuzz/hostile_probe.py), each run in-process under a time limit:
no traceback, no hang, no user file changed, the expected exit status and message."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fuzz"))
import hostile_probe  # noqa: E402

CASES = [c for c in hostile_probe.CASES if c.needs != "root" or os.geteuid() == 0]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> hostile_probe.Env:
    shared = hostile_probe.Env(tmp_path_factory.mktemp("hostile"))
    shared.make_checkpoint()
    return shared


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_case(case: hostile_probe.Case, env: hostile_probe.Env, tmp_path: Path) -> None:
    result = hostile_probe.run_case(case, env, tmp_path, in_process=True)
    assert not result.problems, f"{result.problems}\n{result.output[-3000:]}"
