"""Run-spec validation: each malformed spec gives one sentence naming the key, and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from matsearch.errors import SpecError
from matsearch.spec import load_spec, parse_spec

BASE = {"name": "t", "chemistry": {"elements": ["Na", "Cl"]}}

MALFORMED = [
    pytest.param(
        {**BASE, "colour": "red"},
        "unknown key 'colour'; allowed keys: name, seed",
        id="unknown-top-key",
    ),
    pytest.param(
        {**BASE, "mlip": {"fmx": 0.1}},
        "unknown key 'mlip.fmx' in 'mlip'; allowed keys: backend, model, device, fmax",
        id="unknown-nested-key",
    ),
    pytest.param(
        {**BASE, "proposers": [{"kind": "builtin", "wieghts": {}}]},
        "unknown key 'proposers[0].wieghts' in 'proposers[0]'; allowed keys: kind, fraction, weights",
        id="unknown-proposer-key",
    ),
    pytest.param(
        {**BASE, "generations": "many"},
        "'generations': Input should be a valid integer",
        id="wrong-type",
    ),
    pytest.param(
        {"chemistry": {"elements": ["Na"]}}, "missing required key 'name'", id="missing-name"
    ),
    pytest.param(
        {**BASE, "chemistry": {"elements": ["Na", "Xx"]}},
        "'chemistry.elements': 'Xx' is not a chemical element symbol",
        id="unknown-element",
    ),
    pytest.param(
        {**BASE, "chemistry": {"elements": []}},
        "'chemistry': give at least one element in 'elements' or one chemical system in 'systems'",
        id="empty-chemistry",
    ),
    pytest.param(
        {**BASE, "task": {"kind": "csp", "target": "KBr"}},
        "task.target 'KBr' contains Br, K, which chemistry does not allow",
        id="impossible-csp-target",
    ),
    pytest.param(
        {
            **BASE,
            "chemistry": {"elements": ["Na", "Cl"], "max_atoms": 1},
            "task": {"kind": "csp", "target": "NaCl"},
        },
        "task.target 'NaCl' needs more atoms than chemistry.max_atoms = 1",
        id="csp-target-too-big",
    ),
    pytest.param(
        {**BASE, "task": {"kind": "csp"}}, "a 'csp' task needs 'target'", id="csp-without-target"
    ),
    pytest.param(
        {**BASE, "objectives": [{"name": "beauty"}]},
        "'objectives[0].name': unknown objective 'beauty'; allowed: e_above_hull",
        id="unknown-objective",
    ),
    pytest.param(
        {**BASE, "proposers": [{"kind": "gpt"}]},
        "'proposers[0]' has an unknown kind; allowed kinds: builtin, openai, hf",
        id="unknown-proposer",
    ),
    pytest.param(
        {**BASE, "reference": {"hull": "no/such/hull.csv"}},
        "hull.csv' is neither a known reference (mp20-subset, mp-2023-01-10) nor an existing CSV/JSON file",
        id="missing-reference-data",
    ),
    pytest.param(
        {**BASE, "mlip": {"backend": "mace"}},
        "'mlip.backend': Input should be 'matsearch' or 'chgnet'",
        id="bad-mlip",
    ),
]


@pytest.mark.parametrize(("data", "message"), MALFORMED)
def test_malformed_spec_names_the_key(data: dict, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize(("data", "message"), MALFORMED[:3] + MALFORMED[-2:])
def test_cli_reports_one_line_and_exit_code_2(tmp_path: Path, data: dict, message: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data))
    done = subprocess.run(
        [sys.executable, "-m", "matsearch.cli", "run", str(spec)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "400"},
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: invalid spec:")
    assert message in lines[0]


def test_unreadable_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\nchemistry: [unclosed\n")
    with pytest.raises(SpecError, match=r"is not valid YAML at line \d"):
        load_spec(bad)
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "missing.yaml")


def test_dry_run_prints_resolved_spec_with_defaults(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"name": "dry", "chemistry": {"systems": ["Li-Fe-O"]}}))
    done = subprocess.run(
        [sys.executable, "-m", "matsearch.cli", "run", "--dry-run", str(spec)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert resolved["chemistry"]["max_atoms"] == 20
    assert resolved["mlip"]["fmax"] == 0.05
    assert resolved["proposers"] == [{"kind": "builtin", "fraction": 1.0, "weights": None}]
    assert not (tmp_path / "runs").exists()


def test_systems_give_allowed_elements_and_api_key_is_not_dumped() -> None:
    from matsearch.spec import dump_spec

    spec = parse_spec(
        {
            "name": "k",
            "chemistry": {"systems": ["Li-Fe-O"], "elements": ["P"]},
            "proposers": [{"kind": "openai", "model": "m", "api_key": "sk-secret-123"}],
        }
    )
    assert spec.chemistry.allowed_elements == ("Li", "O", "P", "Fe")
    assert spec.proposers[0].api_key.get_secret_value() == "sk-secret-123"
    assert "sk-secret" not in dump_spec(spec)
