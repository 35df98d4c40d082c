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
    pytest.param({"chemistry": {"elements": ["Na"]}}, "missing required key 'name'", id="missing-name"),
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
    pytest.param({**BASE, "task": {"kind": "csp"}}, "a 'csp' task needs 'target'", id="csp-without-target"),
    pytest.param(
        {**BASE, "task": {"kind": "csp", "target": "NaCl", "template_share": 1.5}},
        "'task.template_share': Input should be less than or equal to 1",
        id="template-share-above-1",
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
        {**BASE, "proposers": [{"kind": "builtin", "weights": {"strain": -1.0, "swap": 1.0}}]},
        "operator weights must not be negative: {'strain': -1.0}",
        id="negative-operator-weight",
    ),
    pytest.param(
        {**BASE, "validity": {"volume_ratio": [3, 0.25]}},
        "'validity.volume_ratio': [3.0, 0.25] is not a range of volume ratios",
        id="reversed-volume-range",
    ),
    pytest.param(
        {**BASE, "objectives": [{"name": "e_above_hull", "bounds": [0.5, 0.1]}]},
        "has bounds [0.5, 0.1]: the lower bound is above the upper one",
        id="reversed-objective-bounds",
    ),
    pytest.param(
        {**BASE, "mlip": {"backend": "chgnet", "model": "mine.pt"}},
        "'model' is not used by backend 'chgnet'",
        id="option-the-backend-ignores",
    ),
    pytest.param(
        {**BASE, "mlip": {"backend": "chgnet", "batch_atoms": 4096}},
        "'batch_atoms' is not used by backend 'chgnet'",
        id="atom-budget-the-chgnet-backend-ignores",
    ),
    pytest.param(
        {**BASE, "population_size": 1e9},
        "'population_size': Input should be less than or equal to 10000",
        id="huge-population",
    ),
    pytest.param(
        {**BASE, "mlip": {"fmax": float("inf")}},
        "'mlip.fmax': Input should be a finite number",
        id="infinite-number",
    ),
    pytest.param(
        {**BASE, "chemistry": {"elements": ["Na", "Cl"], "\n": None}},
        "unknown key 'chemistry.\\n' in 'chemistry'",
        id="control-character-in-a-key",
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


@pytest.mark.parametrize(("data", "message"), MALFORMED[:3] + MALFORMED[-5:])
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


def _cli_run(spec: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "matsearch.cli", "run", str(spec)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "400"},
        timeout=120,
    )


def test_garbage_model_file_is_refused_before_the_run_folder_exists(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"not a model" * 100)
    data = {**BASE, "output": str(tmp_path / "runs"), "mlip": {"model": "model.pt"}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(data))  # model.pt is next to the spec
    done = _cli_run(tmp_path / "spec.yaml")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "'mlip': cannot read model file" in done.stderr and "resume" not in done.stderr
    assert not (tmp_path / "runs").exists()


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: t\nchemistry:\n  elements: [Na, Cl]\n  max_atoms: 8\n  max_atoms: 20\n")
    with pytest.raises(SpecError, match=r"gives the key 'max_atoms' twice \(line 5\); keep one"):
        load_spec(spec)


def test_oversized_spec_and_alias_bomb_are_refused_quickly(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("name: t\n" + "# padding\n" * 200_000)
    with pytest.raises(SpecError, match="a spec may have at most 1000000"):
        load_spec(big)
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"{c}: &{c} [{', '.join(['*' + p] * 10)}]" for p, c in zip("abcdefg", "bcdefgh", strict=True)]
    (tmp_path / "bomb.yaml").write_text("\n".join(["name: t", "chemistry: {elements: [Na]}", *bomb]))
    with pytest.raises(SpecError, match="holds more than 100000 values"):
        load_spec(tmp_path / "bomb.yaml")


def test_file_paths_resolve_against_the_spec_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matsearch.scoring.custom import load_fitness

    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "fit.py").write_text("def atoms(structure, results):\n    return float(len(structure))\n")
    data = {
        **BASE,
        "custom": {"n": "fit.py:atoms", "dotted": "examples.custom_fitness:density"},
        "objectives": [{"name": "custom:n"}],
    }
    (folder / "spec.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path)  # not the spec's folder
    spec = load_spec(folder / "spec.yaml")
    assert spec.custom == {"n": f"{folder}/fit.py:atoms", "dotted": "examples.custom_fitness:density"}
    assert load_fitness(spec.custom["n"])([1, 2, 3], {}) == 3.0


def test_relative_model_file_resolves_against_the_spec_file(tmp_path: Path, monkeypatch) -> None:
    from matsearch.mlip import load_model

    folder = tmp_path / "project"
    folder.mkdir()
    load_model("default", device="cpu").save(folder / "ft.pt")
    (folder / "spec.yaml").write_text(yaml.safe_dump({**BASE, "mlip": {"model": "ft.pt"}}))
    monkeypatch.chdir(tmp_path)  # not the spec's folder
    assert load_spec(folder / "spec.yaml").mlip.model == str(folder / "ft.pt")
    (folder / "named.yaml").write_text(yaml.safe_dump({**BASE, "mlip": {"model": "chgnet-0.3.0"}}))
    assert load_spec(folder / "named.yaml").mlip.model == "chgnet-0.3.0"  # a name stays a name


def test_missing_relative_model_file_fails_before_the_run_folder_exists(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (tmp_path / "ft.pt").write_bytes(b"")  # in the working directory, not next to the spec
    data = {**BASE, "output": str(tmp_path / "runs"), "mlip": {"model": "ft.pt"}}
    (folder / "spec.yaml").write_text(yaml.safe_dump(data))
    done = subprocess.run(
        [sys.executable, "-m", "matsearch.cli", "run", str(folder / "spec.yaml")],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "400"},
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"'{folder / 'ft.pt'}' is neither a model name" in done.stderr
    assert not (tmp_path / "runs").exists()


def test_every_spec_field_has_a_description() -> None:
    """As spec.py promises: every key a user can write is described (`matsearch` docs and errors)."""
    from matsearch.spec import RunSpec, _models_in

    seen, stack, missing = set(), [RunSpec], []
    while stack:
        model = stack.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            if not (field.description or "").strip():
                missing.append(f"{model.__name__}.{name}")
            stack.extend(_models_in(field.annotation))
    assert len(seen) > 15 and not missing, missing
