"""Batched FIRE + Frechet cell filter and fixed-cell L-BFGS (mlip.optimizers.relax) vs physics and ASE."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
import torch
from ase.calculators.calculator import Calculator, all_changes
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE, LBFGS
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from matsearch.mlip.optimizers.autobatch import FREE_MEMORY_FRACTION, AtomBudgetQueue, memory_budget_bytes
from matsearch.mlip.optimizers.fire import FireParams, fire_init, fire_step, generalized_forces
from matsearch.mlip.optimizers.lbfgs import LbfgsParams
from matsearch.mlip.optimizers.relax import min_pair_distances, relax
from matsearch.mlip.state import BatchedState
from matsearch.relax_defaults import RelaxSettings

SIGMA_A = {18: 3.4, 36: 3.6, 10: 2.75}  # Å, Lennard-Jones sigma per element (Ar, Kr, Ne)
EPSILON_EV = 0.0104  # eV, one epsilon for every pair


class LennardJones:
    """Batched nearest-neighbour Lennard-Jones test potential with the MLIP compute() contract.

    Pair sigma is the mean of the two elements' sigma; the pair energy is switched off smoothly
    (C2) between 1.3 and 1.45 sigma, so in fcc only the 12 nearest neighbours interact and the
    minimum is the textbook one: nearest-neighbour distance 2^(1/6) sigma, energy -6 epsilon/atom.
    Two atoms on top of each other give NaN forces, as a real potential would.
    """

    r_on = 1.3
    r_cut = 1.45
    energy_convention = "mp2020"  # no Materials Project correction applies to noble-gas solids

    def __init__(self, dtype: torch.dtype = torch.float64) -> None:
        self.device = torch.device("cpu")
        self.dtype = dtype
        self.calls = 0
        self.largest_batch_atoms = 0

    @property
    def cutoff(self) -> float:
        """Å: the longest pair interaction (Kr's sigma times the switch-off distance)."""
        return self.r_cut * max(SIGMA_A.values())

    def estimated_bytes(self, n_atoms: int, volume: float) -> float:
        """Bytes: a dense [n, n, 27 images, 3] pair tensor and its gradient, float64."""
        return 2 * 8 * 3 * 27 * n_atoms**2

    def _system_energy(self, pos: torch.Tensor, cell: torch.Tensor, numbers: list[int]):
        sigma_atom = torch.tensor([SIGMA_A[z] for z in numbers], dtype=pos.dtype)
        sigma = 0.5 * (sigma_atom[:, None] + sigma_atom[None, :])
        cutoff = self.r_cut * float(sigma.max())
        volume = torch.linalg.det(cell).abs().detach()
        heights = [
            float(volume / torch.linalg.cross(cell[i], cell[j]).norm().detach())
            for i, j in ((1, 2), (2, 0), (0, 1))
        ]
        reach = [math.ceil(cutoff / h) + 1 for h in heights]
        shifts = torch.tensor(list(itertools.product(*(range(-k, k + 1) for k in reach))), dtype=pos.dtype)
        frac = torch.linalg.solve(cell.T.detach(), pos.T.detach()).T
        wrap = -torch.round(frac[None, :, :] - frac[:, None, :])  # [i, j, 3]
        images = (wrap[:, :, None, :] + shifts[None, None, :, :]) @ cell  # [i, j, M, 3]
        vec = pos[None, :, None, :] - pos[:, None, None, :] + images
        self_pair = (
            torch.eye(len(numbers), dtype=torch.bool)[:, :, None]
            & (shifts.abs().sum(dim=1) == 0)[None, None, :]
        )
        dist = torch.where(self_pair[..., None], torch.ones_like(vec), vec).norm(dim=-1)
        x = dist / sigma[:, :, None]
        lj = 4.0 * EPSILON_EV * (x**-12 - x**-6)
        t = ((x - self.r_on) / (self.r_cut - self.r_on)).clamp(0.0, 1.0)
        switch = 1.0 - 10.0 * t**3 + 15.0 * t**4 - 6.0 * t**5
        pair = torch.where(self_pair | (x >= self.r_cut), torch.zeros_like(lj), lj * switch)
        return 0.5 * pair.sum()

    def compute(self, state: BatchedState) -> dict[str, torch.Tensor]:
        """Energy [B] eV, forces [N, 3] eV/Å, stress [B, 3, 3] eV/Å³ ((1/V) dE/dstrain)."""
        self.calls += 1
        self.largest_batch_atoms = max(self.largest_batch_atoms, state.n_atoms)
        unknown = sorted(set(state.atomic_numbers.tolist()) - set(SIGMA_A))
        if unknown:
            raise ValueError(f"no Lennard-Jones parameters for atomic numbers {unknown}")
        positions = state.positions.detach().double().requires_grad_(True)
        strain = torch.zeros(state.n_systems, 3, 3, dtype=torch.float64, requires_grad=True)
        deform = torch.eye(3, dtype=torch.float64) + strain
        strained_pos = (positions.unsqueeze(1) @ deform[state.batch]).squeeze(1)
        strained_cell = state.cell.double() @ deform
        energies = []
        for b in range(state.n_systems):
            atoms = state.batch == b
            numbers = state.atomic_numbers[atoms].tolist()
            energies.append(self._system_energy(strained_pos[atoms], strained_cell[b], numbers))
        energy = torch.stack(energies)
        grad_pos, grad_strain = torch.autograd.grad(energy.sum(), (positions, strain))
        volume = torch.linalg.det(state.cell.double()).abs()
        return {
            "energy": energy.detach().to(self.dtype),
            "forces": (-grad_pos).to(self.dtype),
            "stress_ev_per_a3": (grad_strain / volume[:, None, None]).to(self.dtype),
        }


class BatchedModelCalculator(Calculator):
    """ASE calculator over a batched model, one structure per call (for the ASE cross-check)."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, model: LennardJones) -> None:
        super().__init__()
        self.model = model

    def calculate(self, atoms=None, properties=None, system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        state = BatchedState.from_structures([AseAtomsAdaptor.get_structure(self.atoms)], dtype=torch.float64)
        out = self.model.compute(state)
        s = out["stress_ev_per_a3"][0].double().numpy()
        self.results = {
            "energy": float(out["energy"][0]),
            "free_energy": float(out["energy"][0]),
            "forces": out["forces"].double().numpy(),
            "stress": np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]]),
        }


def fcc(a: float, element: str = "Ar", supercell=(1, 1, 1)) -> Structure:
    frac = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    structure = Structure(Lattice.cubic(a), [element] * 4, frac)
    structure.make_supercell(supercell)
    return structure


def distorted(structure: Structure, seed: int, rattle_a: float, strain: float) -> Structure:
    """Copy with Gaussian-rattled positions (Å) and a random symmetric cell strain."""
    rng = np.random.default_rng(seed)
    eps = rng.uniform(-strain, strain, (3, 3))
    eps = 0.5 * (eps + eps.T)
    lattice = Lattice(structure.lattice.matrix @ (np.eye(3) + eps))
    cart = structure.frac_coords @ lattice.matrix + rng.normal(0, rattle_a, (len(structure), 3))
    return Structure(lattice, structure.species, cart, coords_are_cartesian=True)


A0_AR = 2 ** (1 / 6) * SIGMA_A[18] * math.sqrt(2)  # Å, fcc minimum of nearest-neighbour LJ


def test_lennard_jones_fcc_minimum_is_recovered_from_strained_rattled_cells() -> None:
    starts = [
        distorted(fcc(A0_AR * 1.04), seed=1, rattle_a=0.08, strain=0.03),
        distorted(fcc(A0_AR * 0.97, supercell=(2, 1, 1)), seed=2, rattle_a=0.05, strain=0.02),
    ]
    results = relax(starts, LennardJones(), RelaxSettings(fmax=1e-5, steps=2000))
    for result in results:
        assert result.error is None and result.converged
        relaxed = result.structure
        assert relaxed.volume / len(relaxed) == pytest.approx(A0_AR**3 / 4, rel=1e-4)
        nn = A0_AR / math.sqrt(2)
        for neighbours in relaxed.get_all_neighbors(1.2 * nn):
            assert len(neighbours) == 12  # fcc: 12 nearest neighbours at a/sqrt(2)
            assert [n.nn_distance for n in neighbours] == pytest.approx([nn] * 12, rel=1e-4)
        assert result.energy_per_atom == pytest.approx(-6 * EPSILON_EV, rel=1e-6)
        assert result.initial_energy_per_atom > result.energy_per_atom
        assert np.abs(result.stress_gpa).max() < 1e-3  # zero pressure at the minimum
        assert result.forces_max < 1e-4


def test_without_cell_filter_the_cell_is_kept() -> None:
    start = distorted(fcc(A0_AR * 1.02), seed=3, rattle_a=0.1, strain=0.0)
    (result,) = relax([start], LennardJones(), RelaxSettings(fmax=1e-3), cell_filter=False)
    assert result.converged
    np.testing.assert_allclose(result.structure.lattice.matrix, start.lattice.matrix, atol=1e-12)
    assert result.stress_gpa[0][0] > 0.01  # cell too large: tensile stress remains, in GPa


def _ase_fire_frechet(structure: Structure, model, fmax: float, steps: int):
    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.calc = BatchedModelCalculator(model)
    optimizer = FIRE(FrechetCellFilter(atoms), logfile=None)
    optimizer.run(fmax=fmax, steps=steps)
    return atoms, optimizer.nsteps


def _binary_starts() -> list[Structure]:
    ar_kr = fcc(A0_AR * 1.02, supercell=(2, 1, 1))
    ar_kr.replace(1, "Kr")
    ar_kr.replace(6, "Kr")
    return [
        distorted(ar_kr, seed=4, rattle_a=0.1, strain=0.03),
        distorted(fcc(A0_AR * 0.98, "Ar"), seed=5, rattle_a=0.12, strain=0.04),
        distorted(fcc(A0_AR * 1.01, "Ne"), seed=6, rattle_a=0.06, strain=0.02),
    ]


def test_ten_steps_match_ase_fire_on_frechet_filter_exactly() -> None:
    model = LennardJones()
    starts = _binary_starts()
    ours = relax(starts, model, RelaxSettings(fmax=1e-6, steps=10))
    for start, result in zip(starts, ours, strict=True):
        atoms, n_steps = _ase_fire_frechet(start, model, fmax=1e-6, steps=10)
        assert result.steps == n_steps == 10
        np.testing.assert_allclose(result.structure.lattice.matrix, atoms.cell[:], atol=1e-9)
        np.testing.assert_allclose(result.structure.cart_coords, atoms.positions, atol=1e-9)


def test_converged_relaxation_matches_ase_energy_and_structure() -> None:
    model = LennardJones()
    starts = _binary_starts()
    ours = relax(starts, model, RelaxSettings(fmax=0.002, steps=1000))
    matcher = StructureMatcher()
    for start, result in zip(starts, ours, strict=True):
        atoms, n_steps = _ase_fire_frechet(start, model, fmax=0.002, steps=1000)
        assert result.converged and n_steps < 1000
        ase_energy = atoms.get_potential_energy() / len(atoms)
        assert result.energy_per_atom == pytest.approx(ase_energy, abs=1e-3)
        assert matcher.fit(result.structure, AseAtomsAdaptor.get_structure(atoms))


def test_generalized_cell_force_matches_ase_frechet_filter_away_from_identity() -> None:
    model = LennardJones()
    start = _binary_starts()[0]
    fire = fire_init([start], "cpu", FireParams())
    fire.cell_dof = (
        torch.tensor([[0.3, 0.1, -0.2], [0.1, -0.4, 0.05], [-0.2, 0.05, 0.2]], dtype=torch.float64)[None]
        * len(start)
        / 10
    )
    state = fire.to_batched_state(torch.float64)
    out = model.compute(state)
    atom_f, cell_f = generalized_forces(fire, out["forces"], out["stress_ev_per_a3"], cell_filter=True)
    atoms = AseAtomsAdaptor.get_atoms(start)
    atoms.calc = BatchedModelCalculator(model)
    filt = FrechetCellFilter(atoms)  # reference cell: the start cell
    atoms.set_cell(state.cell[0].numpy())
    atoms.positions = state.positions.numpy()
    expected = filt.get_forces()
    np.testing.assert_allclose(atom_f.numpy(), expected[: len(atoms)], atol=1e-10)
    np.testing.assert_allclose(cell_f[0].numpy(), expected[len(atoms) :], atol=1e-10)


def _ase_lbfgs(structure: Structure, model, fmax: float, steps: int):
    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.calc = BatchedModelCalculator(model)
    settings = LbfgsParams()
    optimizer = LBFGS(
        atoms, logfile=None, alpha=settings.alpha, maxstep=settings.max_step, memory=settings.memory
    )
    optimizer.run(fmax=fmax, steps=steps)
    return atoms, optimizer.nsteps


@pytest.mark.parametrize("n_steps", [1, 10, 30])
def test_fixed_cell_lbfgs_matches_ase_lbfgs_step_for_step(n_steps: int) -> None:
    """30 steps run past the 20-step memory, so the history's oldest changes are dropped as in ASE."""
    model = LennardJones()
    starts = _binary_starts()
    ours = relax(starts, model, RelaxSettings(fmax=1e-9, steps=n_steps), cell_filter=False, optimizer="lbfgs")
    for start, result in zip(starts, ours, strict=True):
        atoms, ase_steps = _ase_lbfgs(start, model, fmax=1e-9, steps=n_steps)
        assert result.steps == ase_steps == n_steps
        np.testing.assert_allclose(result.structure.lattice.matrix, start.lattice.matrix, atol=1e-12)
        np.testing.assert_allclose(result.structure.cart_coords, atoms.positions, atol=1e-9)


def test_fixed_cell_lbfgs_converges_in_the_steps_ase_takes_with_refills_from_the_queue() -> None:
    starts = _binary_starts() * 2
    model = LennardJones()
    ours = relax(
        starts,
        model,
        RelaxSettings(fmax=1e-3, steps=500, batch_atoms=12),
        cell_filter=False,
        optimizer="lbfgs",
    )
    assert model.largest_batch_atoms == 12  # systems joined the batch while others were running
    for start, result in zip(starts, ours, strict=True):
        atoms, ase_steps = _ase_lbfgs(start, model, fmax=1e-3, steps=500)
        assert result.converged and result.steps == ase_steps < 500
        assert result.energy_per_atom == pytest.approx(atoms.get_potential_energy() / len(atoms), abs=1e-9)


def test_lbfgs_with_the_cell_filter_is_refused() -> None:
    message = "the lbfgs optimiser relaxes positions only; use cell_filter=False or 'fire'"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        relax(_binary_starts(), LennardJones(), optimizer="lbfgs")
    with pytest.raises(ValueError, match="^optimizer must be 'fire' or 'lbfgs', got 'bfgs'$"):
        relax(_binary_starts(), LennardJones(), cell_filter=False, optimizer="bfgs")


def test_batching_does_not_change_results_and_refills_from_the_queue() -> None:
    starts = _binary_starts() * 2
    alone = [relax([s], LennardJones(), RelaxSettings(fmax=0.005))[0] for s in starts[:3]]
    model = LennardJones()
    batched = relax(starts, model, RelaxSettings(fmax=0.005, batch_atoms=12))
    for one, many in zip(alone * 2, batched, strict=True):
        assert many.steps == one.steps
        assert many.energy_per_atom == pytest.approx(one.energy_per_atom, abs=1e-9)
    # 28 atoms in total never fit the 12-atom budget at once, so systems were swapped in
    assert model.largest_batch_atoms == 12
    assert model.calls < sum(r.steps + 1 for r in batched)


def test_atom_budget_queue_admits_in_order_and_oversized_structures_alone() -> None:
    queue = AtomBudgetQueue([8, 4, 4, 20, 1], max_batch_atoms=12)
    for index in range(5):
        queue.put(index)
    assert queue.take(atoms_in_batch=0) == [0, 1]
    assert queue.take(atoms_in_batch=12) == []
    assert queue.take(atoms_in_batch=4) == [2]  # the 20-atom structure must wait
    assert queue.take(atoms_in_batch=0) == [3]  # over budget, so it runs alone
    assert queue.take(atoms_in_batch=11) == [4]
    assert len(queue) == 0


def test_overlapping_nan_and_unknown_structures_fail_alone() -> None:
    good = _binary_starts()
    overlapping = fcc(A0_AR)
    overlapping.append("Ar", [0.3, 0.0, 0.0], coords_are_cartesian=True)
    unknown = fcc(4.0, "Cu")
    results = relax(
        [good[0], overlapping, good[1], unknown, good[2]], LennardJones(), RelaxSettings(fmax=0.005)
    )
    assert [r.error is None and r.converged for r in results] == [True, False, True, False, True]
    assert "apart at step 0, closer than the 0.5 Å minimum" in results[1].error
    assert results[1].structure is None
    assert "no Lennard-Jones parameters for atomic numbers [29]" in results[3].error


def test_coincident_atoms_are_refused_before_the_model_when_the_distance_check_is_off() -> None:
    good = _binary_starts()[1]
    coincident = fcc(A0_AR)
    coincident.append("Ar", coincident.frac_coords[0])
    results = relax([coincident, good], LennardJones(), RelaxSettings(fmax=0.005), min_distance=0.0)
    assert results[0].error == "two atoms are 0 Å apart (closer than 0.1 Å: they coincide)"
    assert results[0].steps == 0
    assert results[1].converged


def test_cell_expanding_beyond_the_volume_limit_fails() -> None:
    compressed = fcc(A0_AR * 0.85)
    results = relax([compressed, _binary_starts()[1]], LennardJones(), max_volume_ratio=1.2)
    assert "beyond the allowed factor 1.2" in results[0].error
    assert results[1].converged


def test_timeout_stops_a_slow_relaxation() -> None:
    slow = distorted(fcc(A0_AR * 1.03, supercell=(2, 2, 1)), seed=7, rattle_a=0.1, strain=0.03)
    (result,) = relax([slow], LennardJones(), RelaxSettings(fmax=1e-9, steps=100_000, timeout_s=1.0))
    assert result.error.startswith("relaxation exceeded 1 s wall-clock timeout after ")
    assert result.structure is None and 0 < result.steps < 100_000


def test_min_pair_distances_sees_periodic_images_and_unwrapped_positions() -> None:
    cubic = fcc(4.0, "Ar")
    cubic.translate_sites([2], [3.0, -2.0, 5.0], to_unit_cell=False)
    tiny = Structure(Lattice.cubic(2.5), ["Ar"], [[0, 0, 0]])
    frac = np.random.default_rng(8).uniform(0, 1, (4, 3))
    triclinic = Structure(Lattice.from_parameters(4.0, 4.5, 5.0, 70, 80, 100), ["Ar"] * 4, frac)
    triclinic.translate_sites([1], [-1.0, 2.0, 0.5], to_unit_cell=False)
    state = BatchedState.from_structures([cubic, tiny, triclinic], dtype=torch.float64)
    shortest = min_pair_distances(state.positions, state.cell, state.batch)
    matrix = triclinic.distance_matrix
    expected = matrix[~np.eye(len(triclinic), dtype=bool)].min()
    assert shortest.tolist() == pytest.approx([4.0 / math.sqrt(2), 2.5, expected], rel=1e-12)


def test_fire_step_caps_each_systems_step_at_max_step() -> None:
    start = fcc(A0_AR * 0.9)
    fire = fire_init([start], "cpu", FireParams(dt=10.0, max_step=0.05))
    out = LennardJones().compute(fire.to_batched_state(torch.float64))
    atom_f, cell_f = generalized_forces(fire, out["forces"], out["stress_ev_per_a3"], cell_filter=True)
    before = (fire.ref_positions.clone(), fire.cell_dof.clone())
    fire_step(fire, atom_f, cell_f, FireParams(dt=10.0, max_step=0.05))
    moved = torch.cat([(fire.ref_positions - before[0]).flatten(), (fire.cell_dof - before[1]).flatten()])
    assert float(moved.norm()) == pytest.approx(0.05, rel=1e-12)


@pytest.fixture(scope="module")
def mlip_float64():
    from matsearch.mlip.registry import load_model

    return load_model(device="cpu", dtype=torch.float64)


def _oxide_and_silicon() -> list[Structure]:
    perovskite = Structure(
        Lattice.cubic(3.95),
        ["Sr", "Ti", "O", "O", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
    )
    silicon = Structure(
        Lattice.from_parameters(3.87, 3.87, 3.87, 60, 60, 60),
        ["Si", "Si"],
        [[0, 0, 0], [0.25, 0.25, 0.25]],
    )
    return [
        distorted(perovskite, seed=9, rattle_a=0.05, strain=0.02),
        distorted(silicon, seed=10, rattle_a=0.05, strain=0.02),
    ]


def test_mlip_through_batched_fire_matches_ase_fire_with_its_calculator(mlip_float64) -> None:
    starts = _oxide_and_silicon()
    ten_steps = relax(starts, mlip_float64, RelaxSettings(fmax=1e-6, steps=10))
    converged = relax(starts, mlip_float64, RelaxSettings(fmax=0.05))
    matcher = StructureMatcher()
    for start, short, final in zip(starts, ten_steps, converged, strict=True):
        atoms = AseAtomsAdaptor.get_atoms(start)
        atoms.calc = mlip_float64.as_ase_calculator()
        optimizer = FIRE(FrechetCellFilter(atoms), logfile=None)
        optimizer.run(fmax=1e-6, steps=10)
        np.testing.assert_allclose(short.structure.lattice.matrix, atoms.cell[:], atol=1e-7)
        np.testing.assert_allclose(short.structure.cart_coords, atoms.positions, atol=1e-7)
        optimizer.run(fmax=0.05, steps=490)
        assert final.converged and optimizer.converged()
        assert final.steps == optimizer.nsteps
        energy = atoms.get_potential_energy() / len(atoms)
        assert final.energy_per_atom == pytest.approx(energy, abs=1e-3)
        assert matcher.fit(final.structure, AseAtomsAdaptor.get_structure(atoms))


HOST_READS = ("tolist", "cpu", "item", "__bool__", "__int__", "__float__")


def _host_reads_of_relaxing(
    structures: list[Structure], model, monkeypatch: pytest.MonkeyPatch, **options
) -> dict[str, int]:
    """How often tensors were read back to the host while relaxing `structures` for 6 steps."""
    counts = dict.fromkeys(HOST_READS, 0)
    with monkeypatch.context() as patch:
        for name in HOST_READS:
            original = getattr(torch.Tensor, name)

            def counted(self, *args, _name=name, _original=original, **kwargs):
                counts[_name] += 1
                return _original(self, *args, **kwargs)

            patch.setattr(torch.Tensor, name, counted)
        results = relax(structures, model, RelaxSettings(fmax=1e-9, steps=6, timeout_s=None), **options)
    assert all(r.steps == 6 and r.error is None for r in results)
    return counts


@pytest.mark.parametrize(
    "options", [{}, {"cell_filter": False, "optimizer": "lbfgs"}], ids=["fire-frechet", "lbfgs-fixed-cell"]
)
def test_host_reads_per_step_do_not_grow_with_the_number_of_structures(
    mlip_float64, monkeypatch: pytest.MonkeyPatch, options: dict
) -> None:
    """Convergence and failure masks stay on the device: a GPU batch synchronises a fixed number
    of times per step (the model's neighbour list included), not once per structure."""
    starts = _oxide_and_silicon()
    few = _host_reads_of_relaxing(starts[:1], mlip_float64, monkeypatch, **options)
    many = _host_reads_of_relaxing(starts * 3, mlip_float64, monkeypatch, **options)
    assert many == few


def test_memory_budget_follows_free_gpu_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (2e9, 80e9))
    assert memory_budget_bytes(4.0, torch.device("cuda")) == pytest.approx(FREE_MEMORY_FRACTION * 2e9)
    assert memory_budget_bytes(1.0, torch.device("cuda")) == pytest.approx(1e9)
    assert memory_budget_bytes(4.0, torch.device("cpu")) == pytest.approx(4e9)
