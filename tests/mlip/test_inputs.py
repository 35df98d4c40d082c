"""What reaches the MLIP: skewed cells are reduced, flat, non-finite, coincident or over-dense
structures are refused with a reason before anything large is allocated, and batches stay under
their memory budget."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from matsearch.mlip import BatchedState, RelaxSettings, UnsupportedStructure, load_model, relax
from matsearch.mlip.inputs import reduce_cell
from matsearch.mlip.optimizers.autobatch import AtomBudgetQueue

A_NACL = 5.64  # Å, rock salt near the model's minimum


def _nacl() -> Structure:
    """Conventional rock-salt NaCl, 8 atoms."""
    return Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(A_NACL), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )


def _skewed(structure: Structure, k: int) -> Structure:
    """The same crystal on the basis a, b + k a, c + k a + k b (unimodular, very skewed)."""
    basis = np.array([[1, 0, 0], [k, 1, 0], [k, k, 1]]) @ structure.lattice.matrix
    return Structure(Lattice(basis), structure.species, structure.cart_coords, coords_are_cartesian=True)


FLAT = Structure(Lattice([[5, 0, 0], [0, 5, 0], [0, 0, 1e-6]]), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3])

# Runs in a fresh interpreter so that the peak (VmHWM) is that of this evaluation alone (plus the
# interpreter, torch and the model): a regression that allocates gigabytes shows up here.
_PEAK_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from pymatgen.core import Lattice, Structure
    from matsearch.mlip import UnsupportedStructure, load_model
    matrix, species, coords = json.loads(sys.argv[1])
    structure = Structure(Lattice(matrix), species, coords, coords_are_cartesian=True)
    try:
        out = load_model("default").predict([structure])[0]
        result = {"energy": out["energy"], "forces": np.asarray(out["forces"]).tolist()}
    except UnsupportedStructure as exc:
        result = {"error": str(exc)}
    # VmHWM is this process's own peak; ru_maxrss would also count the parent (pytest) that it was
    # forked from, since Linux carries the old peak across exec
    with open("/proc/self/status") as status:
        peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    result["peak_gb"] = peak_kb / 1024**2
    print(json.dumps(result))
    """
)


def _predict_in_subprocess(structure: Structure) -> dict:
    argument = json.dumps(
        [
            structure.lattice.matrix.tolist(),
            [str(s) for s in structure.species],
            structure.cart_coords.tolist(),
        ]
    )
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, argument], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def model():
    return load_model("default")


def test_skewed_nacl_is_evaluated_on_a_reduced_cell_in_bounded_memory(model) -> None:
    # Before the fix this took 4.6 GB and 24 s; the issue asks for < 1 GB and a few seconds (not
    # asserted: the machine is shared). Peak RSS includes Python, torch and the model (~0.3 GB).
    skewed = _skewed(_nacl(), 100)
    assert max(skewed.lattice.abc) > 700
    result = _predict_in_subprocess(skewed)
    assert result["peak_gb"] < 1.0
    reference = model.predict([_nacl()])[0]
    assert result["energy"] == pytest.approx(reference["energy"], abs=1e-4)  # the same crystal
    assert np.allclose(result["forces"], reference["forces"], atol=1e-4)


def test_flat_cell_fails_with_a_reason_not_out_of_memory(model) -> None:
    # Before the fix the flat cell grew to 23 GB and was killed by the kernel.
    result = _predict_in_subprocess(FLAT)
    assert "would give each atom about" in result["error"]
    assert f"neighbours within {model.cutoff:g} Å" in result["error"]
    assert result["peak_gb"] < 1.0


def test_reduction_keeps_the_crystal_and_leaves_reduced_cells_alone() -> None:
    nacl = _nacl()
    assert reduce_cell(nacl) is nacl
    reduced = reduce_cell(_skewed(nacl, 7))
    assert sorted(reduced.lattice.abc) == pytest.approx([A_NACL] * 3)
    assert [s.species_string for s in reduced] == [s.species_string for s in nacl]


BAD = {
    "nan_coordinate": (
        Structure(Lattice.cubic(5), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, math.nan]]),
        "NaN or infinity",
    ),
    "coincident_atoms": (
        Structure(Lattice.cubic(5), ["Na", "Cl"], [[0, 0, 0], [0, 0, 1e-4]]),
        "they coincide",
    ),
    "flat_cell": (FLAT, "more than the 1000 the model accepts"),
}


@pytest.mark.parametrize(("structure", "message"), BAD.values(), ids=BAD.keys())
def test_predict_refuses_bad_input_with_a_reason_naming_the_structure(model, structure, message) -> None:
    with pytest.raises(UnsupportedStructure, match=rf"^structure 1 \(Na1 Cl1\): .*{message}"):
        model.predict([_nacl(), structure])


@pytest.mark.parametrize("name", ["nan_coordinate", "coincident_atoms"])
def test_compute_refuses_bad_input_instead_of_returning_numbers(model, name: str) -> None:
    structure, message = BAD[name]
    state = BatchedState.from_structures([structure])
    with pytest.raises(UnsupportedStructure, match=message):
        model.compute(state)


def test_relax_fails_bad_inputs_with_reasons_and_relaxes_the_rest(model) -> None:
    structures = [_nacl(), *(s for s, _ in BAD.values()), _skewed(_nacl(), 30)]
    results = relax(structures, model, RelaxSettings(fmax=0.1, steps=5))
    for (_, message), result in zip(BAD.values(), results[1:4], strict=True):
        assert result.structure is None and message in result.error
    for result in (results[0], results[4]):
        assert result.error is None
        assert result.energy_per_atom == pytest.approx(results[0].energy_per_atom, abs=1e-4)
    assert max(results[4].structure.lattice.abc) < 6.0  # relaxed on the reduced basis


def test_memory_budget_fails_what_cannot_fit_and_splits_batches() -> None:
    nacl = _nacl()
    model = load_model("default")
    one = model.estimated_bytes(len(nacl), nacl.volume)
    assert 1e6 < one < 1e8  # ~10 MB measured for 8 atoms (energy, forces and stress)
    results = relax([nacl], model, RelaxSettings(steps=1, max_batch_memory_gb=one / 2e9))
    assert "more than the" in results[0].error and "GB batch memory limit" in results[0].error

    queue = AtomBudgetQueue(
        [8, 8, 8], max_batch_atoms=1000, memory_bytes=[one] * 3, max_batch_bytes=2.5 * one
    )
    for index in range(3):
        queue.put(index)
    assert queue.take(atoms_in_batch=0) == [0, 1]  # the third would pass the memory budget
    assert queue.take(atoms_in_batch=16, bytes_in_batch=2 * one) == []
    assert queue.take(atoms_in_batch=8, bytes_in_batch=one) == [2]


def test_graph_refuses_a_skewed_cell_whose_cell_list_is_too_large() -> None:
    from matsearch.mlip.backbones.chgnet.graph import build_graph

    skewed = _skewed(_nacl(), 2000)  # as given, not reduced: compute() is the raw entry point
    state = BatchedState.from_structures([skewed], dtype=torch.float64)
    with pytest.raises(UnsupportedStructure, match="so skewed that its neighbour search needs"):
        build_graph(state.positions, state.cell, state.batch, state.pbc)
