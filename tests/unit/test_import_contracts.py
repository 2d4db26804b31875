"""The rooms are enforced: every import-linter contract in pyproject.toml is kept
(`lint-imports`; docs/architecture.md, "Rooms")."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = [c["id"] for c in tomllib.loads((ROOT / "pyproject.toml").read_text())
             ["tool"]["importlinter"]["contracts"]]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_the_rooms_have_contracts():
    assert {"semcache", "routing", "budgets"} <= set(CONTRACTS)


@pytest.mark.parametrize("contract", CONTRACTS)
def test_contract_is_kept(contract):
    run = subprocess.run([str(LINT_IMPORTS), "--no-cache", "--contract", contract], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[run.stdout.find("Broken contracts"):] or run.stderr
