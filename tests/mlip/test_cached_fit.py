"""Training code of the default-model recipe: curvature targets, pair correction, cached fitting."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from matsearch.mlip import load_model
from matsearch.mlip.heads import attach_long_range_head
from matsearch.mlip.heads.pair import PairCorrection
from matsearch.mlip.state import BatchedState
from matsearch.mlip.testing import validate_model
from matsearch.mlip.training.cached_fit import (
    CachedFitSettings,
    EnergyExample,
    batch_loss,
    cache_batches,
    fit_cached,
    pack_batches,
    predict_cached,
    refit_references,
    residuals,
)
from matsearch.mlip.training.eos_targets import (
    birch_murnaghan_energy,
    birch_murnaghan_pressure_gpa,
    bulk_modulus_from_energies,
    strained_copies,
)
from matsearch.mlip.units import EV_PER_A3_IN_GPA


@pytest.fixture
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def base_model():
    return load_model("chgnet-0.3.0", device="cpu")


def rocksalt(a: float, species=("Na", "Cl")) -> Structure:
    return Structure(Lattice.cubic(a), list(species), [[0, 0, 0], [0.5, 0.5, 0.5]]).get_primitive_structure()


def test_birch_murnaghan_is_zero_at_v0_with_curvature_b0():
    v0, b0_gpa = 40.0, 120.0
    assert birch_murnaghan_energy(np.array([v0]), v0, b0_gpa)[0] == pytest.approx(0.0, abs=1e-12)
    volumes = v0 * (1 + np.linspace(-0.02, 0.02, 9))
    energies = birch_murnaghan_energy(volumes, v0, b0_gpa)
    assert np.argmin(energies) == 4
    assert bulk_modulus_from_energies(volumes, energies, v0) == pytest.approx(b0_gpa, rel=2e-3)


@pytest.mark.parametrize("b0_prime", [4.0, 5.5])
def test_birch_murnaghan_pressure_is_minus_the_volume_derivative_of_the_energy(b0_prime: float):
    v0, b0_gpa, step = 20.0, 120.0, 1e-4
    assert birch_murnaghan_pressure_gpa(v0, v0, b0_gpa, b0_prime) == 0.0
    for volume in (18.5, 19.6, 21.0):
        energies = birch_murnaghan_energy(np.array([volume - step, volume + step]), v0, b0_gpa, b0_prime)
        derivative_gpa = -(energies[1] - energies[0]) / (2 * step) * EV_PER_A3_IN_GPA
        assert birch_murnaghan_pressure_gpa(volume, v0, b0_gpa, b0_prime) == pytest.approx(
            derivative_gpa, rel=1e-7
        )
    # compressed: positive pressure; and B = -V dP/dV at V0
    slope = birch_murnaghan_pressure_gpa(v0 * (1 - 1e-5), v0, b0_gpa) - birch_murnaghan_pressure_gpa(
        v0 * (1 + 1e-5), v0, b0_gpa
    )
    assert slope / 2e-5 == pytest.approx(b0_gpa, rel=1e-6)


def test_strained_copies_scale_the_volume_and_carry_bm_energies():
    structure = rocksalt(5.64)
    copies = strained_copies(structure, 25.0, (-0.04, 0.0, 0.04))
    for copy_ in copies:
        assert copy_.structure.volume == pytest.approx(structure.volume * (1 + copy_.volume_strain))
    assert copies[1].relative_energy == pytest.approx(0.0, abs=1e-12)
    assert min(copies[0].relative_energy, copies[2].relative_energy) > 0
    with pytest.raises(ValueError, match="b0_gpa"):
        strained_copies(structure, -1.0)


def test_pair_correction_starts_at_zero_and_keeps_the_model_conformant():
    model = load_model("chgnet-0.3.0", device="cpu", dtype=torch.float64)
    structures = [rocksalt(5.64), Structure(Lattice.cubic(4.1), ["Cs", "Cl"], [[0, 0, 0], [0.52, 0.47, 0.5]])]
    state = BatchedState.from_structures(structures, dtype=torch.float64)
    before = model.compute(state)["energy"]
    model.pair_correction = PairCorrection(cutoff=model.config.atom_cutoff).to(torch.float64)
    torch.testing.assert_close(model.compute(state)["energy"], before, rtol=0, atol=0)
    with torch.no_grad():
        model.pair_correction.output.weight.normal_(std=0.5, generator=torch.Generator().manual_seed(0))
    assert (model.compute(state)["energy"] - before).abs().min() > 1e-4
    validate_model(model, structures)


def test_saved_model_keeps_pair_correction_and_head(tmp_path, base_model):
    model = copy.deepcopy(base_model)
    attach_long_range_head(model, "les").prepare_for_training(
        std=0.3, generator=torch.Generator().manual_seed(1)
    )
    model.pair_correction = PairCorrection()
    with torch.no_grad():
        model.pair_correction.output.bias.fill_(0.01)
    path = model.save(tmp_path / "m.pt")
    loaded = load_model(str(path), device="cpu")
    structures = [rocksalt(5.5), rocksalt(4.2, ("Mg", "O"))]
    want = model.predict(structures)
    got = loaded.predict(structures)
    for a, b in zip(want, got, strict=True):
        assert a["energy"] == pytest.approx(b["energy"], abs=1e-5)
        np.testing.assert_allclose(a["forces"], b["forces"], atol=1e-5)


def _examples() -> list[EnergyExample]:
    examples = [EnergyExample(rocksalt(a), -7.0 + (a - 5.6) ** 2) for a in (5.4, 5.5, 5.6, 5.7, 5.8)]
    for k, copy_ in enumerate(strained_copies(rocksalt(4.21, ("Mg", "O")), 160.0, (-0.04, 0.0, 0.04))):
        examples.append(
            EnergyExample(copy_.structure, copy_.relative_energy + 3.0, "eos:MgO", 2.0, copy_.volume_strain)
        )
        del k
    return examples


def test_packing_keeps_group_members_together():
    examples = _examples()
    batches = pack_batches(examples, max_atoms=6, max_structures=4, group_chunk=8, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(len(examples)))
    group_batches = {k for k, b in enumerate(batches) for i in b if examples[i].group == "eos:MgO"}
    assert len(group_batches) == 1


def test_group_residuals_ignore_a_constant_and_a_linear_trend(base_model):
    examples = _examples()
    cached = cache_batches(base_model, examples, [list(range(len(examples)))])
    batch = cached[0]
    strain = batch.coordinate.nan_to_num(0.0)
    grouped = batch.group >= 0
    labels = batch.energy.clone()
    # energies = labels + (5 + 0.3 s) per atom for the group: residuals vanish there
    energy = labels + torch.where(grouped, (5.0 + 0.3 * strain) * batch.n_atoms, torch.zeros_like(labels))
    residual, informative = residuals(batch, energy, slope_weight=0.0)
    assert residual[grouped].abs().max() < 1e-5
    assert informative.all()
    residual, _ = residuals(batch, energy, slope_weight=1.0)  # the slope now counts
    assert residual[grouped].abs().max() > 1e-3
    loss, weight = batch_loss(batch, energy, huber_delta=math.inf)
    assert weight == pytest.approx(5 + 3 * 2.0)
    assert float(loss) == pytest.approx(0.0, abs=1e-10)


def test_cached_fit_lowers_the_training_loss_and_matches_the_full_model(base_model, one_thread):
    model = copy.deepcopy(base_model)
    attach_long_range_head(model, "les").prepare_for_training(generator=torch.Generator().manual_seed(0))
    model.pair_correction = PairCorrection()
    examples = _examples()
    batches = pack_batches(examples, max_atoms=8, max_structures=4, seed=0)
    cached = cache_batches(model, examples, batches)
    shift = refit_references(model, examples, cached)
    assert set(shift) == {"Na", "Cl"}
    settings = CachedFitSettings(max_epochs=15, patience=15, lr=1e-3, pair_lr=3e-3, seed=0)
    saved = []
    result = fit_cached(model, cached, cached, settings, on_improve=lambda m, record: saved.append(record))
    assert result.best_validation_loss < result.history[0]["validation_loss"]
    assert saved and saved[-1]["epoch"] == result.best_epoch
    # the fitted model, run end to end, gives what the cache gives
    predicted = predict_cached(model, cached, len(examples))
    state = BatchedState.from_structures([e.structure for e in examples])
    np.testing.assert_allclose(
        model.compute(state, forces=False, stress=False)["energy"].numpy(), predicted, atol=2e-3
    )
    assert not model.pair_correction.output_is_zero()
    assert all(not p.requires_grad for p in model.parameters())
