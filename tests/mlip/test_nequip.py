"""The NequIP backbone: parity with the `sevenn` package for every converted SevenNet model, the
fused convolution against e3nn's TensorProduct, equivariance, long-range heads on it (the physics
every potential must obey runs on both backbones in test_model_physics.py).

Reference: sevenn 0.13.0's ``SevenNetCalculator`` (ASE; energy eV, forces eV/Å, stress eV/Å³ in
ASE's sign), one structure at a time, float32 like ours. Tolerances (issue 20): energy 1e-5
eV/atom, forces 1e-4 eV/Å, stress 1e-3 GPa.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from e3nn import o3
from mp20_sample import mp20_test_structures
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from matsearch.mlip import BatchedState, load_model, model_names
from matsearch.mlip.backbones.nequip.block import InteractionBlock
from matsearch.mlip.backbones.nequip.convolution import EdgeConvolution, coupling_paths
from matsearch.mlip.heads import attach_long_range_head
from matsearch.mlip.heads.les import born_effective_charges, impose_acoustic_sum_rule
from matsearch.mlip.units import EV_PER_A3_IN_GPA

N_PARITY = 50
SEVENN_CHECKPOINTS = {  # our name -> (sevenn's constant, fidelity)
    "sevennet-0": ("SEVENNET_0_11Jul2024", None),
    "sevennet-l3i5": ("SEVENNET_l3i5", None),
    "sevennet-mf-0": ("SEVENNET_MF_0", "PBE"),
}


@pytest.fixture(scope="module")
def structures(mirror_dir: Path) -> list[Structure]:
    return mp20_test_structures(mirror_dir, N_PARITY)


def sevenn_reference(name: str, structures: list[Structure]) -> list[dict]:
    """sevenn's calculator, one structure at a time: energy eV, forces eV/Å, stress GPa (3x3)."""
    import sevenn._const as sevenn_const
    from sevenn.calculator import SevenNetCalculator

    constant, fidelity = SEVENN_CHECKPOINTS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no tensor-product accelerator" on the CPU
        calculator = SevenNetCalculator(getattr(sevenn_const, constant), device="cpu", modal=fidelity)
    out = []
    for structure in structures:
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.calc = calculator
        out.append(
            {
                "energy": atoms.get_potential_energy(),
                "forces": atoms.get_forces(),
                "stress": atoms.get_stress(voigt=False) * EV_PER_A3_IN_GPA,
            }
        )
    return out


@pytest.mark.parametrize("name", sorted(SEVENN_CHECKPOINTS))
def test_converted_sevennet_models_match_sevenn(name: str, structures: list[Structure]) -> None:
    pytest.importorskip("sevenn")
    model = load_model(name, device="cpu")
    assert model.kind == "nequip" and model.energy_convention == "raw-pbe"
    ours = model.predict(structures, batch_size=16)
    reference = sevenn_reference(name, structures)
    pairs = list(zip(ours, reference, structures, strict=True))
    energy = max(abs(o["energy"] - r["energy"]) / len(s) for o, r, s in pairs)
    forces = max(float(np.abs(o["forces"] - r["forces"]).max()) for o, r, _ in pairs)
    stress = max(float(np.abs(o["stress"] - r["stress"]).max()) for o, r, _ in pairs)
    assert energy < 1e-5, f"{name}: energy off by {energy:.3g} eV/atom"
    assert forces < 1e-4, f"{name}: forces off by {forces:.3g} eV/Å"
    assert stress < 1e-3, f"{name}: stress off by {stress:.3g} GPa"


def test_the_sevennet_models_are_listed_and_differ(structures: list[Structure]) -> None:
    assert {"sevennet-0", "sevennet-l3i5", "sevennet-mf-0"} <= set(model_names())
    energies = [
        load_model(name, device="cpu").predict(structures[:1])[0]["energy"] for name in SEVENN_CHECKPOINTS
    ]
    assert min(abs(a - b) for a, b in zip(energies, energies[1:], strict=False)) > 1e-3  # three weight sets


@pytest.mark.parametrize(
    ("irreps_x", "lmax"),
    [("16x0e", 2), ("16x0e+8x1e+4x2e", 2), ("8x0e+4x1o+2x2e+2x3o", 3), ("16x0e+8x1e+4x2e", 0)],
)
def test_fused_convolution_equals_e3nn_tensor_product_then_sum(irreps_x: str, lmax: int) -> None:
    irreps_x = o3.Irreps(irreps_x)
    irreps_sh = o3.Irreps.spherical_harmonics(2, p=1)
    degrees = [(degree, parity) for degree in range(lmax + 1) for parity in (1, -1)]
    keep = o3.Irreps("0e") if lmax == 0 else o3.Irreps([(1, ir) for ir in degrees])
    paths = coupling_paths(irreps_x, irreps_sh, keep)
    parities = [irreps_x[p.x_block].ir.p * irreps_sh[p.sh_block].ir.p for p in paths]
    unsorted = o3.Irreps([(p.mul, (p.l3, parity)) for p, parity in zip(paths, parities, strict=True)])
    irreps_out, permutation, _ = unsorted.sort()
    slots = [(p.x_block, p.sh_block, permutation[p.unsorted_slot], "uvu", True) for p in paths]
    with float64_constants():
        ours = EdgeConvolution(irreps_x, irreps_sh, keep)
        reference = o3.TensorProduct(
            irreps_x,
            irreps_sh,
            irreps_out,
            sorted(slots, key=lambda i: i[2]),
            shared_weights=False,
            internal_weights=False,
        )
    assert ours.irreps_out == irreps_out and ours.weight_numel == reference.weight_numel
    generator = torch.Generator().manual_seed(0)
    n_atoms, n_bonds = 7, 40
    x = torch.randn(n_atoms, irreps_x.dim, generator=generator, dtype=torch.float64)
    vectors = torch.randn(n_bonds, 3, generator=generator, dtype=torch.float64)
    sh = o3.spherical_harmonics(irreps_sh, torch.cat([vectors, -vectors]), normalize=True)
    weights = torch.randn(n_bonds, ours.weight_numel, generator=generator, dtype=torch.float64)
    first = torch.randint(0, n_atoms, (n_bonds,), generator=generator)
    second = torch.randint(0, n_atoms, (n_bonds,), generator=generator)
    center, neighbor = torch.cat([first, second]), torch.cat([second, first])
    messages = reference(x[neighbor], sh, torch.cat([weights, weights]))
    expected = torch.zeros(n_atoms, irreps_out.dim, dtype=torch.float64).index_add_(0, center, messages)
    torch.testing.assert_close(ours(x, sh, weights, center, neighbor), expected, rtol=1e-12, atol=1e-12)


def test_block_output_rotates_with_the_structure() -> None:
    """Equivariance: rotating every edge rotates the block's output by the irreps' Wigner D."""
    irreps_in, irreps_out = o3.Irreps("8x0e+4x1e+2x2e"), o3.Irreps("8x0e+4x1e+2x2e")
    irreps_sh = o3.Irreps.spherical_harmonics(2, p=1)
    with float64_constants():
        block = InteractionBlock(irreps_in, irreps_out, irreps_sh, 8, (16,), 3.0)
        sh_of = o3.SphericalHarmonics(irreps_sh, normalize=True, normalization="component", irreps_in="1x1e")
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(5, irreps_in.dim, generator=generator, dtype=torch.float64)
    vectors = torch.randn(12, 3, generator=generator, dtype=torch.float64)
    radial = torch.rand(12, 8, generator=generator, dtype=torch.float64)
    first = torch.randint(0, 5, (12,), generator=generator)
    second = torch.randint(0, 5, (12,), generator=generator)
    center, neighbor = torch.cat([first, second]), torch.cat([second, first])
    rotation = o3.angles_to_matrix(*torch.tensor([0.7, 1.1, -2.3], dtype=torch.float64))

    def run(x: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        return block(x, sh_of(torch.cat([vectors, -vectors])), radial, center, neighbor, None)

    with float64_constants():  # Wigner D from float64 constants
        d_in = irreps_in.D_from_matrix(rotation)
        d_out = irreps_out.D_from_matrix(rotation)
    rotated = run(x @ d_in.T, vectors @ rotation.T)
    torch.testing.assert_close(rotated, run(x, vectors) @ d_out.T, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["les", "qeq"])
def test_a_zero_long_range_head_leaves_the_nequip_model_unchanged(kind: str) -> None:
    model = load_model("sevennet-0", device="cpu", dtype=torch.float64)
    zno = Structure(Lattice.hexagonal(3.25, 5.2), ["Zn", "Zn", "O", "O"], _wurtzite()).perturb(0.05, seed=1)
    state = BatchedState.from_structures([zno], dtype=torch.float64)
    bare = model.compute(state)
    attach_long_range_head(model, kind)
    with_head = model.compute(state)
    for key in ("energy", "forces", "stress_ev_per_a3"):
        torch.testing.assert_close(with_head[key], bare[key], rtol=0, atol=1e-12)
    model.long_range.prepare_for_training(std=0.5, generator=torch.Generator().manual_seed(0))
    assert (model.compute(state)["energy"] - bare["energy"]).abs().item() > 1e-4  # the head is live


def test_born_charges_of_a_les_head_on_the_nequip_backbone_and_the_acoustic_sum_rule() -> None:
    """A live LES head on SevenNet: in rock salt the Born charges sum to zero as they are; in polar
    wurtzite ZnO the periodic charge-response term breaks the sum rule, and imposing it removes
    exactly the mean violation from every atom."""
    model = load_model("sevennet-0", device="cpu", dtype=torch.float64)
    head = attach_long_range_head(model, "les")
    head.prepare_for_training(std=0.5, generator=torch.Generator().manual_seed(0))
    nacl = Structure(Lattice.cubic(5.64), ["Na", "Cl"] * 4, _rocksalt())
    zno = Structure(Lattice.hexagonal(3.25, 5.2), ["Zn", "Zn", "O", "O"], _wurtzite())
    sums = {}
    for name, crystal in (("NaCl", nacl), ("ZnO", zno)):
        state = BatchedState.from_structures([crystal], dtype=torch.float64)
        state.positions = state.positions.clone().requires_grad_(True)
        charges = model.compute(state, forces=False, stress=False, create_graph=True)["charges"]
        born = born_effective_charges(charges, state.positions, state.cell, state.batch, state.pbc)
        imposed = impose_acoustic_sum_rule(born, state.batch, 1)
        assert born.abs().max() > 0.01  # a live head
        torch.testing.assert_close(
            imposed.sum(dim=0), torch.zeros(3, 3, dtype=torch.float64), rtol=0, atol=1e-10
        )
        torch.testing.assert_close(imposed, born - born.mean(dim=0), rtol=0, atol=1e-12)
        sums[name] = float(born.sum(dim=0).abs().max())
    assert sums["NaCl"] < 1e-10 < 1e-3 < sums["ZnO"]


def test_nequip_model_refuses_species_it_was_not_trained_on() -> None:
    model = load_model("sevennet-0", device="cpu")
    known = set(model.config.species)
    missing = next(z for z in range(1, model.max_atomic_number + 1) if z not in known)
    crystal = Structure(Lattice.cubic(3.0), [int(missing)], [[0, 0, 0]])
    with pytest.raises(ValueError, match=f"atomic numbers \\[{missing}\\] are not among the species"):
        model.predict([crystal])


def test_a_saved_nequip_model_reloads_with_identical_numbers(
    structures: list[Structure], tmp_path: Path
) -> None:
    model = load_model("sevennet-mf-0", device="cpu")
    reloaded = load_model(str(model.save(tmp_path / "mf.pt")), device="cpu")
    assert reloaded.config == model.config and reloaded.energy_convention == "raw-pbe"
    before, after = model.predict(structures[:3]), reloaded.predict(structures[:3])
    for b, a in zip(before, after, strict=True):
        assert a["energy"] == b["energy"]
        np.testing.assert_array_equal(a["forces"], b["forces"])


@contextmanager
def float64_constants() -> Iterator[None]:
    """Modules built inside compute their constants (Wigner 3j, normalisations) in float64."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(default)


def _rocksalt() -> list[list[float]]:
    fcc = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    return [site for a in fcc for site in (a, [(a[0] + 0.5) % 1, a[1], a[2]])]


def _wurtzite() -> list[list[float]]:
    return [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, 0.375], [2 / 3, 1 / 3, 0.875]]
