"""Fine-tuning of the MLIP (chosen backbone layers, long-range head) on energies, forces, stresses.

Datasets (``read_dataset``), by file name:

- ASE database (``.db``) or extended XYZ (``.extxyz``, ``.xyz``): frames with a single-point
  calculator; energy in eV, forces in eV/Å, stress in eV/Å³ with ASE's sign.
- pymatgen JSON (``.json``, ``.json.gz``): a list of ``{"structure": Structure.as_dict(),
  "energy": eV per cell or null (not fitted), "forces": [n, 3] eV/Å (optional), "stress": [3, 3]
  or Voigt [xx, yy, zz, yz, xz, xy] in GPa (optional), "weight": (optional, default 1)}``, stress
  with the sign of ``MLIPModel.predict`` (ASE's: positive = tensile).

Loss per batch: energy_weight × MSE(energy per atom, eV/atom) + force_weight × MSE(forces, eV/Å) +
stress_weight × MSE(stress, GPa), each over the structures that carry that label and weighted by
each structure's ``weight``. Before training the
elemental reference energies (AtomRef) are shifted by the least-squares per-element fit of the
model's energy error on the training set, when every element appears in at least
``atom_ref_min_structures`` training structures (``matsearch.mlip.training.atom_ref``); otherwise AtomRef is
kept and an ``AtomRefKeptWarning`` names the short elements.

When only the readout and the long-range head are trained and forces and stresses are not fitted,
the backbone's atom features do not change: they are computed once ("frozen features") and the
energy is rebuilt from them as Σ_i [readout(f_i) + AtomRef(Z_i)] + head energy, which is checked
against ``MLIPModel.compute`` before training starts.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pymatgen.core import Element, Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from matsearch.errors import DataError, MatsearchError, ModelError
from matsearch.finetune_settings import FinetuneSettings
from matsearch.mlip.heads import attach_long_range_head
from matsearch.mlip.heads.ewald import coulomb_matrix, pad_atoms
from matsearch.mlip.heads.les import LatentEwaldHead
from matsearch.mlip.model import MLIPModel, ModelInfo
from matsearch.mlip.registry import load_model
from matsearch.mlip.state import BatchedState
from matsearch.mlip.training.atom_ref import may_refit_atom_ref, structures_per_element
from matsearch.mlip.units import EV_PER_A3_IN_GPA

logger = logging.getLogger(__name__)

LONG_RANGE = "long_range"
FROZEN_FEATURE_LAYERS = ("readout", LONG_RANGE)


@dataclass
class LabelledStructure:
    """One training example: energy (eV per cell), forces [n, 3] (eV/Å), stress [3, 3] (eV/Å³).

    Any label may be None (not fitted): e.g. a strained copy with only a stress label, or frames
    from another DFT set whose energies are on another scale.

    Stress has the sign of ``MLIPModel.compute`` (ASE's: (1/V) dE/dε, positive = tensile).
    """

    structure: Structure
    energy: float | None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    weight: float = 1.0  # multiplies this example's squared errors in the loss


def _stress_matrix(values: Any, where: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.shape == (3, 3):
        return array
    if array.shape == (6,):
        xx, yy, zz, yz, xz, xy = array
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    raise DataError(f"{where}: stress must be 3×3 or Voigt 6, got shape {array.shape}")


def _from_ase_frames(frames: Sequence[Any], path: Path) -> list[LabelledStructure]:
    examples = []
    for index, atoms in enumerate(frames):
        where = f"{path} frame {index}"
        calc = atoms.calc
        if calc is None or "energy" not in calc.results:
            raise DataError(f"{where} has no energy; every frame needs a single-point energy in eV")
        forces = calc.results.get("forces")
        stress = calc.results.get("stress")
        examples.append(
            LabelledStructure(
                structure=AseAtomsAdaptor.get_structure(atoms),
                energy=float(calc.results["energy"]),
                forces=None if forces is None else np.asarray(forces, dtype=float),
                stress=None if stress is None else _stress_matrix(stress, where),
            )
        )
    return examples


def _structure_from_dict(data: Any, where: str) -> Structure:
    """A Structure from pymatgen's ``Structure.as_dict()`` layout, reading only the lattice, the
    element of each site and its fractional coordinates. Unlike ``Structure.from_dict`` it never
    decodes site properties, so an ``"@module"`` entry in the file cannot import a module."""
    try:
        lattice = data["lattice"]
        matrix = lattice.get("matrix")
        if matrix is None:
            params = [float(lattice[k]) for k in ("a", "b", "c", "alpha", "beta", "gamma")]
            matrix = Lattice.from_parameters(*params).matrix
        species, coords = [], []
        for site in data["sites"]:
            occupancy = site["species"]
            if len(occupancy) != 1 or float(occupancy[0].get("occu", 1.0)) != 1.0:
                raise DataError(f"{where}: a site is partly occupied; only ordered structures train")
            species.append(str(occupancy[0]["element"]))
            coords.append([float(x) for x in site["abc"]])
        return Structure(np.asarray(matrix, dtype=float), species, coords)
    except DataError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(
            f"{where}: 'structure' is not a pymatgen Structure.as_dict() ({type(exc).__name__}: {exc})"
        ) from None


def _weight(value: Any, where: str) -> float:
    try:
        weight = float(value)
    except (TypeError, ValueError):
        weight = math.nan
    if not (math.isfinite(weight) and weight >= 0):
        raise DataError(f"{where}: weight must be a number >= 0, got {value!r}")
    return weight


def _read_pymatgen_json(path: Path) -> list[LabelledStructure]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as handle:
        records = json.load(handle)
    if not isinstance(records, list):
        raise DataError(f"{path} must hold a JSON list of {{structure, energy, forces, stress}} records")
    examples = []
    for index, record in enumerate(records):
        where = f"{path} record {index}"
        if not isinstance(record, dict) or "structure" not in record or "energy" not in record:
            raise DataError(f"{where} needs at least the keys 'structure' and 'energy'")
        forces = record.get("forces")
        stress = record.get("stress")
        examples.append(
            LabelledStructure(
                structure=_structure_from_dict(record["structure"], where),
                energy=None if record["energy"] is None else float(record["energy"]),
                forces=None if forces is None else np.asarray(forces, dtype=float),
                stress=None if stress is None else _stress_matrix(stress, where) / EV_PER_A3_IN_GPA,
                weight=_weight(record.get("weight", 1.0), where),
            )
        )
    return examples


def read_dataset(path: str | Path) -> list[LabelledStructure]:
    """Labelled structures from an ASE db, an extxyz file or a pymatgen JSON list (see module)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"dataset file {path} does not exist")
    name = path.name.lower()
    if name.endswith(".db"):
        from ase.db import connect

        with connect(path) as database:
            frames = [row.toatoms() for row in database.select()]
        examples = _from_ase_frames(frames, path)
    elif name.endswith((".extxyz", ".xyz")):
        from ase.io import read

        examples = _from_ase_frames(read(path, index=":"), path)
    elif name.endswith((".json", ".json.gz")):
        examples = _read_pymatgen_json(path)
    else:
        raise DataError(f"unknown dataset type {path.name!r}; use .db, .extxyz, .xyz, .json or .json.gz")
    if not examples:
        raise DataError(f"dataset {path} holds no structures")
    for index, example in enumerate(examples):
        n = len(example.structure)
        if example.forces is not None and example.forces.shape != (n, 3):
            raise DataError(
                f"{path} entry {index}: forces have shape {example.forces.shape}, expected ({n}, 3)"
            )
    return examples


@dataclass
class FinetuneResult:
    """What ``finetune`` did. Metrics: MAE of energy (eV/atom), forces (eV/Å), stress (GPa)."""

    history: list[dict[str, float]]
    initial_validation: dict[str, float]
    final_train: dict[str, float]
    final_validation: dict[str, float]
    atom_ref_shift: dict[str, float] = field(default_factory=dict)  # eV per element; {} when kept
    atom_ref_refit: bool = False
    structures_per_element: dict[str, int] = field(default_factory=dict)  # energy-fitted training structures
    trained_parameters: int = 0
    frozen_features: bool = False
    seconds: float = 0.0


def trainable_names(model: MLIPModel, train_layers: Sequence[str]) -> list[str]:
    """Names of the parameters under ``train_layers``; unknown layer names raise ModelError."""
    modules = {name for name, _ in model.named_modules() if name}
    unknown = [layer for layer in train_layers if layer not in modules]
    if unknown:
        top = ", ".join(sorted({name.split(".")[0] for name in modules}))
        blocks = sorted(name for name in modules if name.count(".") == 1 and name.split(".")[1].isdigit())
        example = f" (or a numbered block, e.g. {blocks[-1]})" if blocks else ""
        raise ModelError(
            f"unknown layer {unknown[0]!r} in train_layers; use module names such as {top}{example}"
        )
    prefixes = tuple(f"{layer}." for layer in train_layers)
    return [name for name, _ in model.named_parameters() if name.startswith(prefixes)]


def _chunks(indices: Sequence[int], size: int) -> list[list[int]]:
    return [list(indices[start : start + size]) for start in range(0, len(indices), size)]


@dataclass
class _Labels:
    """Label tensors of one batch (energy [B] eV; forces [N, 3] eV/Å; stress [B, 3, 3] eV/Å³)."""

    energy: torch.Tensor
    has_energy: torch.Tensor
    n_atoms: torch.Tensor
    forces: torch.Tensor
    has_forces: torch.Tensor
    stress: torch.Tensor
    has_stress: torch.Tensor
    weight: torch.Tensor  # [B] per example
    batch: torch.Tensor  # [N] example of each atom


def _labels(examples: Sequence[LabelledStructure], device: torch.device, dtype: torch.dtype) -> _Labels:
    def tensor(values: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(values), dtype=dtype, device=device)

    forces = [e.forces if e.forces is not None else np.zeros((len(e.structure), 3)) for e in examples]
    has_forces = [e.forces is not None for e in examples for _ in range(len(e.structure))]
    stress = [e.stress if e.stress is not None else np.zeros((3, 3)) for e in examples]
    return _Labels(
        energy=tensor([math.nan if e.energy is None else e.energy for e in examples]),
        has_energy=torch.as_tensor([e.energy is not None for e in examples], device=device),
        n_atoms=tensor([len(e.structure) for e in examples]),
        forces=tensor(np.concatenate(forces)),
        has_forces=torch.as_tensor(has_forces, device=device),
        stress=tensor(np.stack(stress)),
        has_stress=torch.as_tensor([e.stress is not None for e in examples], device=device),
        weight=tensor([e.weight for e in examples]),
        batch=torch.repeat_interleave(
            torch.arange(len(examples), device=device),
            torch.as_tensor([len(e.structure) for e in examples], device=device),
        ),
    )


def _masked_mse(error: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean over the rows where `mask` [R] is set of weight × error² (`weight` [R] per row; the
    components of a row are averaged)."""
    if not bool(mask.any()):
        return error.new_zeros(())
    squared = (error[mask] ** 2).flatten(start_dim=1).mean(dim=1) if error.dim() > 1 else error[mask] ** 2
    return (weight[mask] * squared).mean()


def _loss(out: dict[str, torch.Tensor], labels: _Labels, settings: FinetuneSettings) -> torch.Tensor:
    energy_error = (out["energy"] - labels.energy) / labels.n_atoms
    loss = settings.energy_weight * _masked_mse(energy_error, labels.has_energy, labels.weight)
    if settings.force_weight > 0:
        error = out["forces"] - labels.forces
        loss = loss + settings.force_weight * _masked_mse(
            error, labels.has_forces, labels.weight[labels.batch]
        )
    if settings.stress_weight > 0:
        error = (out["stress_ev_per_a3"] - labels.stress) * EV_PER_A3_IN_GPA
        loss = loss + settings.stress_weight * _masked_mse(error, labels.has_stress, labels.weight)
    return loss


@dataclass(frozen=True)
class FixedCoulomb:
    """The geometry part of the Latent Ewald energy for fixed positions: the pair matrix
    [B, n, n] (eV/e²) and each atom's slot, so that a fit with frozen geometry only recomputes
    the latent charges."""

    matrix: torch.Tensor
    slots: torch.Tensor

    @classmethod
    def of(cls, head: object, state: BatchedState) -> FixedCoulomb | None:
        """Precomputed for a Latent Ewald head, None for any other (or no) head."""
        if not isinstance(head, LatentEwaldHead):
            return None
        matrix, slots = coulomb_matrix(
            state.positions,
            state.cell,
            state.batch,
            state.pbc,
            head.sigma,
            head.dl,
            remove_self_interaction=True,
        )
        return cls(matrix, slots)

    def energy(self, head: LatentEwaldHead, features: torch.Tensor, state: BatchedState) -> torch.Tensor:
        """[B] eV: ½ qᵀ C q with the head's charges of `features`."""
        charges = head.charges(features, state.batch, state.n_systems)
        padded = pad_atoms(charges, state.batch, self.slots, state.n_systems, self.matrix.shape[1])
        return 0.5 * torch.einsum("bi,bij,bj->b", padded, self.matrix, padded)


class FrozenFeatureBatch:
    """A batch whose final atom features are computed once (backbone below the readout frozen)."""

    def __init__(self, model: MLIPModel, state: BatchedState) -> None:
        with torch.no_grad():
            self.reference_energy = model.compute(state, forces=False, stress=False)["energy"]
            self.features = model.features(state.positions, state.cell, state, model.neighbors(state)).atoms
        self.state = state
        self.coulomb = FixedCoulomb.of(model.long_range, state)

    def energy(self, model: MLIPModel) -> torch.Tensor:
        """[B] eV: Σ_i readout(f_i) + AtomRef(Z_i) + long-range energy, from the cached features."""
        state = self.state
        energy = model.readout_energy(self.features, state)
        head = model.long_range
        if head is None:
            return energy
        if self.coulomb is not None:
            return energy + self.coulomb.energy(head, self.features, state)
        long_range, _ = head(
            self.features,
            state.positions,
            state.cell,
            state.batch,
            state.pbc,
            atomic_numbers=state.atomic_numbers,
        )
        return energy + long_range


def _state(model: MLIPModel, examples: Sequence[LabelledStructure]) -> BatchedState:
    return BatchedState.from_structures(
        [e.structure for e in examples], device=model.device, dtype=model.dtype
    )


def predict_energies(
    model: MLIPModel, dataset: Sequence[LabelledStructure], batch_size: int = 16
) -> np.ndarray:
    """[len(dataset)] model energies in eV per cell (no forces or stress)."""
    energies = []
    with torch.no_grad():
        for chunk in _chunks(range(len(dataset)), batch_size):
            state = _state(model, [dataset[i] for i in chunk])
            energies.append(model.compute(state, forces=False, stress=False)["energy"].cpu().double())
    return torch.cat(energies).numpy()


def _energy_rows(dataset: Sequence[LabelledStructure]) -> list[int]:
    """Indices of the examples whose energy is fitted (labelled, weight above zero)."""
    return [k for k, e in enumerate(dataset) if e.energy is not None and e.weight > 0]


def refit_atom_ref(
    model: MLIPModel, dataset: Sequence[LabelledStructure], predicted: np.ndarray
) -> dict[str, float]:
    """Shift AtomRef (eV) of the elements in ``dataset`` by the least-squares fit of the error.

    ``predicted`` [len(dataset)] are the model's energies (eV). Returns the shift per element.
    Only examples with an energy label and a positive weight count, each with its weight.
    Rank-deficient compositions (e.g. all structures 1:1 NaCl) get the minimum-norm solution.
    """
    rows = _energy_rows(dataset)
    numbers = sorted({z for k in rows for z in dataset[k].structure.atomic_numbers})
    column = {z: k for k, z in enumerate(numbers)}
    counts = np.zeros((len(rows), len(numbers)))
    for row, k in enumerate(rows):
        for z in dataset[k].structure.atomic_numbers:
            counts[row, column[z]] += 1
    residual = np.array([dataset[k].energy for k in rows]) - predicted[rows]
    scale = np.sqrt([dataset[k].weight for k in rows])
    shift, *_ = np.linalg.lstsq(counts * scale[:, None], residual * scale, rcond=None)
    with torch.no_grad():
        index = torch.as_tensor(numbers, device=model.device) - 1
        model.atom_ref[index] += torch.as_tensor(shift, dtype=model.dtype, device=model.device)
    return {Element.from_Z(z).symbol: float(s) for z, s in zip(numbers, shift, strict=True)}


def evaluate(
    model: MLIPModel, dataset: Sequence[LabelledStructure], batch_size: int = 16
) -> dict[str, float]:
    """MAE of energy (eV/atom), forces (eV/Å) and stress (GPa), each over the examples that carry
    that label (unweighted); a label no example carries has no entry."""
    energy_errors, force_errors, stress_errors = [], [], []
    for chunk in _chunks(range(len(dataset)), batch_size):
        examples = [dataset[i] for i in chunk]
        labels = _labels(examples, model.device, model.dtype)
        want_forces = bool(labels.has_forces.any())
        want_stress = bool(labels.has_stress.any())
        out = model.compute(_state(model, examples), forces=want_forces, stress=want_stress)
        energy_errors.append(((out["energy"] - labels.energy) / labels.n_atoms)[labels.has_energy].abs())
        if want_forces:
            force_errors.append((out["forces"] - labels.forces)[labels.has_forces].abs().flatten())
        if want_stress:
            error = (out["stress_ev_per_a3"] - labels.stress)[labels.has_stress] * EV_PER_A3_IN_GPA
            stress_errors.append(error.abs().flatten())
    metrics = {}
    energy_errors = torch.cat(energy_errors)
    if energy_errors.numel():
        metrics["energy_mae_ev_per_atom"] = float(energy_errors.mean())
    if force_errors:
        metrics["forces_mae_ev_per_a"] = float(torch.cat(force_errors).mean())
    if stress_errors:
        metrics["stress_mae_gpa"] = float(torch.cat(stress_errors).mean())
    return metrics


def _set_trainable(model: MLIPModel, names: set[str]) -> dict[str, bool]:
    previous = {}
    for name, parameter in model.named_parameters():
        previous[name] = parameter.requires_grad
        parameter.requires_grad_(name in names)
    return previous


def finetune(
    model: MLIPModel,
    dataset: Sequence[LabelledStructure],
    settings: FinetuneSettings | None = None,
    validation: Sequence[LabelledStructure] = (),
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> FinetuneResult:
    """Fit ``settings.train_layers`` of ``model`` (in place) to ``dataset`` (see module docstring).

    A long-range head that is still zero-initialised gets small random charge weights first (the
    energy is quadratic in the charges, so training could not start from zero). ``validation`` is
    evaluated before and after training and its energy MAE logged every epoch. ``on_epoch`` gets
    each epoch's record (epoch, train_loss, validation MAEs) as soon as the epoch ends.
    """
    settings = settings or FinetuneSettings()
    dataset = [example for example in dataset if example.weight > 0]  # weight 0: not trained on
    if not dataset:
        raise DataError("the training set is empty (or every example has weight 0)")
    start = time.perf_counter()
    layers = settings.train_layers
    names = trainable_names(model, layers)
    if not names:
        raise ModelError(f"train_layers {list(settings.train_layers)} select no parameters")
    generator = torch.Generator().manual_seed(settings.seed)
    head = model.long_range
    if head is not None and LONG_RANGE in layers and hasattr(head, "prepare_for_training"):
        head.prepare_for_training(generator=generator)

    frozen = not settings.fits_gradients and all(
        name.startswith(tuple(f"{layer}." for layer in FROZEN_FEATURE_LAYERS)) for name in names
    )
    initial_validation = evaluate(model, validation, settings.batch_size) if validation else {}
    rng = np.random.default_rng(settings.seed)
    order = rng.permutation(len(dataset))
    batches = _chunks(order.tolist(), settings.batch_size)

    cached: list[FrozenFeatureBatch] = []
    if frozen:
        cached = [FrozenFeatureBatch(model, _state(model, [dataset[i] for i in b])) for b in batches]
        _check_frozen_energy(model, cached[0])
    shift: dict[str, float] = {}
    structures = [dataset[k].structure for k in _energy_rows(dataset)]
    refit = (
        settings.refit_atom_ref
        and bool(structures)
        and may_refit_atom_ref(structures, settings.atom_ref_min_structures)
    )
    if refit:
        if frozen:
            predicted = np.empty(len(dataset))
            with torch.no_grad():
                for batch, feature_batch in zip(batches, cached, strict=True):
                    predicted[batch] = feature_batch.energy(model).cpu().double().numpy()
        else:
            predicted = predict_energies(model, dataset, settings.batch_size)
        shift = refit_atom_ref(model, dataset, predicted)

    previous = _set_trainable(model, set(names))
    parameters = [p for name, p in model.named_parameters() if name in set(names)]
    optimizer = torch.optim.Adam(parameters, lr=settings.lr)
    total_steps = settings.epochs * len(batches)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / total_steps))
    )
    labels = [_labels([dataset[i] for i in b], model.device, model.dtype) for b in batches]
    step_loss = _frozen_step(model, cached) if frozen else _full_step(model, dataset, batches, settings)
    history = []
    try:
        for epoch in range(settings.epochs):
            epoch_loss = 0.0
            for k in rng.permutation(len(batches)).tolist():
                optimizer.zero_grad()
                loss = _loss(step_loss(k), labels[k], settings)
                if loss.requires_grad:  # a batch without any fitted label has nothing to learn
                    loss.backward()
                    optimizer.step()
                scheduler.step()
                epoch_loss += float(loss.detach()) / len(batches)
            record = {"epoch": float(epoch + 1), "train_loss": epoch_loss}
            if validation:
                metrics = evaluate(model, validation, settings.batch_size)
                record.update({f"validation_{key}": value for key, value in metrics.items()})
            history.append(record)
            logger.info("fine-tuning epoch %d: %s", epoch + 1, record)
            if on_epoch is not None:
                on_epoch(record)
    finally:
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(previous[name])
    if frozen:
        with torch.no_grad():
            errors = [
                ((batch.energy(model) - label.energy) / label.n_atoms)[label.has_energy].abs()
                for batch, label in zip(cached, labels, strict=True)
            ]
        errors = torch.cat(errors)
        final_train = {"energy_mae_ev_per_atom": float(errors.mean())} if errors.numel() else {}
    else:
        final_train = evaluate(model, dataset, settings.batch_size)
    return FinetuneResult(
        history=history,
        initial_validation=initial_validation,
        final_train=final_train,
        final_validation=evaluate(model, validation, settings.batch_size) if validation else {},
        atom_ref_shift=shift,
        atom_ref_refit=refit,
        structures_per_element=structures_per_element(structures),
        trained_parameters=sum(p.numel() for p in parameters),
        frozen_features=frozen,
        seconds=time.perf_counter() - start,
    )


def _check_frozen_energy(model: MLIPModel, batch: FrozenFeatureBatch) -> None:
    """The rebuilt energy must equal the model's own, else the frozen-feature path is invalid."""
    with torch.no_grad():
        rebuilt = batch.energy(model)
    tolerance = 1e-4 * (1 + batch.reference_energy.abs())
    if ((rebuilt - batch.reference_energy).abs() > tolerance).any():
        raise RuntimeError(
            "energies rebuilt from cached atom features differ from MLIPModel.compute; the model's "
            "energy is no longer readout + AtomRef + long-range head"
        )


def _frozen_step(
    model: MLIPModel, cached: list[FrozenFeatureBatch]
) -> Callable[[int], dict[str, torch.Tensor]]:
    return lambda k: {"energy": cached[k].energy(model)}


def _full_step(
    model: MLIPModel,
    dataset: Sequence[LabelledStructure],
    batches: list[list[int]],
    settings: FinetuneSettings,
) -> Callable[[int], dict[str, torch.Tensor]]:
    states = [_state(model, [dataset[i] for i in batch]) for batch in batches]
    forces, stress = settings.force_weight > 0, settings.stress_weight > 0
    return lambda k: model.compute(states[k], forces=forces, stress=stress, create_graph=True)


def split_dataset(
    dataset: Sequence[LabelledStructure], validation_fraction: float, seed: int
) -> tuple[list[LabelledStructure], list[LabelledStructure]]:
    """Random (seeded) train/validation split; a fraction > 0 keeps at least one of each."""
    if not 0 <= validation_fraction < 1:
        raise MatsearchError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    n_validation = round(validation_fraction * len(dataset))
    if validation_fraction > 0:
        n_validation = max(1, n_validation)
    if n_validation >= len(dataset):
        raise DataError(
            f"{len(dataset)} structures leave none for training with validation_fraction="
            f"{validation_fraction}"
        )
    order = np.random.default_rng(seed).permutation(len(dataset))
    validation = [dataset[i] for i in order[:n_validation]]
    return [dataset[i] for i in order[n_validation:]], validation


def finetune_cli(
    data: Path | Sequence[LabelledStructure],
    out: Path,
    settings: FinetuneSettings | None = None,
    *,
    base: str = "default",
    les: bool = False,
    sigma: float = 1.0,
    dl: float = 2.0,
    validation_fraction: float = 0.1,
    device: str | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """Fine-tune model ``base`` on the labelled structures in ``data`` (a dataset file, or the
    examples themselves, described by ``source``) with ``settings`` (None: ``FinetuneSettings()``)
    and save it to ``out``.

    ``validation_fraction`` of the data, drawn with ``settings.seed``, is held out. With ``les`` a
    Latent Ewald head (sigma, dl in Å) is attached when the base model has none, and trained
    together with ``settings.train_layers``. Returns a JSON-friendly summary: sizes, metrics before
    and after (energy eV/atom, forces eV/Å, stress GPa), whether AtomRef was refitted (every element
    in at least ``settings.atom_ref_min_structures`` training structures) and its shifts (eV),
    training structures per element, seconds, output path. ``on_epoch`` gets each epoch's record.
    The saved file loads with ``matsearch.mlip.load_model(str(out))``.
    """
    settings = FinetuneSettings() if settings is None else settings
    dataset = read_dataset(data) if isinstance(data, str | Path) else list(data)
    source = source or str(data)
    train, validation = split_dataset(dataset, validation_fraction, settings.seed)
    model = load_model(base, device=device)
    if les:
        if model.long_range is None:
            attach_long_range_head(model, "les", sigma=sigma, dl=dl)
        if LONG_RANGE not in settings.train_layers:
            settings = replace(settings, train_layers=(*settings.train_layers, LONG_RANGE))
    result = finetune(model, train, settings, validation, on_epoch=on_epoch)
    model.info = ModelInfo(name=Path(out).stem, source=f"fine-tuned from {base} on {source}")
    path = model.save(out)
    return {
        "model_path": str(path),
        "base": base,
        "n_train": len(train),
        "n_validation": len(validation),
        "epochs": settings.epochs,
        "train_layers": list(settings.train_layers),
        "long_range": None if model.long_range is None else dict(model.long_range.config),
        "frozen_features": result.frozen_features,
        "trained_parameters": result.trained_parameters,
        "atom_ref_refit": result.atom_ref_refit,
        "atom_ref_min_structures": settings.atom_ref_min_structures,
        "structures_per_element": result.structures_per_element,
        "atom_ref_shift_ev": result.atom_ref_shift,
        "initial_validation": result.initial_validation,
        "final_validation": result.final_validation,
        "final_train": result.final_train,
        "seconds": result.seconds,
    }
