"""The evaluation stage in this process: relaxation, then the property scans, for a whole batch."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure

from matsearch.evaluation.evaluator import PROPERTY_OBJECTIVES, Evaluator
from matsearch.evaluation.local import LocalExecutor
from matsearch.evaluation.mlip_relaxer import MLIPRelaxer
from matsearch.relax_defaults import RelaxSettings
from matsearch.spec import Scoring


def _rocksalt(a: float, species: tuple[str, str] = ("Na", "Cl")) -> Structure:
    cubic = Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), list(species), [[0, 0, 0], [0.5] * 3])
    return cubic.get_primitive_structure()


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    scoring = Scoring(bulk_modulus={"n_points": 5, "steps": 60}, strain_energy={"steps": 60})
    return Evaluator(MLIPRelaxer(device="cpu", settings=RelaxSettings(steps=100)), scoring)


def test_every_property_on_every_relaxed_structure_and_none_on_a_failed_one(evaluator: Evaluator) -> None:
    californium_oxide = _rocksalt(4.6, ("Cf", "O"))
    structures = [_rocksalt(5.6), californium_oxide, _rocksalt(5.2, ("Mg", "O"))]
    nacl, failed, mgo = evaluator.evaluate(structures, ["bulk_modulus", "strain_energy"])
    assert failed.relax.error is not None and not failed.scores and not failed.errors
    for evaluation in (nacl, mgo):
        assert evaluation.relax.error is None
        assert set(evaluation.scores) == {"bulk_modulus", "strain_energy"}, evaluation.errors
        assert evaluation.scores["strain_energy"] > 0
        assert evaluation.property_time_s > 0
    assert 15 < nacl.scores["bulk_modulus"] < 40  # GPa; DFT-PBE NaCl ≈ 24 GPa
    assert mgo.scores["bulk_modulus"] > 3 * nacl.scores["bulk_modulus"]  # MgO ≈ 150 GPa


def test_relaxation_only_when_no_property_is_asked_for(evaluator: Evaluator) -> None:
    (evaluation,) = evaluator.evaluate([_rocksalt(5.6)])
    assert evaluation.relax.error is None and evaluation.scores == {} and evaluation.property_time_s == 0


def test_an_unknown_property_is_refused(evaluator: Evaluator) -> None:
    allowed = ", ".join(PROPERTY_OBJECTIVES)  # bulk_modulus, strain_energy, density, ...
    assert allowed.startswith("bulk_modulus, strain_energy")
    message = f"^unknown properties shear_modulus; allowed: {allowed}$"
    with pytest.raises(ValueError, match=message):
        evaluator.evaluate([_rocksalt(5.6)], ["shear_modulus"])


def test_local_executor_yields_every_index_once_in_chunks(evaluator: Evaluator) -> None:
    structures = [_rocksalt(a) for a in (5.5, 5.6, 5.7)]
    got = list(LocalExecutor(evaluator, chunk_size=2).evaluate(structures, ["bulk_modulus"]))
    assert [i for i, _ in got] == [0, 1, 2]
    assert all("bulk_modulus" in e.scores or "bulk_modulus" in e.errors for _, e in got)
