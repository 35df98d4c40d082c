"""Relaxation results become scores; an energy in a hole of the MLIP becomes a failure."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure

from matsearch.candidate import Candidate, Status
from matsearch.results import RelaxResult
from matsearch.scoring.hull import HullReference
from matsearch.scoring.objectives import apply_relax_result


@pytest.fixture(scope="module")
def hull() -> HullReference:
    return HullReference.from_registry("mp20-subset")


def _gdmg3() -> Structure:
    return Structure(
        Lattice.cubic(4.6), ["Gd", "Mg", "Mg", "Mg"], [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    )


def test_a_relaxation_into_an_mlip_hole_fails_with_the_reason(hull: HullReference) -> None:
    """GdMg3 at −84.5 eV/atom (seen in a CSP run) is not a material: no DFT formation energy in MP is
    below −4.5 eV/atom."""
    candidate = Candidate(
        id=1, generation=0, origin="builtin", operator="random", structure=_gdmg3(), status=Status.VALID
    )
    apply_relax_result(candidate, RelaxResult(_gdmg3(), -84.546, -4.0, converged=True), hull)
    assert candidate.status == Status.FAILED
    assert candidate.reason.startswith("unphysical_energy: formation energy -79.83 eV/atom is below -5")
    assert candidate.e_above_hull is None and candidate.relaxed is None


def test_a_plausible_relaxation_is_scored(hull: HullReference) -> None:
    candidate = Candidate(
        id=2, generation=1, origin="builtin", operator="swap", structure=_gdmg3(), status=Status.VALID
    )
    apply_relax_result(candidate, RelaxResult(_gdmg3(), -4.776, -4.70, converged=True), hull)
    assert candidate.status == Status.SCORED
    assert candidate.scores["deformation_energy"] == pytest.approx(0.076)
    assert -1.0 < candidate.scores["formation_energy"] < 0.5
