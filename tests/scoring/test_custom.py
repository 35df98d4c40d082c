"""Custom fitness: registry, loading by dotted path or file, error capture, the shipped example."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from pymatgen.core import Lattice, Structure

from matsearch.candidate import Candidate, Status
from matsearch.errors import SpecError
from matsearch.results import RelaxResult
from matsearch.scoring.custom import (
    apply_custom_fitness,
    evaluate_fitness,
    fitness_inputs,
    load_fitness,
    load_fitness_table,
    register_fitness,
    registered_fitness,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from the repository root, where `examples.custom_fitness` is importable."""
    monkeypatch.chdir(REPO)
    return REPO


def _fcc_al(a: float = 4.05) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Al"], [[0, 0, 0]])


def _scored_candidate(structure: Structure) -> Candidate:
    return Candidate(
        id=12,
        generation=3,
        origin="builtin",
        operator="strain",
        structure=structure.copy(),
        relaxed=structure,
        status=Status.SCORED,
        energy_per_atom=-3.7,
        initial_energy_per_atom=-3.6,
        e_above_hull=0.02,
        converged=True,
        relax_steps=40,
        scores={"e_above_hull": 0.02, "deformation_energy": 0.1, "formation_energy": -0.5},
    )


# --- registry -----------------------------------------------------------------------------------


def test_register_and_load_by_name() -> None:
    @register_fitness("t_volume")
    def volume(structure, results):
        return structure.volume

    assert registered_fitness()["t_volume"] is volume
    assert load_fitness("t_volume") is volume


def test_register_refuses_a_second_function_and_bad_names() -> None:
    @register_fitness("t_taken")
    def first(structure, results):
        return 1.0

    with pytest.raises(ValueError, match="fitness name 't_taken' is already registered by .*first"):

        @register_fitness("t_taken")
        def second(structure, results):
            return 2.0

    with pytest.raises(ValueError, match=r"fitness name 'has-dash' must be a Python-style identifier"):
        register_fitness("has-dash")


def test_unknown_registered_name_lists_the_known_ones() -> None:
    with pytest.raises(SpecError, match=r"custom fitness 'nope' is not registered \(registered: .*\)"):
        load_fitness("nope")


# --- loading by path ----------------------------------------------------------------------------


def test_dotted_path_to_the_example(in_repo: Path) -> None:
    density = load_fitness("examples.custom_fitness:density")
    assert density(_fcc_al(), {}) == pytest.approx(2.70, abs=0.01)  # fcc Al, a = 4.05 Å
    assert load_fitness("density") is density  # its decorator registered it on import


def test_file_path_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "my_fitness.py"
    source.write_text("def atoms(structure, results):\n    return float(len(structure))\n")
    monkeypatch.chdir(tmp_path)
    fn = load_fitness("my_fitness.py:atoms")
    assert fn(_fcc_al().get_primitive_structure(), {}) == 1.0
    assert load_fitness(f"{source}:atoms") is fn


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        (
            "no_such_pkg_xyz.fit:f",
            "custom fitness 'no_such_pkg_xyz.fit:f': cannot import module 'no_such_pkg_xyz.fit' "
            "(ModuleNotFoundError: No module named 'no_such_pkg_xyz'); check the path and that it "
            "is importable",
        ),
        (
            "examples.custom_fitness:densty",
            "custom fitness 'examples.custom_fitness:densty': module 'examples.custom_fitness' has "
            "no attribute 'densty'",
        ),
        (
            "examples.custom_fitness:SUBSTRATE_A_ANGSTROM",
            "custom fitness 'examples.custom_fitness:SUBSTRATE_A_ANGSTROM' is not a function (it is float)",
        ),
        (
            "examples.custom_fitness:",
            "custom fitness 'examples.custom_fitness:' must look like 'package.module:function' "
            "or 'path/to/file.py:function'",
        ),
        (
            "missing_file.py:f",
            "custom fitness 'missing_file.py:f': cannot import module 'missing_file.py' "
            "(FileNotFoundError: no file",
        ),
    ],
)
def test_bad_references_give_one_sentence(in_repo: Path, reference: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        load_fitness(reference)
    assert str(info.value).startswith(message)


def test_module_that_fails_on_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken_fitness.py").write_text("raise RuntimeError('needs a GPU')\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError, match=r"\(RuntimeError: needs a GPU\)"):
        load_fitness("broken_fitness:f")


def test_table_checks_names(in_repo: Path) -> None:
    table = load_fitness_table({"dens": "examples.custom_fitness:density"})
    assert set(table) == {"dens"}
    with pytest.raises(SpecError, match="custom: fitness name 'bad name' must be"):
        load_fitness_table({"bad name": "examples.custom_fitness:density"})


# --- evaluation ---------------------------------------------------------------------------------


def test_float_and_dict_results_become_scores() -> None:
    al = _fcc_al()
    assert evaluate_fitness("vol", lambda s, r: s.volume, al, {}).scores == {
        "custom:vol": pytest.approx(4.05**3)
    }
    outcome = evaluate_fitness("two", lambda s, r: {"a": 1, "b": np.float32(2.5)}, al, {})
    assert outcome.error is None
    assert outcome.scores == {"custom:two.a": 1.0, "custom:two.b": 2.5}


@pytest.mark.parametrize(
    ("fn", "error"),
    [
        (lambda s, r: 1 / 0, "custom fitness 'f' raised ZeroDivisionError: division by zero"),
        (lambda s, r: r["band_gap"], "custom fitness 'f' raised KeyError: 'band_gap'"),
        (
            lambda s, r: math.nan,
            "custom fitness 'f' returned nan; it must return a finite number or a dict of finite numbers",
        ),
        (
            lambda s, r: "2.0",
            "custom fitness 'f' returned '2.0'; it must return a finite number or a dict of finite numbers",
        ),
        (lambda s, r: True, "custom fitness 'f' returned True; it must return a finite number"),
        (
            lambda s, r: {"x": None},
            "custom fitness 'f' returned {'x': None}; every key must be a string and every value "
            "a finite number",
        ),
    ],
)
def test_failures_are_reasons_not_exceptions(fn, error: str) -> None:
    outcome = evaluate_fitness("f", fn, _fcc_al(), {})
    assert outcome.scores == {}
    assert outcome.error.startswith(error)


def test_function_cannot_change_the_candidate_structure() -> None:
    def vandal(structure, results):
        structure.scale_lattice(1000.0)
        return 0.0

    candidate = _scored_candidate(_fcc_al())
    apply_custom_fitness(candidate, {"vandal": vandal})
    assert candidate.relaxed.volume == pytest.approx(4.05**3)


def test_apply_to_candidate_with_example_functions(in_repo: Path) -> None:
    functions = load_fitness_table(
        {
            "density": "examples.custom_fitness:density",
            "lattice_mismatch": "examples.custom_fitness:lattice_mismatch",
            "packing": "examples.custom_fitness:packing",
        }
    )
    functions["broken"] = lambda s, r: r["band_gap"]
    candidate = _scored_candidate(_fcc_al(4.1))
    relax = RelaxResult(
        structure=candidate.relaxed,
        energy_per_atom=-3.7,
        initial_energy_per_atom=-3.6,
        forces_max=0.01,
        stress_gpa=[[0.1, 0, 0], [0, 0.1, 0], [0, 0, 0.1]],
    )
    errors = apply_custom_fitness(candidate, functions, relax)
    assert errors == {"broken": "custom fitness 'broken' raised KeyError: 'band_gap'"}
    assert candidate.extra["custom_fitness_errors"] == errors
    assert candidate.scores["custom:density"] == pytest.approx(2.70 * (4.05 / 4.1) ** 3, abs=0.01)
    assert candidate.scores["custom:lattice_mismatch"] == pytest.approx(0.05 / 4.05)
    assert candidate.scores["custom:packing.volume_per_atom"] == pytest.approx(4.1**3 / 4)
    assert candidate.scores["custom:packing.energy_density"] == pytest.approx(-3.7 / (4.1**3 / 4))
    assert candidate.scores["e_above_hull"] == 0.02  # untouched


def test_fitness_inputs_carry_energies_and_stress() -> None:
    candidate = _scored_candidate(_fcc_al())
    stress = [[0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]]
    relax = RelaxResult(candidate.relaxed, -3.7, -3.6, forces_max=0.02, stress_gpa=stress)
    results = fitness_inputs(candidate, relax)
    assert results["energy_per_atom"] == -3.7
    assert results["e_above_hull"] == 0.02
    assert results["formation_energy"] == -0.5
    assert results["deformation_energy"] == 0.1
    assert results["stress"] == stress and results["forces_max"] == 0.02
    assert results["formula"] == "Al" and results["id"] == 12
    assert fitness_inputs(candidate)["stress"] is None


def test_example_spec_names_loadable_functions(in_repo: Path) -> None:
    spec = yaml.safe_load((in_repo / "examples" / "custom_fitness.yaml").read_text())
    functions = load_fitness_table(spec["custom"])
    objective_names = {o["name"] for o in spec["objectives"]}
    assert {f"custom:{name}" for name in functions} <= objective_names
    candidate = _scored_candidate(_fcc_al())
    assert apply_custom_fitness(candidate, functions) == {}
    assert candidate.scores["custom:lattice_mismatch"] == pytest.approx(0.0, abs=1e-9)
