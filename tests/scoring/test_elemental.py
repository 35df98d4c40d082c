"""Elemental references computed with the run's own MLIP, and their use in the hull."""

from __future__ import annotations

import pytest

from matsearch.data import load_elemental_references
from matsearch.errors import DataError
from matsearch.evaluation.evaluator import Evaluator
from matsearch.evaluation.local import LocalExecutor
from matsearch.evaluation.mlip_relaxer import MLIPRelaxer
from matsearch.relax_defaults import RelaxSettings
from matsearch.scoring.elemental import mlip_elemental_references
from matsearch.scoring.hull import HullReference
from matsearch.spec import Scoring


def test_mlip_references_are_close_to_dft_and_replace_only_their_elements(use_mirror) -> None:
    executor = LocalExecutor(
        Evaluator(MLIPRelaxer(settings=RelaxSettings(steps=150)), Scoring()), chunk_size=64
    )
    refs = mlip_elemental_references(["Na", "Mg"], executor)
    dft = load_elemental_references()
    # CHGNet was trained on MP PBE: its own μ_Na and μ_Mg sit within a few tens of meV of DFT
    assert refs["Na"] == pytest.approx(dft["Na"], abs=0.05)
    assert refs["Mg"] == pytest.approx(dft["Mg"], abs=0.05)

    hull = HullReference.from_registry("mp20-subset")
    mixed = hull.with_elemental_references(refs, "test MLIP")
    # the formation energy of pure Na at μ_Na is zero on the new scale, and Cl still uses DFT
    assert mixed.formation_energy_per_atom("Na", refs["Na"]) == pytest.approx(0.0, abs=1e-9)
    assert mixed.formation_energy_per_atom("Cl", dft["Cl"]) == pytest.approx(0.0, abs=1e-9)
    assert "test MLIP" in mixed.describe() and "test MLIP" not in hull.describe()


def test_element_without_reference_structures_is_a_clear_error(use_mirror) -> None:
    executor = LocalExecutor(Evaluator(MLIPRelaxer(settings=RelaxSettings(steps=5)), Scoring()))
    with pytest.raises(DataError, match="has no reference structures for Og"):
        mlip_elemental_references(["Og"], executor)
