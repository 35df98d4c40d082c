"""Gaussian-charge Ewald sum vs exact Madelung energies, pymatgen's EwaldSummation, brute force.

Mapping to pymatgen (point charges, E = recip + real + point): our Gaussian width σ corresponds to
pymatgen's eta = 1/(2σ²) and our k_c = 2π/dl to its recip_space_cut. Then
ewald_energy(remove_self_interaction=False) is pymatgen's reciprocal_space_energy over the same
k-vectors, and remove_self_interaction=True adds pymatgen's point_energy. With σ small compared with
the nearest-neighbour distance, erfc(r/(√2σ)) kills the real-space part and our energy alone is the
full Coulomb (Madelung) energy of the point-charge crystal.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pymatgen.analysis.ewald import EwaldSummation
from pymatgen.core import Lattice, Structure
from scipy.special import erf

from matsearch.mlip.heads.ewald import COULOMB_EV_ANGSTROM, coulomb_matrix, ewald_energy

# Madelung constants referred to the nearest-neighbour distance (Kittel; Sakamoto 1958).
MADELUNG_ROCKSALT = 1.747564594633182
MADELUNG_CSCL = 1.762674773070988


def as_tensors(structures: list[Structure], dtype: torch.dtype = torch.float64):
    """(charges, positions, cell, batch) of oxidation-decorated structures."""
    charges = [float(site.specie.oxi_state) for s in structures for site in s]
    positions = np.concatenate([s.cart_coords for s in structures])
    cell = np.stack([s.lattice.matrix for s in structures])
    batch = np.repeat(np.arange(len(structures)), [len(s) for s in structures])
    return (
        torch.tensor(charges, dtype=dtype),
        torch.tensor(positions, dtype=dtype),
        torch.tensor(cell, dtype=dtype),
        torch.tensor(batch),
    )


def rocksalt(a: float = 5.64) -> Structure:
    s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3])
    s.add_oxidation_state_by_element({"Na": 1, "Cl": -1})
    return s


def cesium_chloride(a: float = 4.12) -> Structure:
    s = Structure(Lattice.cubic(a), ["Cs", "Cl"], [[0, 0, 0], [0.5] * 3])
    s.add_oxidation_state_by_element({"Cs": 1, "Cl": -1})
    return s


def rattled_triclinic(seed: int) -> Structure:
    """Neutral Mg2+/O2- cell with a skewed lattice and rattled sites (6 atoms)."""
    rng = np.random.default_rng(seed)
    lattice = Lattice.from_parameters(4.6, 5.1, 5.7, 78.0, 96.0, 107.0)
    frac = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]])
    frac = frac + rng.normal(scale=0.03, size=frac.shape)
    s = Structure(lattice, ["Mg"] * 3 + ["O"] * 3, frac)
    s.add_oxidation_state_by_element({"Mg": 2, "O": -2})
    return s


@pytest.mark.parametrize(
    ("structure", "madelung", "nn_distance"),
    [
        (rocksalt(), MADELUNG_ROCKSALT, 5.64 / 2),
        (cesium_chloride(), MADELUNG_CSCL, 4.12 * 3**0.5 / 2),
    ],
    ids=["rocksalt-NaCl", "CsCl"],
)
def test_madelung_energy_of_point_charge_crystals(structure, madelung, nn_distance):
    charges, positions, cell, batch = as_tensors([structure])
    # σ = 0.25 Å: erfc(r_nn/(√2σ)) < 1e-20, so the reciprocal sum is the whole Coulomb energy.
    energy = ewald_energy(charges, positions, cell, batch, torch.tensor([True]), sigma=0.25, dl=0.2)
    n_pairs = len(structure) // 2
    exact = -n_pairs * madelung * COULOMB_EV_ANGSTROM / nn_distance
    assert energy.item() == pytest.approx(exact, rel=1e-9)
    assert energy.item() == pytest.approx(EwaldSummation(structure).total_energy, rel=1e-9)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("seed", [0, 1])
def test_reciprocal_and_point_terms_match_pymatgen(seed, dtype):
    structure = rattled_triclinic(seed)
    reference = EwaldSummation(structure)
    sigma = 1 / math.sqrt(2 * reference.eta)
    dl = 2 * math.pi / reference._gmax  # pymatgen's recip_space_cut, set from its accuracy target
    charges, positions, cell, batch = as_tensors([structure], dtype)
    pbc = torch.tensor([True])
    with_self = ewald_energy(charges, positions, cell, batch, pbc, sigma, dl, False).item()
    without_self = ewald_energy(charges, positions, cell, batch, pbc, sigma, dl, True).item()
    rel = 1e-10 if dtype == torch.float64 else 1e-5
    assert with_self == pytest.approx(reference.reciprocal_space_energy, rel=rel)
    expected = reference.reciprocal_space_energy + reference.point_energy
    assert without_self == pytest.approx(expected, rel=rel)


def test_total_coulomb_energy_of_rattled_cell_matches_pymatgen():
    structure = rattled_triclinic(3)
    charges, positions, cell, batch = as_tensors([structure])
    assert min(structure.distance_matrix[np.triu_indices(len(structure), 1)]) > 1.8
    energy = ewald_energy(charges, positions, cell, batch, torch.tensor([True]), sigma=0.2, dl=0.15)
    assert energy.item() == pytest.approx(EwaldSummation(structure).total_energy, rel=1e-8)


def brute_force_erf_energy(charges: np.ndarray, positions: np.ndarray, sigma: float) -> float:
    energy = 0.0
    for i in range(len(charges)):
        for j in range(i + 1, len(charges)):
            r = np.linalg.norm(positions[i] - positions[j])
            energy += charges[i] * charges[j] * erf(r / (math.sqrt(2) * sigma)) / r
    return COULOMB_EV_ANGSTROM * energy


@pytest.mark.parametrize("remove_self", [True, False])
def test_isolated_structures_use_the_direct_erf_sum(remove_self):
    rng = np.random.default_rng(7)
    sizes = [5, 3, 8]
    positions = [rng.uniform(0, 6, size=(n, 3)) for n in sizes]
    charges = [rng.normal(size=n) for n in sizes]
    sigma = 0.8
    expected = [brute_force_erf_energy(q, r, sigma) for q, r in zip(charges, positions, strict=True)]
    if not remove_self:
        self_terms = [COULOMB_EV_ANGSTROM * (q**2).sum() / (sigma * math.sqrt(2 * math.pi)) for q in charges]
        expected = [e + s for e, s in zip(expected, self_terms, strict=True)]
    energy = ewald_energy(
        torch.tensor(np.concatenate(charges)),
        torch.tensor(np.concatenate(positions)),
        torch.zeros(3, 3, 3, dtype=torch.float64),
        torch.tensor(np.repeat(np.arange(3), sizes)),
        torch.zeros(3, 3, dtype=torch.bool),
        sigma=sigma,
        remove_self_interaction=remove_self,
    )
    np.testing.assert_allclose(energy.numpy(), expected, rtol=1e-12)


def mixed_batch() -> tuple[list[Structure], list[bool]]:
    """Periodic cells of different sizes and shapes plus one isolated cluster."""
    big = rocksalt(5.5)
    big.make_supercell([2, 1, 1])
    big.perturb(0.1, min_distance=0.05)
    cluster = Structure(
        Lattice.cubic(10), ["Na", "Cl", "Na"], [[0.1, 0.1, 0.1], [0.3, 0.1, 0.1], [0.3, 0.3, 0.1]]
    )
    cluster.add_oxidation_state_by_element({"Na": 1, "Cl": -1})
    return [rattled_triclinic(0), big, cluster, cesium_chloride()], [True, True, False, True]


def test_batched_energy_equals_one_by_one_and_translation_invariance():
    structures, periodic = mixed_batch()
    charges, positions, cell, batch = as_tensors(structures)
    batched = ewald_energy(charges, positions, cell, batch, torch.tensor(periodic))
    for b, (structure, pbc) in enumerate(zip(structures, periodic, strict=True)):
        q, r, c, idx = as_tensors([structure])
        single = ewald_energy(q, r, c, idx, torch.tensor([pbc]))
        assert batched[b].item() == pytest.approx(single.item(), rel=1e-12, abs=1e-12)
    shifted = positions.clone()
    shifted[0] += cell[0, 1] - 2 * cell[0, 2]  # lattice translation of one atom of structure 0
    moved = ewald_energy(charges, shifted, cell, batch, torch.tensor(periodic))
    torch.testing.assert_close(moved, batched, rtol=1e-12, atol=1e-12)


def test_forces_stress_and_charge_gradient_match_finite_differences():
    structures, periodic = mixed_batch()
    charges, positions, cell, batch = as_tensors(structures)
    pbc = torch.tensor(periodic)
    strain = torch.zeros(len(structures), 3, 3, dtype=torch.float64, requires_grad=True)
    positions.requires_grad_(True)
    charges.requires_grad_(True)

    def energy_of(r, c, q, eps):
        deformation = torch.eye(3, dtype=torch.float64) + eps
        return ewald_energy(q, torch.einsum("nd,nde->ne", r, deformation[batch]), c @ deformation, batch, pbc)

    energy = energy_of(positions, cell, charges, strain)
    grad_r, grad_q, grad_eps = torch.autograd.grad(energy.sum(), (positions, charges, strain))
    h = 1e-5
    with torch.no_grad():
        for atom, axis in [(0, 0), (3, 2), (9, 1), (len(charges) - 4, 1), (len(charges) - 1, 0)]:
            step = torch.zeros_like(positions)
            step[atom, axis] = h
            fd = (
                energy_of(positions + step, cell, charges, strain)
                - energy_of(positions - step, cell, charges, strain)
            ).sum() / (2 * h)
            assert grad_r[atom, axis].item() == pytest.approx(fd.item(), rel=1e-6, abs=1e-8)
        for atom in [1, 7, len(charges) - 3]:
            step = torch.zeros_like(charges)
            step[atom] = h
            fd = (
                energy_of(positions, cell, charges + step, strain)
                - energy_of(positions, cell, charges - step, strain)
            ).sum() / (2 * h)
            assert grad_q[atom].item() == pytest.approx(fd.item(), rel=1e-6, abs=1e-8)
        for b, (i, j) in [(0, (0, 0)), (0, (1, 2)), (1, (2, 1)), (2, (0, 1)), (3, (0, 1))]:
            step = torch.zeros_like(strain)
            step[b, i, j] = h
            fd = (
                energy_of(positions, cell, charges, step)[b] - energy_of(positions, cell, charges, -step)[b]
            ) / (2 * h)
            assert grad_eps[b, i, j].item() == pytest.approx(fd.item(), rel=1e-6, abs=1e-8)
    assert grad_r.isfinite().all()


@pytest.mark.parametrize("remove_self", [False, True])
def test_coulomb_matrix_reproduces_the_energy(remove_self):
    structures, periodic = mixed_batch()
    charges, positions, cell, batch = as_tensors(structures)
    pbc = torch.tensor(periodic)
    matrix, slots = coulomb_matrix(positions, cell, batch, pbc, remove_self_interaction=remove_self)
    padded = torch.zeros(matrix.shape[:2], dtype=torch.float64)
    padded[batch, slots] = charges
    quadratic = 0.5 * torch.einsum("bi,bij,bj->b", padded, matrix, padded)
    expected = ewald_energy(charges, positions, cell, batch, pbc, remove_self_interaction=remove_self)
    torch.testing.assert_close(quadratic, expected, rtol=1e-10, atol=1e-10)
    if not remove_self:
        assert torch.linalg.eigvalsh(matrix).min().item() > -1e-8  # positive semi-definite


def test_bad_screening_and_partial_periodicity_are_rejected():
    charges, positions, cell, batch = as_tensors([rocksalt()])
    with pytest.raises(ValueError, match="sigma must be a positive width"):
        ewald_energy(charges, positions, cell, batch, torch.tensor([True]), sigma=0.0)
    with pytest.raises(ValueError, match=r"structure 0 has pbc=\[True, True, False\]"):
        ewald_energy(charges, positions, cell, batch, torch.tensor([[True, True, False]]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_energy_and_gradients_match_cpu():
    structures, periodic = mixed_batch()
    tensors = [*as_tensors(structures), torch.tensor(periodic)]
    results = []
    for device in ("cpu", "cuda"):
        charges, positions, cell, batch, pbc = (t.to(device) for t in tensors)
        positions.requires_grad_(True)
        energy = ewald_energy(charges, positions, cell, batch, pbc)
        (grad,) = torch.autograd.grad(energy.sum(), positions)
        results.append((energy.cpu(), grad.cpu()))
    torch.testing.assert_close(results[1], results[0], rtol=1e-10, atol=1e-10)
