"""Physics of our MLIP: forces and stress are energy derivatives, symmetries hold, batching is
exact; the neighbour list equals pymatgen's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor
from scipy.spatial.transform import Rotation

from matsearch.mlip import BatchedState, MLIPModel, load_model
from matsearch.mlip import testing as conformance
from matsearch.mlip.backbones.chgnet.graph import build_graph
from matsearch.mlip.heads.les import LatentEwaldHead
from matsearch.mlip.neighbors import neighbor_pairs

BACKBONES = ["chgnet-0.3.0", "sevennet-0"]  # one model of each backbone


@pytest.fixture(scope="module", params=BACKBONES)
def model64(request: pytest.FixtureRequest) -> MLIPModel:
    return load_model(request.param, device="cpu", dtype=torch.float64)


def rattled(structure: Structure, amplitude: float, seed: int) -> Structure:
    """Copy with atoms displaced by uniform noise of +-amplitude Å and a slightly sheared cell."""
    rng = np.random.default_rng(seed)
    matrix = structure.lattice.matrix @ (np.eye(3) + rng.uniform(-0.02, 0.02, (3, 3)))
    coords = structure.frac_coords @ matrix + rng.uniform(-amplitude, amplitude, (len(structure), 3))
    return Structure(Lattice(matrix), structure.species, coords, coords_are_cartesian=True)


@pytest.fixture(scope="module")
def samples() -> list[Structure]:
    """Small distorted crystals: rocksalt NaCl, wurtzite ZnO, bcc Fe (1 atom), a Li-P-S-O cell."""
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    zno = Structure.from_spacegroup(
        "P6_3mc",
        Lattice.hexagonal(3.25, 5.21),
        ["Zn", "O"],
        [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.382]],
    )
    fe = Structure(
        Lattice([[-1.43, 1.43, 1.43], [1.43, -1.43, 1.43], [1.43, 1.43, -1.43]]),
        ["Fe"],
        [[0, 0, 0]],
    )
    mixed = Structure(
        Lattice.orthorhombic(6.1, 5.2, 4.9),
        ["Li", "Li", "P", "S", "S", "O"],
        [
            [0, 0, 0],
            [0.5, 0.5, 0.1],
            [0.25, 0.3, 0.5],
            [0.6, 0.1, 0.7],
            [0.1, 0.7, 0.3],
            [0.8, 0.8, 0.8],
        ],
    )
    return [
        rattled(nacl.get_primitive_structure(), 0.08, 1),
        rattled(zno, 0.05, 2),
        rattled(fe, 0.0, 3),
        rattled(mixed, 0.05, 4),
    ]


def test_forces_equal_finite_differences(model64: MLIPModel, samples: list[Structure]) -> None:
    for structure in (samples[0], samples[3]):
        forces = model64.compute(BatchedState.from_structures([structure], dtype=torch.float64))["forces"]
        assert float(forces.abs().max()) > 0.02  # distorted: the check compares real, non-zero forces
        conformance.check_forces_finite_difference(model64, structure, step=1e-4, atol=1e-5)


def test_stress_equals_strain_derivative(model64: MLIPModel, samples: list[Structure]) -> None:
    for structure in samples[:3]:
        state = BatchedState.from_structures([structure], dtype=torch.float64)
        stress = model64.compute(state)["stress_ev_per_a3"]
        assert float(stress.abs().max()) > 1e-3  # eV/Å³, i.e. > 0.16 GPa
        conformance.check_stress_finite_difference(model64, structure, step=1e-5, atol=1e-7)


def test_compressed_cell_has_negative_stress(model64: MLIPModel, samples: list[Structure]) -> None:
    """Sign convention: squeezing a cell makes the diagonal stress negative (compressive)."""
    nacl = samples[0]
    squeezed = Structure(Lattice(nacl.lattice.matrix * 0.9), nacl.species, nacl.frac_coords)
    state = BatchedState.from_structures([squeezed], dtype=torch.float64)
    stress = model64.compute(state)["stress_ev_per_a3"][0]
    assert (torch.diagonal(stress) < -0.01).all(), stress


def test_rotation_invariance(model64: MLIPModel, samples: list[Structure]) -> None:
    structure = samples[3]
    rotations = Rotation.random(3, random_state=7).as_matrix()
    rotated = [
        Structure(
            Lattice(structure.lattice.matrix @ r.T),
            structure.species,
            structure.cart_coords @ r.T,
            coords_are_cartesian=True,
        )
        for r in rotations
    ]
    out = model64.compute(BatchedState.from_structures([structure, *rotated], dtype=torch.float64))
    n = len(structure)
    for k, r in enumerate(torch.as_tensor(rotations)):
        assert abs(float(out["energy"][k + 1] - out["energy"][0])) < 1e-9
        np.testing.assert_allclose(
            out["forces"][(k + 1) * n : (k + 2) * n], out["forces"][:n] @ r.T, atol=1e-9
        )
        stress = out["stress_ev_per_a3"]
        np.testing.assert_allclose(stress[k + 1], r @ stress[0] @ r.T, atol=1e-10)
        if "magmoms" in out:  # the CHGNet backbone's
            np.testing.assert_allclose(
                out["magmoms"][(k + 1) * n : (k + 2) * n], out["magmoms"][:n], atol=1e-9
            )


def test_rigid_translation_invariance(model64: MLIPModel, samples: list[Structure]) -> None:
    structure = samples[1]
    moved = Structure(
        structure.lattice,
        structure.species,
        structure.cart_coords + np.array([0.37, -1.9, 12.3]),
        coords_are_cartesian=True,
    )
    out = model64.compute(BatchedState.from_structures([structure, moved], dtype=torch.float64))
    n = len(structure)
    assert abs(float(out["energy"][1] - out["energy"][0])) < 1e-9
    np.testing.assert_allclose(out["forces"][n:], out["forces"][:n], atol=1e-9)
    np.testing.assert_allclose(out["stress_ev_per_a3"][1], out["stress_ev_per_a3"][0], atol=1e-10)


def test_conformance_checks(model64: MLIPModel, samples: list[Structure]) -> None:
    conformance.check_single_atom_not_squeezed(model64)
    conformance.check_inputs_not_mutated(model64, samples)
    conformance.check_batched_matches_single(
        model64, samples, atol_energy=1e-9, atol_forces=1e-9, atol_stress=1e-10
    )
    conformance.check_lattice_translation_invariance(model64, samples[3], atol_energy=1e-9, atol_forces=1e-9)


def test_batched_equals_one_by_one_float32(samples: list[Structure]) -> None:
    model = load_model("default", device="cpu")
    batched = model.predict(samples * 2, batch_size=8)
    single = [model.predict([s])[0] for s in samples]
    for b, s in zip(batched, single * 2, strict=True):
        assert abs(b["energy"] - s["energy"]) < 1e-4
        np.testing.assert_allclose(b["forces"], s["forces"], atol=1e-4)
        np.testing.assert_allclose(b["stress"], s["stress"], atol=1e-3)


def test_predict_returns_documented_shapes_and_types(samples: list[Structure]) -> None:
    result = load_model("default", device="cpu").predict(samples[2:4])
    for structure, out in zip(samples[2:4], result, strict=True):
        n = len(structure)
        assert isinstance(out["energy"], float)
        assert out["forces"].shape == (n, 3) and "magmoms" not in out  # the NequIP backbone has none
        assert out["stress"].shape == (3, 3) and out["charges"].shape == (n,)
        assert not out["charges"].any()  # no long-range head


def test_energy_only_and_energy_forces_modes_match_the_full_prediction(
    samples: list[Structure], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = load_model("default", device="cpu")
    full = model.predict(samples)
    with_forces = model.predict(samples, stress=False)

    def no_autograd(*args, **kwargs):
        raise AssertionError("energy-only screening built an autograd graph")

    monkeypatch.setattr(torch.autograd, "grad", no_autograd)
    energy_only = model.predict(samples, forces=False, stress=False)
    for a, b, c in zip(full, with_forces, energy_only, strict=True):
        assert set(c) == {"energy", "charges"}
        assert set(b) == {"energy", "charges", "forces"}
        assert c["energy"] == pytest.approx(a["energy"], abs=1e-4)
        assert b["energy"] == pytest.approx(a["energy"], abs=1e-4)
        np.testing.assert_allclose(b["forces"], a["forces"], atol=1e-4)


def test_long_range_head_contributes_to_forces(model64: MLIPModel, samples: list[Structure]) -> None:
    structure = samples[0]
    state = BatchedState.from_structures([structure], dtype=torch.float64)
    base = model64.compute(state)
    head = LatentEwaldHead(feature_dim=model64.feature_dim).double()
    model64.long_range = head
    try:
        untrained = model64.compute(state)
        assert float(untrained["energy"][0]) == float(base["energy"][0])
        head.prepare_for_training(std=0.5, generator=torch.Generator().manual_seed(0))
        trained = model64.compute(state)
        assert abs(float(trained["energy"][0] - base["energy"][0])) > 1e-4
        assert float(trained["charges"].abs().max()) > 1e-3
        assert float((trained["forces"] - base["forces"]).abs().max()) > 1e-5
        conformance.check_forces_finite_difference(model64, structure, step=1e-4, atol=1e-5)
        conformance.check_stress_finite_difference(model64, structure, step=1e-5, atol=1e-7)
    finally:
        model64.long_range = None


def test_ase_calculator_matches_compute(model64: MLIPModel, samples: list[Structure]) -> None:
    structure = samples[3]
    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.calc = model64.as_ase_calculator()
    out = model64.compute(BatchedState.from_structures([structure], dtype=torch.float64))
    assert atoms.get_potential_energy() == pytest.approx(float(out["energy"][0]), abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), out["forces"], atol=1e-10)
    np.testing.assert_allclose(atoms.get_stress(voigt=False), out["stress_ev_per_a3"][0], atol=1e-12)
    if "magmoms" in out:  # the CHGNet backbone predicts magnetic moments, the NequIP one does not
        np.testing.assert_allclose(atoms.get_magnetic_moments(), out["magmoms"], atol=1e-10)
    else:
        with pytest.raises(PropertyNotImplementedError):
            atoms.get_magnetic_moments()


def test_unsupported_element_is_reported(model64: MLIPModel) -> None:
    structure = Structure(Lattice.cubic(4.0), ["Am"], [[0, 0, 0]])
    with pytest.raises(ValueError, match="atomic number 95 is not supported; the model covers 1 to 94"):
        model64.predict([structure])


def test_neighbor_list_matches_pymatgen() -> None:
    """Same (i, j, image) set as pymatgen: atoms outside the cell, skewed cells, a large supercell
    (several bins per direction), a tiny cell (many images) and isolated atoms in vacuum."""
    rng = np.random.default_rng(5)
    skewed = Lattice([[3.1, 0, 0], [2.6, 2.9, 0], [-1.2, 0.7, 3.3]])
    big_skewed = Lattice([[14.1, 0, 0], [6.6, 12.9, 0], [-3.2, 2.7, 15.3]])
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    nacl.make_supercell([3, 3, 3])
    structures = [
        Structure(skewed, ["Si"] * 3, rng.uniform(-1.5, 2.5, (3, 3))),
        Structure(Lattice.cubic(2.2), ["Cu"], [[0.1, 0.2, 0.3]]),
        Structure(Lattice.orthorhombic(7.0, 9.0, 3.0), ["O"] * 5, rng.uniform(0, 1, (5, 3))),
        rattled(nacl, 0.1, 6),
        Structure(big_skewed, ["Si"] * 80, rng.uniform(-0.5, 1.5, (80, 3))),
        Structure(Lattice.cubic(40.0), ["O"] * 4, rng.uniform(0, 1, (4, 3))),
    ]
    state = BatchedState.from_structures(structures, dtype=torch.float64)
    i, j, images, lengths = neighbor_pairs(state.positions, state.cell, state.batch, state.pbc, 6.0)
    start = 0
    for b, structure in enumerate(structures):
        centers, neighbors, pmg_images, _ = structure.get_neighbor_list(6.0, numerical_tol=1e-8)
        expected = {
            (int(c), int(n), tuple(int(x) for x in m))
            for c, n, m in zip(centers, neighbors, pmg_images, strict=True)
        }
        mask = state.batch[i] == b
        found = set()
        for c, n, m in zip(i[mask].tolist(), j[mask].tolist(), images[mask].tolist(), strict=True):
            found.add((c - start, n - start, tuple(m)))
            found.add((n - start, c - start, tuple(-x for x in m)))
        assert found == expected
        assert len(found) == 2 * int(mask.sum())  # each bond stored once
        start += len(structure)
    assert float(lengths.max()) <= 6.0


def test_angles_are_pairs_of_short_bonds_at_an_atom() -> None:
    """1-atom simple cubic cell, a = 2.5 Å: 6 directed bonds < 3 Å, 30 ordered angles
    (6 of 180°, 24 of 90°)."""
    structure = AseAtomsAdaptor.get_structure(bulk("Po", "sc", a=2.5))
    state = BatchedState.from_structures([structure], dtype=torch.float64)
    graph = build_graph(state.positions, state.cell, state.batch, state.pbc)
    assert len(graph.short_bonds) == 3  # each bond to a +-image pair is stored once
    vectors = graph.bond_images[graph.short_bonds] @ state.cell[0]
    units = vectors / vectors.norm(dim=1, keepdim=True)
    cosines = graph.angle_sign * (units[graph.angle_bonds[0]] * units[graph.angle_bonds[1]]).sum(1)
    assert sorted(np.round(cosines.tolist(), 12)) == [-1.0] * 6 + [0.0] * 24


@pytest.mark.parametrize("name", BACKBONES)
def test_create_graph_gives_trainable_forces(name: str, samples: list[Structure]) -> None:
    """With create_graph=True a force loss back-propagates to the weights (training on forces)."""
    model = load_model(name, device="cpu", dtype=torch.float64)
    state = BatchedState.from_structures(samples[:2], dtype=torch.float64)
    plain = model.compute(state)
    trained = model.compute(state, create_graph=True)
    np.testing.assert_allclose(trained["forces"].detach(), plain["forces"], atol=1e-12)
    (trained["forces"] ** 2).sum().backward()
    first_layer = next(p for p in model.parameters() if p.requires_grad and p.ndim > 0)  # the embedding
    grad = first_layer.grad
    assert grad is not None and torch.isfinite(grad).all() and float(grad.abs().max()) > 0


def test_isolated_atoms_have_finite_energy_and_no_force(model64: MLIPModel) -> None:
    """Atoms with no neighbour within 6 Å keep their embedding: finite energy, zero force/stress."""
    lonely = Structure(Lattice.cubic(15.0), ["O", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    out = model64.predict([lonely])[0]
    assert np.isfinite(out["energy"]) and out["energy"] < 0
    assert not out["forces"].any() and not out["stress"].any()


def test_state_round_trips_structures(samples: list[Structure]) -> None:
    state = BatchedState.from_structures(samples, dtype=torch.float64)
    assert state.n_systems == len(samples) and state.n_atoms == sum(len(s) for s in samples)
    for original, back in zip(samples, state.to_structures(), strict=True):
        assert back.species == original.species
        np.testing.assert_allclose(back.lattice.matrix, original.lattice.matrix, atol=1e-12)
        np.testing.assert_allclose(back.cart_coords, original.cart_coords, atol=1e-12)
