"""Latent Ewald head: zero start, neutrality, polarisation and Born effective charges."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from head_inputs import batch_of_three, periodic_features
from pymatgen.core import Lattice, Structure

from matsearch.mlip import load_model
from matsearch.mlip.heads import attach_long_range_head, long_range_head_from_config
from matsearch.mlip.heads.ewald import ewald_energy
from matsearch.mlip.heads.les import LatentEwaldHead, born_effective_charges, polarization
from matsearch.mlip.state import BatchedState
from matsearch.mlip.testing import validate_model

FEATURES = 6


def trained_like_head(seed: int = 0, **kwargs) -> LatentEwaldHead:
    head = LatentEwaldHead(FEATURES, **kwargs).double()
    assert head.prepare_for_training(std=0.5, generator=torch.Generator().manual_seed(seed))
    return head


def test_untrained_head_adds_exactly_zero_and_training_can_start():
    positions, cell, batch, pbc = batch_of_three()
    head = LatentEwaldHead(FEATURES).double()
    features = periodic_features(positions, cell, batch, pbc)
    energy, charges = head(features, positions, cell, batch, pbc)
    assert torch.equal(energy, torch.zeros(3, dtype=torch.float64))
    assert torch.equal(charges, torch.zeros(len(batch), dtype=torch.float64))
    assert head.prepare_for_training(generator=torch.Generator().manual_seed(0))
    assert not head.prepare_for_training()  # a second call leaves trained weights alone
    energy, _ = head(features, positions, cell, batch, pbc)
    energy.sum().backward()
    assert head.charge_net.hidden.weight.grad.abs().sum() > 0
    assert head.charge_net.output.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("neutral", [True, False])
def test_head_energy_is_ewald_energy_of_its_charges_and_neutral_when_asked(neutral):
    positions, cell, batch, pbc = batch_of_three()
    head = trained_like_head(neutral=neutral, sigma=0.9, dl=1.5)
    features = periodic_features(positions, cell, batch, pbc)
    energy, charges = head(features, positions, cell, batch, pbc)
    expected = ewald_energy(charges, positions, cell, batch, pbc, sigma=0.9, dl=1.5)
    torch.testing.assert_close(energy, expected)
    totals = torch.zeros(3, dtype=torch.float64).index_add(0, batch, charges)
    if neutral:
        assert totals.abs().max().item() < 1e-12
    else:
        assert totals.abs().max().item() > 1e-3


def test_batched_head_equals_one_by_one():
    positions, cell, batch, pbc = batch_of_three(1)
    head = trained_like_head(1)
    features = periodic_features(positions, cell, batch, pbc)
    energy, charges = head(features, positions, cell, batch, pbc)
    for b in range(3):
        atoms = batch == b
        single_energy, single_charges = head(
            features[atoms],
            positions[atoms],
            cell[b : b + 1],
            torch.zeros(int(atoms.sum()), dtype=torch.long),
            pbc[b : b + 1],
        )
        assert energy[b].item() == pytest.approx(single_energy.item(), rel=1e-12, abs=1e-14)
        torch.testing.assert_close(charges[atoms], single_charges)


def test_config_round_trip_rebuilds_the_same_head():
    head = trained_like_head(2, sigma=1.3, dl=1.7, neutral=False, hidden_dim=5)
    rebuilt = long_range_head_from_config(head.config).double()
    rebuilt.load_state_dict(head.state_dict())
    positions, cell, batch, pbc = batch_of_three(2)
    features = periodic_features(positions, cell, batch, pbc)
    torch.testing.assert_close(
        rebuilt(features, positions, cell, batch, pbc), head(features, positions, cell, batch, pbc)
    )
    with pytest.raises(ValueError, match="unknown long-range head kind 'ewald'"):
        long_range_head_from_config({"kind": "ewald", "feature_dim": 4})


def test_born_effective_charges_of_fixed_point_charges_are_charge_times_identity():
    positions, cell, batch, pbc = batch_of_three(3)
    charges = torch.tensor(np.random.default_rng(3).normal(size=len(batch)))
    positions.requires_grad_(True)
    bec = born_effective_charges(charges, positions, cell, batch, pbc)
    expected = charges[:, None, None] * torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(bec, expected, rtol=1e-12, atol=1e-12)


def test_born_effective_charges_with_charge_response_match_finite_differences():
    positions, cell, batch, pbc = batch_of_three(4)
    head = trained_like_head(4, neutral=True)

    def charges_of(r):
        return head.charges(periodic_features(r, cell, batch, pbc), batch, 3)

    positions.requires_grad_(True)
    charges = charges_of(positions)
    bec = born_effective_charges(charges, positions, cell, batch, pbc)
    positions = positions.detach()
    point_charge_part = charges.detach()[:, None, None] * torch.eye(3, dtype=torch.float64)
    assert (bec - point_charge_part).abs().max() > 1e-2  # the charge response is really there
    h = 1e-6
    for atom, beta in [(0, 0), (5, 2), (8, 1), (12, 0)]:
        b = int(batch[atom])
        step = torch.zeros_like(positions)
        step[atom, beta] = h
        plus = polarization(charges_of(positions + step), positions + step, cell, batch, pbc)[b]
        minus = polarization(charges_of(positions - step), positions - step, cell, batch, pbc)[b]
        derivative = (plus - minus) / (2 * h)  # complex dP_α/dr_iβ
        if pbc[b]:
            # Dephase lattice component a by exp(-2πi s_ia) of the displaced atom.
            frac = torch.linalg.solve(cell[b].T, positions[atom])
            lattice_part = torch.linalg.solve(cell[b].T.to(derivative.dtype), derivative)
            phase = torch.exp(-2j * math.pi * frac)
            expected = (cell[b].T.to(derivative.dtype) @ (phase * lattice_part)).real
        else:
            expected = derivative.real
        torch.testing.assert_close(bec[atom, :, beta], expected, rtol=1e-5, atol=1e-7)


def test_polarization_is_the_dipole_for_clusters_and_lattice_periodic():
    positions, cell, batch, pbc = batch_of_three(5)
    charges = torch.tensor(np.random.default_rng(5).normal(size=len(batch)))
    p = polarization(charges, positions, cell, batch, pbc)
    cluster = batch == 2
    torch.testing.assert_close(p[2].real, (charges[cluster, None] * positions[cluster]).sum(0))
    assert p[2].imag.abs().max().item() == 0.0
    shifted = positions.clone()
    shifted[1] += cell[0, 0] - cell[0, 2]
    shifted[6] += 2 * cell[1, 1]
    torch.testing.assert_close(polarization(charges, shifted, cell, batch, pbc), p)
    # Small fractional coordinates: Re P → Σ q r (error of order (2π s)²/6 relative).
    small = torch.tensor([[0.01, 0.0, -0.01], [-0.012, 0.008, 0.0]], dtype=torch.float64) @ cell[1]
    q = torch.tensor([0.7, -0.7], dtype=torch.float64)
    p_small = polarization(q, small, cell[1:2], torch.zeros(2, dtype=torch.long), pbc[1:2])
    torch.testing.assert_close(p_small[0].real, (q[:, None] * small).sum(0), rtol=2e-3, atol=1e-5)


def test_born_effective_charges_need_positions_with_grad():
    positions, cell, batch, pbc = batch_of_three()
    with pytest.raises(ValueError, match="positions must require grad"):
        born_effective_charges(torch.ones(len(batch), dtype=torch.float64), positions, cell, batch, pbc)


def test_model_with_a_trained_les_head_passes_the_conformance_checks():
    rng = np.random.default_rng(0)
    rocksalt = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    rocksalt = rocksalt.get_primitive_structure()
    rocksalt.translate_sites([1], rng.normal(scale=0.1, size=3), frac_coords=False)
    cscl = Structure(Lattice.cubic(4.1), ["Cs", "Cl"], [[0, 0, 0], [0.52, 0.47, 0.5]])
    model = load_model("chgnet-0.3.0", device="cpu", dtype=torch.float64)
    state = BatchedState.from_structures([rocksalt, cscl], dtype=torch.float64)
    without_head = model.compute(state)["energy"]
    head = attach_long_range_head(model, "les")
    torch.testing.assert_close(model.compute(state)["energy"], without_head, rtol=0, atol=0)
    head.prepare_for_training(std=0.5, generator=torch.Generator().manual_seed(0))
    out = model.compute(state)
    assert (out["energy"] - without_head).abs().min() > 1e-3
    assert out["charges"].abs().min() > 1e-3
    validate_model(model, [rocksalt, cscl])
