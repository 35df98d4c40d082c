"""Charge-equilibration head: constrained minimum, batching, forces, zero start."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from head_inputs import batch_of_three, periodic_features

from matsearch.mlip.heads import long_range_head_from_config
from matsearch.mlip.heads.ewald import ewald_energy
from matsearch.mlip.heads.qeq import ChargeEquilibrationHead

FEATURES = 6


def trained_like_qeq(seed: int = 0, **kwargs) -> ChargeEquilibrationHead:
    head = ChargeEquilibrationHead(FEATURES, **kwargs).double()
    assert head.prepare_for_training(std=1.0, generator=torch.Generator().manual_seed(seed))
    return head


def atomic_numbers_for(batch: torch.Tensor) -> torch.Tensor:
    """Na, Cl, O, Mg repeating."""
    return torch.tensor([(11, 17, 8, 12)[i % 4] for i in range(len(batch))])


def reference_minimum(chi, hardness, positions, cell, pbc, total, sigma, dl):
    """Solve one structure's QEq with numpy, taking A as the Hessian of the Ewald energy in q."""
    n = len(chi)

    def coulomb(q):
        return ewald_energy(q, positions, cell, torch.zeros(n, dtype=torch.long), pbc, sigma, dl, False)[0]

    a = torch.autograd.functional.hessian(coulomb, torch.zeros(n, dtype=torch.float64)).numpy()
    kkt = np.zeros((n + 1, n + 1))
    kkt[:n, :n] = a + np.diag(hardness)
    kkt[:n, n] = kkt[n, :n] = 1.0
    solution = np.linalg.solve(kkt, np.concatenate([-chi, [total]]))
    q = solution[:n]
    return q, chi @ q + 0.5 * q @ (a + np.diag(hardness)) @ q


def test_charges_minimise_the_qeq_energy_at_fixed_total_charge():
    positions, cell, batch, pbc = batch_of_three(0)
    numbers = atomic_numbers_for(batch)
    head = trained_like_qeq(0, sigma=0.9, dl=1.5)
    features = periodic_features(positions, cell, batch, pbc)
    total = torch.tensor([0.0, 1.0, -0.5], dtype=torch.float64)
    energy, charges = head(features, positions, cell, batch, pbc, atomic_numbers=numbers, total_charge=total)
    chi = head.electronegativity_net(features).detach()
    hardness = head.hardness(numbers).detach()
    for b in range(3):
        atoms = batch == b
        q_ref, e_ref = reference_minimum(
            chi[atoms].numpy(),
            hardness[atoms].numpy(),
            positions[atoms],
            cell[b : b + 1],
            pbc[b : b + 1],
            float(total[b]),
            0.9,
            1.5,
        )
        np.testing.assert_allclose(charges[atoms].detach().numpy(), q_ref, rtol=1e-8, atol=1e-10)
        assert energy[b].item() == pytest.approx(e_ref, rel=1e-8)
        assert charges[atoms].sum().item() == pytest.approx(float(total[b]), abs=1e-10)
    assert charges.abs().max().item() > 1e-2


def test_untrained_head_gives_zero_charges_and_energy_for_neutral_structures():
    positions, cell, batch, pbc = batch_of_three(1)
    head = ChargeEquilibrationHead(FEATURES).double()
    features = periodic_features(positions, cell, batch, pbc)
    energy, charges = head(features, positions, cell, batch, pbc, atomic_numbers=atomic_numbers_for(batch))
    assert energy.abs().max().item() == 0.0
    assert charges.abs().max().item() == 0.0


def test_batched_qeq_equals_one_by_one_and_config_round_trips():
    positions, cell, batch, pbc = batch_of_three(2)
    numbers = atomic_numbers_for(batch)
    head = trained_like_qeq(2)
    features = periodic_features(positions, cell, batch, pbc)
    energy, charges = head(features, positions, cell, batch, pbc, atomic_numbers=numbers)
    for b in range(3):
        atoms = batch == b
        single = head(
            features[atoms],
            positions[atoms],
            cell[b : b + 1],
            torch.zeros(int(atoms.sum()), dtype=torch.long),
            pbc[b : b + 1],
            atomic_numbers=numbers[atoms],
        )
        assert energy[b].item() == pytest.approx(single[0].item(), rel=1e-10)
        torch.testing.assert_close(charges[atoms], single[1])
    rebuilt = long_range_head_from_config(head.config).double()
    rebuilt.load_state_dict(head.state_dict())
    torch.testing.assert_close(
        rebuilt(features, positions, cell, batch, pbc, atomic_numbers=numbers), (energy, charges)
    )


def test_forces_through_the_charge_solve_match_finite_differences():
    positions, cell, batch, pbc = batch_of_three(3)
    numbers = atomic_numbers_for(batch)
    head = trained_like_qeq(3)

    def energy_of(r):
        features = periodic_features(r, cell, batch, pbc)
        return head(features, r, cell, batch, pbc, atomic_numbers=numbers)[0].sum()

    positions.requires_grad_(True)
    (grad,) = torch.autograd.grad(energy_of(positions), positions)
    h = 1e-5
    with torch.no_grad():
        for atom, axis in [(0, 1), (6, 0), (13, 2)]:
            step = torch.zeros_like(positions)
            step[atom, axis] = h
            fd = (energy_of(positions + step) - energy_of(positions - step)) / (2 * h)
            assert grad[atom, axis].item() == pytest.approx(fd.item(), rel=1e-6, abs=1e-8)


def test_hardness_is_positive_and_atomic_numbers_are_required():
    head = ChargeEquilibrationHead(FEATURES, initial_hardness=3.0)
    with torch.no_grad():
        head.raw_hardness[7] = -50.0
    hardness = head.hardness(torch.tensor([1, 8, 94]))
    assert hardness[0].item() == pytest.approx(3.0)
    assert 0 < hardness[1].item() < 1e-20
    positions, cell, batch, pbc = batch_of_three()
    with pytest.raises(ValueError, match="needs atomic_numbers"):
        head(
            periodic_features(positions, cell, batch, pbc).float(),
            positions.float(),
            cell.float(),
            batch,
            pbc,
        )


def test_qeq_head_inside_the_model_gives_neutral_charges_that_move_the_energy():
    from pymatgen.core import Lattice, Structure

    from matsearch.mlip import BatchedState, load_model

    model = load_model("chgnet-0.3.0", dtype=torch.float64)
    structures = [
        Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        Structure(
            Lattice.cubic(5.6), ["Na", "Na", "Cl", "Cl"], [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0], [0, 0.5, 0]]
        ),
    ]
    state = BatchedState.from_structures(structures, device="cpu", dtype=torch.float64)
    backbone = model.compute(state)["energy"]
    head = ChargeEquilibrationHead(feature_dim=64).double()
    with torch.no_grad():
        torch.nn.init.normal_(
            head.electronegativity_net.output.weight, std=0.5, generator=torch.Generator().manual_seed(0)
        )
    model.long_range = head
    out = model.compute(state)
    sums = torch.zeros(2, dtype=torch.float64).index_add(0, state.batch, out["charges"])
    assert torch.allclose(sums, torch.zeros(2, dtype=torch.float64), atol=1e-10)
    assert out["charges"].abs().max() > 1e-3
    assert not torch.allclose(out["energy"], backbone)
