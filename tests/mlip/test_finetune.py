"""Fine-tuning: the LES head learns Coulomb energy beyond the cutoff; loaders; saving."""

from __future__ import annotations

import copy
import inspect
import json
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from pymatgen.analysis.ewald import EwaldSummation
from pymatgen.core import Element, Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from matsearch.errors import DataError, ModelError
from matsearch.finetune_settings import FinetuneSettings
from matsearch.mlip import load_model
from matsearch.mlip.heads import attach_long_range_head
from matsearch.mlip.heads.les import LatentEwaldHead
from matsearch.mlip.training.atom_ref import AtomRefKeptWarning
from matsearch.mlip.training.finetune import (
    LabelledStructure,
    evaluate,
    finetune,
    finetune_cli,
    predict_energies,
    read_dataset,
    refit_atom_ref,
    split_dataset,
)
from matsearch.mlip.units import EV_PER_A3_IN_GPA

BORN_MAYER_A_EV, BORN_MAYER_RHO_A = 1000.0, 0.3


def dilute_ionic_cell(rng: np.random.Generator) -> LabelledStructure:
    """2-4 Na+/Cl- pairs at random in a cubic box of 12-16 Å, ions at least 3.2 Å apart.

    Label: pymatgen's Ewald energy of the point charges (most ion pairs are further apart than the
    6 Å cutoff, and no atom lies between them to carry messages) + a Born-Mayer repulsion.
    """
    length = rng.uniform(12, 16)
    n_pairs = int(rng.integers(2, 5))
    lattice = Lattice.cubic(length)
    frac: list[np.ndarray] = []
    while len(frac) < 2 * n_pairs:
        trial = rng.uniform(0, 1, 3)
        if all(lattice.get_distance_and_image(trial, f)[0] >= 3.2 for f in frac):
            frac.append(trial)
    structure = Structure(lattice, ["Na", "Cl"] * n_pairs, frac)
    charged = structure.copy()
    charged.add_oxidation_state_by_element({"Na": 1, "Cl": -1})
    _, _, _, distances = structure.get_neighbor_list(4.0)
    repulsion = 0.5 * np.sum(BORN_MAYER_A_EV * np.exp(-distances / BORN_MAYER_RHO_A))
    return LabelledStructure(structure, float(EwaldSummation(charged).total_energy + repulsion))


# The fine-tuning machinery is tested on the fast CHGNet backbone (its layer names appear below);
# the default (NequIP) backbone is fine-tuned by the CLI test that leaves --base at its default.
BASE = "chgnet-0.3.0"


@pytest.fixture(scope="module")
def base_model():
    return load_model(BASE, device="cpu")


@pytest.fixture
def one_thread():
    """Small tensors: one intra-op thread is several times faster than two on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_les_head_learns_long_range_coulomb_that_the_readout_cannot(base_model, one_thread):
    rng = np.random.default_rng(0)
    data = [dilute_ionic_cell(rng) for _ in range(104)]
    train, held_out = data[:80], data[80:]
    errors = {}
    for les in (False, True):
        model = copy.deepcopy(base_model)
        layers = ("readout",)
        if les:
            attach_long_range_head(model, "les")
            layers = ("readout", "long_range")
        settings = FinetuneSettings(
            epochs=1000,
            lr=1e-2,
            batch_size=len(train),
            train_layers=layers,
            force_weight=0,
            stress_weight=0,
        )
        result = finetune(model, train, settings)
        assert result.frozen_features
        errors[les] = evaluate(model, held_out, batch_size=64)["energy_mae_ev_per_atom"]
        if les:
            charges = model.predict([held_out[0].structure])[0]["charges"]
            # Latent charges come out as ±c per element (sign and scale are free for the head).
            assert np.ptp(charges[::2]) < 0.3 and np.ptp(charges[1::2]) < 0.3
            assert abs(charges[0] - charges[1]) > 1.0
    # Measured (seed 0): readout 0.14 eV/atom, LES 0.007 eV/atom held-out MAE.
    assert errors[True] < 0.02
    assert errors[False] / errors[True] >= 5.0, errors


def orb_frames(mirror_dir):
    return mirror_dir / "mlip" / "orb_10_mptraj_systems.db"


def write_pymatgen_json(path, examples):
    records = [
        {
            "structure": e.structure.as_dict(),
            "energy": e.energy,
            "forces": e.forces.tolist(),
            "stress": (e.stress * EV_PER_A3_IN_GPA).tolist(),  # GPa
        }
        for e in examples
    ]
    path.write_text(json.dumps(records))
    return path


def test_ase_db_extxyz_and_pymatgen_json_read_the_same_labels(mirror_dir, tmp_path):
    from_db = read_dataset(orb_frames(mirror_dir))
    assert len(from_db) == 10
    assert from_db[0].energy == pytest.approx(-73.4299391)
    assert from_db[0].stress[0, 0] == pytest.approx(4.29188156e-03)  # eV/Å³, ASE sign
    frames = []
    for example in from_db:
        atoms = AseAtomsAdaptor.get_atoms(example.structure)
        atoms.calc = SinglePointCalculator(
            atoms, energy=example.energy, forces=example.forces, stress=example.stress
        )
        frames.append(atoms)
    write(tmp_path / "frames.extxyz", frames)
    from_xyz = read_dataset(tmp_path / "frames.extxyz")
    from_json = read_dataset(write_pymatgen_json(tmp_path / "frames.json", from_db))
    for a, b, c in zip(from_db, from_xyz, from_json, strict=True):
        assert a.energy == pytest.approx(b.energy, rel=1e-12) == pytest.approx(c.energy, rel=1e-12)
        np.testing.assert_allclose(b.forces, a.forces, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(c.forces, a.forces, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b.stress, a.stress, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(c.stress, a.stress, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(c.structure.cart_coords, a.structure.cart_coords, atol=1e-10)
        assert c.structure.species == a.structure.species == b.structure.species


def test_bad_dataset_files_are_reported(tmp_path):
    with pytest.raises(DataError, match="frames.csv does not exist"):
        read_dataset(tmp_path / "frames.csv")
    (tmp_path / "frames.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unknown dataset type 'frames.csv'"):
        read_dataset(tmp_path / "frames.csv")
    structure = Structure(Lattice.cubic(3), ["Si"], [[0, 0, 0]])
    (tmp_path / "no_energy.json").write_text(json.dumps([{"structure": structure.as_dict()}]))
    with pytest.raises(DataError, match="record 0 needs at least the keys 'structure' and 'energy'"):
        read_dataset(tmp_path / "no_energy.json")
    bad_forces = [{"structure": structure.as_dict(), "energy": -5.0, "forces": [[0, 0, 0]] * 2}]
    (tmp_path / "bad_forces.json").write_text(json.dumps(bad_forces))
    with pytest.raises(DataError, match=r"entry 0: forces have shape \(2, 3\), expected \(1, 3\)"):
        read_dataset(tmp_path / "bad_forces.json")


def smallest_frames(mirror_dir, n: int):
    return sorted(read_dataset(orb_frames(mirror_dir)), key=lambda e: len(e.structure))[:n]


def test_atom_ref_refit_leaves_energy_errors_orthogonal_to_composition(base_model, mirror_dir, one_thread):
    model = copy.deepcopy(base_model)
    frames = smallest_frames(mirror_dir, 4)
    before = model.atom_ref.clone()
    shift = refit_atom_ref(model, frames, predict_energies(model, frames))
    errors = np.array([e.energy for e in frames]) - predict_energies(model, frames)
    numbers = sorted({z for e in frames for z in e.structure.atomic_numbers})
    counts = np.array([[e.structure.atomic_numbers.count(z) for z in numbers] for e in frames])
    # Least squares: the residual is orthogonal to every element's count column.
    np.testing.assert_allclose(counts.T @ errors, 0.0, atol=2e-3)
    changed = (model.atom_ref - before).nonzero().flatten().tolist()
    assert sorted(z - 1 for z in numbers) == changed
    assert set(shift) == {Element.from_Z(z).symbol for z in numbers}


def test_finetune_cli_fits_forces_and_stress_and_saves_a_loadable_model(mirror_dir, tmp_path, one_thread):
    data = write_pymatgen_json(tmp_path / "small.json", smallest_frames(mirror_dir, 4))
    settings = FinetuneSettings(
        epochs=3,
        lr=1e-3,
        batch_size=3,
        train_layers=("readout", "atom_convs.3"),
        seed=0,
        atom_ref_min_structures=1,  # 3 training structures: refit AtomRef anyway
    )
    summary = finetune_cli(
        data, tmp_path / "tuned.pt", settings, base=BASE, les=True, validation_fraction=0.25, device="cpu"
    )
    assert summary["n_train"] == 3 and summary["n_validation"] == 1
    assert summary["train_layers"] == ["readout", "atom_convs.3", "long_range"]
    assert not summary["frozen_features"]
    assert summary["long_range"]["kind"] == "les"
    assert set(summary["final_validation"]) == {
        "energy_mae_ev_per_atom",
        "forces_mae_ev_per_a",
        "stress_mae_gpa",
    }
    train, _ = split_dataset(read_dataset(data), 0.25, 0)
    base = evaluate(load_model(BASE, device="cpu"), train)
    assert summary["final_train"]["energy_mae_ev_per_atom"] < 0.2 * base["energy_mae_ev_per_atom"]
    tuned = load_model(summary["model_path"], device="cpu")
    assert isinstance(tuned.long_range, LatentEwaldHead)
    assert not tuned.long_range.charge_net.output_is_zero()
    reloaded = evaluate(tuned, train)
    for key, value in summary["final_train"].items():
        assert reloaded[key] == pytest.approx(value, rel=1e-5, abs=1e-7)
    charges = tuned.predict([train[0].structure])[0]["charges"]
    assert np.abs(charges).max() > 0


def test_finetune_trains_only_the_chosen_layers(base_model, mirror_dir, one_thread):
    model = copy.deepcopy(base_model)
    frames = smallest_frames(mirror_dir, 2)
    with pytest.raises(ModelError, match="unknown layer 'conv9' in train_layers"):
        finetune(model, frames, FinetuneSettings(train_layers=("readout", "conv9")))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    settings = FinetuneSettings(epochs=2, lr=1e-3, train_layers=("atom_convs.3",), stress_weight=0)
    result = finetune(model, frames, settings)
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed and all(name.startswith("atom_convs.3.") for name in changed)
    assert result.trained_parameters == sum(
        p.numel() for name, p in model.named_parameters() if name.startswith("atom_convs.3.")
    )
    assert all(p.requires_grad for p in model.parameters())  # flags restored after training


def test_pymatgen_json_never_imports_modules_named_in_the_file(tmp_path, monkeypatch) -> None:
    marker = tmp_path / "imported.txt"
    (tmp_path / "planted_module.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\nclass Payload:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    structure = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    data = structure.as_dict()
    data["sites"][0]["properties"] = {"x": {"@module": "planted_module", "@class": "Payload"}}
    (tmp_path / "data.json").write_text(json.dumps([{"structure": data, "energy": -6.5}]))

    (example,) = read_dataset(tmp_path / "data.json")

    assert example.structure == structure and example.energy == -6.5
    assert not marker.exists()
    Structure.from_dict(copy.deepcopy(data))  # control: pymatgen itself imports the module
    assert marker.read_text() == "ran"


def test_pymatgen_json_with_a_broken_structure_is_a_data_error(tmp_path) -> None:
    (tmp_path / "data.json").write_text(json.dumps([{"structure": {"lattice": 5}, "energy": -1.0}]))
    with pytest.raises(DataError, match=r"record 0: 'structure' is not a pymatgen Structure.as_dict\(\)"):
        read_dataset(tmp_path / "data.json")


def _rocksalt_set(n: int) -> list[LabelledStructure]:
    """n NaCl rock-salt cells, 5.4-5.9 Å, labelled −3.3 eV/atom (made-up DFT-like energies)."""
    cells = [
        Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        for a in np.linspace(5.4, 5.9, n)
    ]
    return [LabelledStructure(s.get_primitive_structure(), -3.3 * 2) for s in cells]


def test_atom_ref_is_kept_with_a_warning_on_too_little_data_per_element(base_model, one_thread):
    model = copy.deepcopy(base_model)
    before = model.atom_ref.detach().clone()
    settings = FinetuneSettings(epochs=1, force_weight=0, stress_weight=0, atom_ref_min_structures=4)
    with pytest.warns(AtomRefKeptWarning, match=r"at least 4 training structures, .* \(Na in 3, Cl in 3\)"):
        result = finetune(model, _rocksalt_set(3), settings)
    assert torch.equal(model.atom_ref, before)
    assert not result.atom_ref_refit and result.atom_ref_shift == {}
    assert result.structures_per_element == {"Na": 3, "Cl": 3}
    enough = copy.deepcopy(base_model)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AtomRefKeptWarning)
        result = finetune(enough, _rocksalt_set(4), settings)
    assert result.atom_ref_refit and set(result.atom_ref_shift) == {"Na", "Cl"}
    assert not torch.equal(enough.atom_ref, before)


def test_finetune_command_shows_epochs_and_the_atom_ref_warning(tmp_path):
    records = [{"structure": e.structure.as_dict(), "energy": e.energy} for e in _rocksalt_set(4)]
    (tmp_path / "tiny.json").write_text(json.dumps(records))
    done = subprocess.run(
        [sys.executable, "-m", "matsearch.cli", "mlip", "finetune", str(tmp_path / "tiny.json")]
        + ["--out", str(tmp_path / "tiny.pt"), "--epochs", "2", "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert "warning: AtomRef kept from the base model: refitting it needs every element in at least 10" in (
        done.stderr
    )
    assert "(Na in 3, Cl in 3)" in done.stderr  # 4 structures, one held out for validation
    assert "epoch 1/2: loss" in done.stderr and "epoch 2/2: loss" in done.stderr
    summary = json.loads(done.stdout)
    assert summary["atom_ref_refit"] is False and summary["atom_ref_min_structures"] == 10
    assert summary["structures_per_element"] == {"Na": 3, "Cl": 3}


def test_finetune_command_defaults_are_the_library_defaults():
    """What `--help` shows is what the Python API does: the settings' defaults, and
    `finetune_cli`'s own for the options that are not settings."""
    from matsearch.cli import mlip_finetune

    settings = FinetuneSettings()
    library = inspect.signature(finetune_cli).parameters
    command = inspect.signature(mlip_finetune).parameters
    renamed = {"train_layer": "train_layers"}
    checked = set()
    for name, parameter in command.items():
        if parameter.default is inspect.Parameter.empty or name in ("out", "data", "from_run"):  # the inputs
            continue
        field = renamed.get(name, name)
        default = getattr(settings, field) if hasattr(settings, field) else library[field].default
        assert parameter.default == (list(default) if isinstance(default, tuple) else default), name
        checked.add(field)
    assert {"epochs", "lr", "batch_size", "train_layers", "seed", "validation_fraction"} <= checked
    assert library["les"].default is False


def test_stress_only_examples_train_and_report_no_energy_error(base_model, one_thread):
    """Strained copies labelled with a stress alone (no energy): the stress error falls, and
    evaluate reports no energy MAE when no example has an energy."""
    rocksalt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3])
    examples = []
    for factor in (0.96, 1.0, 1.04):
        copy_ = rocksalt.get_primitive_structure()
        copy_.scale_lattice(copy_.volume * factor)
        pressure_gpa = 100.0 * (1.0 - factor)  # a much stiffer NaCl than the model's
        examples.append(LabelledStructure(copy_, None, stress=-pressure_gpa / EV_PER_A3_IN_GPA * np.eye(3)))
    model = copy.deepcopy(base_model)
    before = evaluate(model, examples)
    assert set(before) == {"stress_mae_gpa"}
    settings = FinetuneSettings(
        epochs=30, lr=1e-2, batch_size=3, train_layers=("readout",), stress_weight=1.0
    )
    result = finetune(model, examples, settings)
    assert not result.atom_ref_refit and result.structures_per_element == {}
    assert result.final_train["stress_mae_gpa"] < 0.5 * before["stress_mae_gpa"]


def test_an_example_of_weight_zero_changes_nothing(base_model, mirror_dir, one_thread):
    """Weight 0 drops an example from the loss and from the AtomRef refit, even alone in its batch."""
    frames = smallest_frames(mirror_dir, 2)
    wild = LabelledStructure(frames[1].structure, frames[1].energy + 50.0, frames[1].forces * 10, weight=0.0)
    settings = FinetuneSettings(
        epochs=3, lr=1e-3, batch_size=1, train_layers=("readout",), atom_ref_min_structures=1
    )
    alone, with_wild = copy.deepcopy(base_model), copy.deepcopy(base_model)
    first = finetune(alone, frames[:1], settings)
    second = finetune(with_wild, [frames[0], wild], settings)
    assert first.atom_ref_refit and second.atom_ref_refit
    assert second.atom_ref_shift == pytest.approx(first.atom_ref_shift, abs=1e-9)
    assert all(math.isfinite(r["train_loss"]) for r in second.history)
    for a, b in zip(alone.readout.parameters(), with_wild.readout.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_a_weight_multiplies_the_squared_error(base_model, mirror_dir, one_thread):
    """Doubling one example's weight doubles its share of the loss (not a per-batch normalisation)."""
    (frame,) = smallest_frames(mirror_dir, 1)
    settings = FinetuneSettings(
        epochs=1, lr=1e-12, batch_size=1, train_layers=("readout",), refit_atom_ref=False
    )
    losses = []
    for weight in (1.0, 2.0):
        example = LabelledStructure(frame.structure, frame.energy, frame.forces, frame.stress, weight=weight)
        losses.append(finetune(copy.deepcopy(base_model), [example], settings).history[0]["train_loss"])
    assert losses[1] == pytest.approx(2 * losses[0], rel=1e-4)


def test_batches_without_a_fitted_label_are_skipped(base_model, one_thread):
    """A stress-only example while stresses are not fitted: nothing to learn, nothing raised."""
    structure = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    example = LabelledStructure(structure, None, stress=np.eye(3) * 0.01)
    model = copy.deepcopy(base_model)
    before = [p.detach().clone() for p in model.readout.parameters()]
    settings = FinetuneSettings(epochs=2, lr=1e-3, batch_size=1, train_layers=("readout",), stress_weight=0)
    result = finetune(model, [example], settings)
    assert [r["train_loss"] for r in result.history] == [0.0, 0.0]
    for a, b in zip(before, model.readout.parameters(), strict=True):
        assert torch.equal(a, b)


def test_pymatgen_json_reads_null_energies_and_weights(tmp_path):
    structure = Structure(Lattice.cubic(3), ["Si"], [[0, 0, 0]])
    records = [
        {"structure": structure.as_dict(), "energy": None, "stress": [1, 1, 1, 0, 0, 0], "weight": 2.5},
        {"structure": structure.as_dict(), "energy": -5.0},
    ]
    (tmp_path / "labels.json").write_text(json.dumps(records))
    first, second = read_dataset(tmp_path / "labels.json")
    assert first.energy is None and first.weight == 2.5
    assert first.stress[0, 0] == pytest.approx(1 / EV_PER_A3_IN_GPA)
    assert second.energy == -5.0 and second.weight == 1.0
    records[0]["weight"] = -1
    (tmp_path / "bad.json").write_text(json.dumps(records))
    with pytest.raises(DataError, match=r"record 0: weight must be a number >= 0, got -1$"):
        read_dataset(tmp_path / "bad.json")
