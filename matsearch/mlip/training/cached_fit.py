"""Energy fitting on cached atom features: readout, long-range head and elemental references.

The backbone below the last atom convolution stays frozen, so each structure's inputs to that
block (atom features, bond features and weights, edges) are computed once (``LastConvInputs``)
and every epoch only re-evaluates the last convolution, the readout and the heads:
E = Σ_i [readout(LN(conv(…))_i) + AtomRef(Z_i) + δ(Z_i)] + pair correction + long-range energy.
That makes tens of epochs over tens of thousands of structures affordable on one CPU thread, and
the last convolution (messages along every bond) can change how the energy depends on distance.

Labels are energies in eV per cell, either absolute (``group`` None: on the scale of the model's
AtomRef, e.g. MP-compatible total energies) or known only up to a constant per atom within a group
(``group`` set: e.g. one DFT code's set of one element, or strained copies of one crystal). Group
members are packed into the same batch and their per-atom residuals are centred on the group mean
there, so only energy differences are fitted. Group members with a ``coordinate`` x are also
detrended: r_i = c + b (x_i − x̄) + r⊥_i, and r_i is replaced by r⊥_i + √α b (x_i − x̄) with
α = ``slope_weight``; for strained copies that fits the curvature of E(V) and only weakly its slope
(the pressure at the DFT volume). Loss per batch: Σ w_i r_i² / Σ w_i with r_i the (centred,
detrended) per-atom energy residual in eV/atom, quadratic below ``huber_delta`` and linear above
(Huber), so that a few badly described structures do not dominate. Adam, cosine learning rate,
early stopping on the same loss over a validation set; the best parameters are restored at the end.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from pymatgen.core import Structure

from matsearch.errors import DataError
from matsearch.mlip.backbones.chgnet.model import ChgnetModel
from matsearch.mlip.heads.pair import PairCorrection, species_pairs
from matsearch.mlip.state import BatchedState
from matsearch.mlip.training.finetune import FixedCoulomb, refit_atom_ref, trainable_names

logger = logging.getLogger(__name__)


@dataclass
class EnergyExample:
    """A structure with an energy label (eV per cell), an optional group and a loss weight.

    ``coordinate`` (e.g. the volume strain of a strained copy) makes the group's labels known up
    to a constant *and a linear term* in it: the residuals are detrended along it (see module).
    """

    structure: Structure
    energy: float
    group: str | None = None
    weight: float = 1.0
    coordinate: float | None = None


@dataclass(frozen=True)
class CachedFitSettings:
    """Hyper-parameters of :func:`fit_cached` (learning rates per parameter set; sizes in atoms)."""

    max_epochs: int = 100
    patience: int = 8
    lr: float = 3e-4
    head_lr: float = 1e-3
    pair_lr: float = 1e-3
    atom_ref_lr: float = 3e-4
    train_layers: tuple[str, ...] = ("readout", "long_range", "pair_correction")
    fit_atom_ref: bool = True
    max_batch_atoms: int = 768
    max_batch_structures: int = 64
    group_chunk: int = 8
    seed: int = 0
    max_seconds: float = math.inf
    slope_weight: float = 0.1
    huber_delta: float = 0.02


class LastConvInputs:
    """A batch's inputs to the model's last atom convolution, computed once (no grad), plus the
    Coulomb matrix of its long-range head, which depend on the geometry only."""

    def __init__(self, model: ChgnetModel, state: BatchedState) -> None:
        captured: list[tuple[torch.Tensor, ...]] = []
        hook = model.atom_convs[-1].register_forward_pre_hook(
            lambda _module, args: captured.append(tuple(a.detach() for a in args))
        )
        try:
            with torch.no_grad():
                self.reference_energy = model.compute(state, forces=False, stress=False)["energy"]
        finally:
            hook.remove()
        self.conv_inputs = captured[-1]
        self.state = state
        self.coulomb = FixedCoulomb.of(model.long_range, state)

    def energy(self, model: ChgnetModel) -> torch.Tensor:
        """[B] eV: Σ_i readout + AtomRef, plus the long-range energy (no pair correction)."""
        state = self.state
        features = model.readout_norm(model.atom_convs[-1](*self.conv_inputs))
        energy = model.readout_energy(features, state)
        head = model.long_range
        if head is None:
            return energy
        if self.coulomb is None:
            raise ValueError("the long-range head was attached after caching; cache the batches again")
        return energy + self.coulomb.energy(head, features, state)


@dataclass
class CachedBatch:
    """Cached inputs of a batch with its labels: energy [B] eV, atoms [B], weight [B], group [B]."""

    features: LastConvInputs
    indices: list[int]
    energy: torch.Tensor
    n_atoms: torch.Tensor
    weight: torch.Tensor
    group: torch.Tensor  # local group index, −1 for an absolute label
    coordinate: torch.Tensor  # detrending coordinate, NaN where none
    pair: tuple[torch.Tensor, ...] | None = None  # species pairs, bond index, basis, bond system


@dataclass
class CachedFitResult:
    """History per epoch, best epoch and validation loss, AtomRef shifts (eV), wall time (s)."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_validation_loss: float = math.inf
    atom_ref_shift: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def _units(examples: Sequence[EnergyExample], chunk: int, rng: np.random.Generator) -> list[list[int]]:
    """Indices in packing units: singletons, or up to ``chunk`` members of one group (at least 2)."""
    groups: dict[str, list[int]] = {}
    units: list[list[int]] = []
    for index, example in enumerate(examples):
        if example.group is None:
            units.append([index])
        else:
            groups.setdefault(example.group, []).append(index)
    for members in groups.values():
        members = [members[i] for i in rng.permutation(len(members))]
        pieces = [members[start : start + chunk] for start in range(0, len(members), chunk)]
        if len(pieces) > 1 and len(pieces[-1]) < 2:
            pieces[-2].extend(pieces.pop())
        units.extend(pieces)
    return units


def pack_batches(
    examples: Sequence[EnergyExample],
    max_atoms: int,
    max_structures: int,
    group_chunk: int = 8,
    seed: int = 0,
) -> list[list[int]]:
    """Batches of example indices; a group's chunk is never split. Seeded shuffle of the units."""
    rng = np.random.default_rng(seed)
    units = _units(examples, group_chunk, rng)
    batches: list[list[int]] = []
    current: list[int] = []
    atoms = 0
    for k in rng.permutation(len(units)).tolist():
        unit = units[k]
        size = sum(len(examples[i].structure) for i in unit)
        if current and (atoms + size > max_atoms or len(current) + len(unit) > max_structures):
            batches.append(current)
            current, atoms = [], 0
        current.extend(unit)
        atoms += size
    if current:
        batches.append(current)
    return batches


def cache_batches(
    model: ChgnetModel,
    examples: Sequence[EnergyExample],
    batches: Sequence[Sequence[int]],
    log_every: int = 50,
) -> list[CachedBatch]:
    """Run the frozen backbone once per batch (no grad); keep features and labels."""
    cached = []
    started = time.perf_counter()
    for k, batch in enumerate(batches):
        chosen = [examples[i] for i in batch]
        state = BatchedState.from_structures(
            [e.structure for e in chosen], device=model.device, dtype=model.dtype
        )
        names: dict[str, int] = {}
        group = [-1 if e.group is None else names.setdefault(e.group, len(names)) for e in chosen]

        def tensor(values: list[float]) -> torch.Tensor:
            return torch.as_tensor(values, dtype=model.dtype, device=model.device)

        cached.append(
            CachedBatch(
                features=LastConvInputs(model, state),
                pair=_pair_inputs(model, state),
                indices=list(batch),
                energy=tensor([e.energy for e in chosen]),
                n_atoms=tensor([float(len(e.structure)) for e in chosen]),
                weight=tensor([e.weight for e in chosen]),
                group=torch.as_tensor(group, device=model.device),
                coordinate=tensor([math.nan if e.coordinate is None else e.coordinate for e in chosen]),
            )
        )
        if k == 0:
            _check_rebuilt_energy(model, cached[0])
        if log_every and (k + 1) % log_every == 0:
            logger.info("cached %d/%d batches (%.0f s)", k + 1, len(batches), time.perf_counter() - started)
    return cached


def _check_rebuilt_energy(model: ChgnetModel, batch: CachedBatch) -> None:
    """Energies rebuilt from the cache must equal ``ChgnetModel.compute``'s, else caching is invalid."""
    with torch.no_grad():
        rebuilt = _energies(model, batch, None)
    reference = batch.features.reference_energy
    if ((rebuilt - reference).abs() > 1e-4 * (1 + reference.abs())).any():
        raise RuntimeError(
            "energies rebuilt from the cached last-convolution inputs differ from ChgnetModel.compute; "
            "the model's energy is no longer conv → readout + AtomRef + pair + long-range head"
        )


def _pair_inputs(model: ChgnetModel, state: BatchedState) -> tuple[torch.Tensor, ...] | None:
    """Bond inputs of the model's pair correction, which are fixed while the geometry is."""
    pair = model.pair_correction
    if not isinstance(pair, PairCorrection):
        return None
    graph = model.neighbors(state)
    i, j = graph.bond_atoms[0], graph.bond_atoms[1]
    shifts = torch.einsum("uk,ukl->ul", graph.bond_images, state.cell[graph.bond_system])
    lengths = torch.linalg.vector_norm(state.positions[j] - state.positions[i] + shifts, dim=1)
    z = state.atomic_numbers
    unique, inverse = species_pairs(z[i], z[j])
    with torch.no_grad():
        basis = pair.basis(lengths)
    return unique, inverse, basis, graph.bond_system


def _energies(model: ChgnetModel, batch: CachedBatch, delta: torch.Tensor | None) -> torch.Tensor:
    """[B] eV from cached features (+ pair correction, + per-element AtomRef shift ``delta`` [94] eV)."""
    energy = batch.features.energy(model)
    if batch.pair is not None and isinstance(model.pair_correction, PairCorrection):
        unique, inverse, basis, bond_system = batch.pair
        energy = energy + model.pair_correction.energy_from_basis(
            unique, inverse, basis, bond_system, batch.features.state.n_systems
        )
    if delta is not None:
        state = batch.features.state
        shift = delta[state.atomic_numbers - 1]
        energy = energy + energy.new_zeros(state.n_systems).index_add(0, state.batch, shift)
    return energy


def _group_mean(values: torch.Tensor, index: torch.Tensor, n_groups: int) -> torch.Tensor:
    counts = torch.zeros(n_groups, dtype=values.dtype, device=values.device).index_add(
        0, index, torch.ones_like(values)
    )
    sums = torch.zeros(n_groups, dtype=values.dtype, device=values.device).index_add(0, index, values)
    return (sums / counts)[index]


def residuals(
    batch: CachedBatch, energy: torch.Tensor, slope_weight: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-atom residuals [B] eV/atom (group members centred on their batch mean, and detrended
    along their coordinate, see module), and a mask of the rows that carry information (absolute
    rows, and group rows with at least 2 members, 3 when detrended)."""
    residual = (energy - batch.energy) / batch.n_atoms
    grouped = batch.group >= 0
    if not bool(grouped.any()):
        return residual, ~grouped
    index = batch.group[grouped]
    n_groups = int(index.max()) + 1
    r = residual[grouped]
    ones = torch.ones_like(r)
    count = torch.zeros(n_groups, dtype=r.dtype, device=r.device).index_add(0, index, ones)[index]
    r = r - _group_mean(r, index, n_groups)
    x = batch.coordinate[grouped]
    has_x = ~torch.isnan(x)
    minimum = torch.where(has_x, 3.0, 2.0)
    if bool(has_x.any()):
        x = torch.where(has_x, x, torch.zeros_like(x))
        dx = x - _group_mean(x, index, n_groups)
        sxx = _group_mean(dx * dx, index, n_groups)
        sxr = _group_mean(dx * r, index, n_groups)
        slope = torch.where(sxx > 0, sxr / sxx.clamp_min(1e-30), torch.zeros_like(sxx))
        trend = slope * dx
        r = torch.where(has_x, r - trend + math.sqrt(slope_weight) * trend, r)
    residual = residual.clone()
    residual[grouped] = r
    informative = (~grouped).clone()
    informative[grouped] = count >= minimum
    return residual, informative


def batch_loss(
    batch: CachedBatch, energy: torch.Tensor, slope_weight: float = 0.0, huber_delta: float = math.inf
) -> tuple[torch.Tensor, float]:
    """Weighted mean of r² (|r| < δ) or 2δ|r| − δ² (Huber, r and δ in eV/atom), and its weight."""
    residual, informative = residuals(batch, energy, slope_weight)
    weight = batch.weight * informative.to(batch.weight.dtype)
    total = float(weight.sum())
    if total == 0:
        return energy.new_zeros(()), 0.0
    if math.isfinite(huber_delta):
        per_row = 2.0 * torch.nn.functional.huber_loss(
            residual, torch.zeros_like(residual), reduction="none", delta=huber_delta
        )
    else:
        per_row = residual**2
    return (weight * per_row).sum() / weight.sum(), total


def predict_cached(
    model: ChgnetModel, batches: Sequence[CachedBatch], n_examples: int, delta: torch.Tensor | None = None
) -> np.ndarray:
    """[n_examples] energies (eV per cell) from cached features, in the original example order."""
    out = np.full(n_examples, np.nan)
    with torch.no_grad():
        for batch in batches:
            out[batch.indices] = _energies(model, batch, delta).cpu().double().numpy()
    return out


def validation_loss(
    model: ChgnetModel,
    batches: Sequence[CachedBatch],
    delta: torch.Tensor | None,
    slope_weight: float = 0.0,
    huber_delta: float = math.inf,
) -> float:
    """Weighted mean of the batch losses over ``batches`` ((eV/atom)²)."""
    total, weights = 0.0, 0.0
    with torch.no_grad():
        for batch in batches:
            loss, weight = batch_loss(batch, _energies(model, batch, delta), slope_weight, huber_delta)
            total += float(loss) * weight
            weights += weight
    return total / weights if weights else math.nan


def refit_references(
    model: ChgnetModel, examples: Sequence[EnergyExample], batches: Sequence[CachedBatch]
) -> dict[str, float]:
    """Least-squares AtomRef refit (eV per element) on the absolute examples, from cached energies."""
    predicted = predict_cached(model, batches, len(examples))
    absolute = [i for i, e in enumerate(examples) if e.group is None]
    if not absolute:
        raise DataError("AtomRef refit needs examples with absolute energies (group None)")
    from matsearch.mlip.training.finetune import LabelledStructure

    dataset = [LabelledStructure(examples[i].structure, examples[i].energy) for i in absolute]
    return refit_atom_ref(model, dataset, predicted[absolute])


def fit_cached(
    model: ChgnetModel,
    train: Sequence[CachedBatch],
    validation: Sequence[CachedBatch],
    settings: CachedFitSettings,
    on_improve: Callable[[ChgnetModel, dict[str, float]], None] | None = None,
    epoch_metrics: Callable[[ChgnetModel], dict[str, float]] | None = None,
) -> CachedFitResult:
    """Fit ``settings.train_layers`` (+ an AtomRef shift) on cached batches, in place.

    After each epoch the validation loss is computed; an improvement calls ``on_improve(model,
    record)`` with the AtomRef shift already folded into ``model.atom_ref`` (so the model can be
    saved as it is). Stops after ``patience`` epochs without improvement, ``max_epochs`` or
    ``max_seconds``, and leaves the model at its best validation epoch.
    """
    if not train or not validation:
        raise DataError("fit_cached needs non-empty training and validation batches")
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    names = set(trainable_names(model, settings.train_layers))
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in names)
    head_names = {n for n in names if n.startswith("long_range.")}
    pair_names = {n for n in names if n.startswith("pair_correction.")}
    rest = names - head_names - pair_names
    groups = [
        {"params": [p for n, p in model.named_parameters() if n in rest], "lr": settings.lr},
        {"params": [p for n, p in model.named_parameters() if n in head_names], "lr": settings.head_lr},
        {"params": [p for n, p in model.named_parameters() if n in pair_names], "lr": settings.pair_lr},
    ]
    delta = None
    if settings.fit_atom_ref:
        delta = torch.zeros_like(model.atom_ref, requires_grad=True)
        groups.append({"params": [delta], "lr": settings.atom_ref_lr})
    optimizer = torch.optim.Adam([g for g in groups if g["params"]])
    total_steps = settings.max_epochs * len(train)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps)),
    )
    rng = np.random.default_rng(settings.seed)
    result = CachedFitResult()
    best_state = copy.deepcopy(model.state_dict())
    initial = validation_loss(model, validation, delta, settings.slope_weight, settings.huber_delta)
    result.best_validation_loss = initial
    result.history.append(
        {"epoch": 0.0, "validation_loss": initial, **(epoch_metrics(model) if epoch_metrics else {})}
    )
    logger.info("epoch 0: %s", result.history[-1])
    stale = 0
    try:
        for epoch in range(1, settings.max_epochs + 1):
            epoch_loss, epoch_weight = 0.0, 0.0
            for k in rng.permutation(len(train)).tolist():
                optimizer.zero_grad()
                loss, weight = batch_loss(
                    train[k], _energies(model, train[k], delta), settings.slope_weight, settings.huber_delta
                )
                if weight == 0:
                    continue
                loss.backward()
                optimizer.step()
                scheduler.step()
                epoch_loss += float(loss.detach()) * weight
                epoch_weight += weight
            val = validation_loss(model, validation, delta, settings.slope_weight, settings.huber_delta)
            record = {
                "epoch": float(epoch),
                "train_loss": epoch_loss / max(epoch_weight, 1e-12),
                "validation_loss": val,
                "seconds": time.perf_counter() - started,
            }
            improved = val < result.best_validation_loss
            if improved or epoch_metrics is not None:
                with torch.no_grad():
                    if delta is not None:
                        model.atom_ref += delta
                        delta.zero_()
                if epoch_metrics is not None:
                    record.update(epoch_metrics(model))
            result.history.append(record)
            logger.info("epoch %d: %s", epoch, record)
            if improved:
                result.best_validation_loss = val
                result.best_epoch = epoch
                best_state = copy.deepcopy(model.state_dict())
                stale = 0
                if on_improve is not None:
                    on_improve(model, record)
            else:
                stale += 1
            if stale >= settings.patience or time.perf_counter() - started > settings.max_seconds:
                break
    finally:
        for parameter in model.parameters():
            parameter.requires_grad_(False)
    model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - started
    return result
