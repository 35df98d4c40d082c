"""Conformance checks for a batched potential with the ``MLIPModel.compute`` contract.

Each check runs the model, compares what must agree and raises ``AssertionError`` with the worst
deviation when it exceeds the tolerance; otherwise it returns that deviation. Use float64 models
for tight finite-difference tolerances. :func:`validate_model` runs them all.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from pymatgen.core import Lattice, Structure

from matsearch.mlip.protocol import BatchedModel
from matsearch.mlip.state import BatchedState


def _state(model: BatchedModel, structures: Sequence[Structure]) -> BatchedState:
    return BatchedState.from_structures(list(structures), device=model.device, dtype=model.dtype)


def _worst(name: str, got: torch.Tensor, want: torch.Tensor, atol: float, unit: str) -> float:
    if got.shape != want.shape:
        raise AssertionError(f"{name}: shape {tuple(got.shape)} differs from {tuple(want.shape)}")
    worst = float((got.double() - want.double()).abs().max()) if got.numel() else 0.0
    if not worst <= atol:
        raise AssertionError(f"{name}: deviation {worst:.3g} {unit} exceeds {atol:.3g} {unit}")
    return worst


def check_batched_matches_single(
    model: BatchedModel,
    structures: Sequence[Structure],
    atol_energy: float = 1e-4,
    atol_forces: float = 1e-4,
    atol_stress: float = 1e-5,
) -> float:
    """One batched call agrees with one call per structure (eV, eV/Å, eV/Å³); returns worst |dE|."""
    batched = model.compute(_state(model, structures))
    singles = [model.compute(_state(model, [s])) for s in structures]
    worst = _worst(
        "batched vs single energy",
        batched["energy"],
        torch.cat([s["energy"] for s in singles]),
        atol_energy,
        "eV",
    )
    _worst(
        "batched vs single forces",
        batched["forces"],
        torch.cat([s["forces"] for s in singles]),
        atol_forces,
        "eV/Å",
    )
    _worst(
        "batched vs single stress",
        batched["stress_ev_per_a3"],
        torch.cat([s["stress_ev_per_a3"] for s in singles]),
        atol_stress,
        "eV/Å³",
    )
    return worst


def check_inputs_not_mutated(model: BatchedModel, structures: Sequence[Structure]) -> None:
    """``compute`` leaves every tensor of its input state unchanged."""
    state = _state(model, structures)
    before = state.clone()
    model.compute(state)
    for name in ("positions", "cell", "atomic_numbers", "batch", "pbc"):
        if not torch.equal(getattr(state, name), getattr(before, name)):
            raise AssertionError(f"compute() modified the input state's {name}")
        if getattr(state, name).requires_grad:
            raise AssertionError(f"compute() left requires_grad set on the input state's {name}")


def check_lattice_translation_invariance(
    model: BatchedModel,
    structure: Structure,
    atol_energy: float = 1e-4,
    atol_forces: float = 1e-4,
) -> float:
    """Moving atoms by whole lattice vectors changes neither energy (eV) nor forces (eV/Å)."""
    rng = np.random.default_rng(0)
    shifted_frac = structure.frac_coords + rng.integers(-2, 3, size=(len(structure), 3))
    shifted = Structure(structure.lattice, structure.species, shifted_frac, coords_are_cartesian=False)
    out = model.compute(_state(model, [structure, shifted]))
    n = len(structure)
    worst = _worst("lattice translation energy", out["energy"][1:], out["energy"][:1], atol_energy, "eV")
    _worst("lattice translation forces", out["forces"][n:], out["forces"][:n], atol_forces, "eV/Å")
    return worst


def check_single_atom_not_squeezed(model: BatchedModel, lattice_a: float = 3.0) -> None:
    """One- and two-system batches of 1-atom cells keep their leading dimensions."""
    atom = Structure(Lattice.cubic(lattice_a), ["Cu"], [[0, 0, 0]])
    for n_systems in (1, 2):
        out = model.compute(_state(model, [atom] * n_systems))
        expected = {
            "energy": (n_systems,),
            "forces": (n_systems, 3),
            "stress_ev_per_a3": (n_systems, 3, 3),
            "magmoms": (n_systems,),
        }
        for key, shape in expected.items():
            if key in out and tuple(out[key].shape) != shape:
                raise AssertionError(
                    f"{key} of {n_systems} one-atom system(s) has shape {tuple(out[key].shape)}, "
                    f"expected {shape}"
                )


def check_forces_finite_difference(
    model: BatchedModel, structure: Structure, step: float = 1e-4, atol: float = 1e-5
) -> float:
    """Forces (eV/Å) equal central differences of the energy with displacements of ``step`` Å."""
    n = len(structure)
    displaced = []
    for atom in range(n):
        for axis in range(3):
            for sign in (1.0, -1.0):
                coords = structure.cart_coords.copy()
                coords[atom, axis] += sign * step
                displaced.append(
                    Structure(structure.lattice, structure.species, coords, coords_are_cartesian=True)
                )
    energies = model.compute(_state(model, displaced))["energy"].double().reshape(n, 3, 2)
    numeric = -(energies[..., 0] - energies[..., 1]) / (2 * step)
    analytic = model.compute(_state(model, [structure]))["forces"]
    return _worst("forces vs finite differences", analytic, numeric.to(analytic.device), atol, "eV/Å")


def check_stress_finite_difference(
    model: BatchedModel, structure: Structure, step: float = 1e-5, atol: float = 1e-6
) -> float:
    """Stress (eV/Å³) equals (1/V) dE/d(strain) by central differences, all 9 components."""
    cart = structure.cart_coords
    deformed = []
    for a in range(3):
        for b in range(3):
            for sign in (1.0, -1.0):
                deformation = np.eye(3)
                deformation[a, b] += sign * step
                deformed.append(
                    Structure(
                        Lattice(structure.lattice.matrix @ deformation),
                        structure.species,
                        cart @ deformation,
                        coords_are_cartesian=True,
                    )
                )
    energies = model.compute(_state(model, deformed))["energy"].double().reshape(3, 3, 2)
    numeric = (energies[..., 0] - energies[..., 1]) / (2 * step) / structure.volume
    analytic = model.compute(_state(model, [structure]))["stress_ev_per_a3"][0]
    return _worst("stress vs finite differences", analytic, numeric.to(analytic.device), atol, "eV/Å³")


def validate_model(model: BatchedModel, structures: Sequence[Structure]) -> None:
    """Run every check above with default tolerances (sized for float64 models)."""
    check_single_atom_not_squeezed(model)
    check_inputs_not_mutated(model, structures)
    check_batched_matches_single(model, structures)
    check_lattice_translation_invariance(model, structures[0])
    check_forces_finite_difference(model, structures[0])
    check_stress_finite_difference(model, structures[0])
