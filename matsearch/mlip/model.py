"""The model contract every backbone implements, and the one energy tail they share.

Energy (eV per cell) = Σ_atoms [backbone site energy + AtomRef(Z)] (+ a learned species-pair
correction over the backbone's bonds, ``heads.pair.PairCorrection``) (+ a long-range head's
energy, ``heads``). Forces are -dE/dr by autograd; stress is (1/V) dE/d(strain). A backbone
(``backbones/``) supplies three things: the neighbour structure of a batch (no gradients), the
final atom features at given positions and cell, and the site energies read out from them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pymatgen.core import Structure
from torch import nn

from matsearch.errors import ModelError
from matsearch.mlip.inputs import UnsupportedStructure, check_structure, reduce_cell
from matsearch.mlip.state import BatchedState
from matsearch.mlip.units import EV_PER_A3_IN_GPA
from matsearch.results import ENERGY_CONVENTIONS

FILE_FORMAT = "matsearch-mlip"  # the ``format`` entry of our model files
FILE_FORMAT_VERSION = 3  # written by ``MLIPModel.save``; 2 added ``pair_correction``, 3 the backbone kind

EnergyConvention = Literal["mp2020", "raw-pbe"]  # see results.ENERGY_CONVENTIONS


@dataclass
class ModelInfo:
    """Provenance of a model's weights."""

    name: str = "untrained"
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Bonds:
    """The backbone's bonds (each unordered pair of atom and image once) at the evaluated geometry.

    ``first``/``second`` [U] int64 atom indices, ``lengths`` [U] Å (differentiable), ``system`` [U]
    int64 structure index of each bond.
    """

    first: torch.Tensor
    second: torch.Tensor
    lengths: torch.Tensor
    system: torch.Tensor


@dataclass
class Features:
    """What a backbone hands to the energy tail: ``atoms`` [N, F] final atom features (the
    readout and the long-range head read them), its ``bonds``, and ``magmoms`` [N] μB where the
    backbone predicts magnetic moments (None otherwise)."""

    atoms: torch.Tensor
    bonds: Bonds
    magmoms: torch.Tensor | None = None


class MLIPModel(nn.Module, ABC):
    """A batched interatomic potential: a backbone plus the shared energy tail (see module).

    Use :func:`matsearch.mlip.load_model` to get one with published weights. ``long_range`` is an
    optional head called as ``head(atom_features [N, F], positions [N, 3], cell [B, 3, 3], batch [N],
    pbc [B, 3], atomic_numbers=[N]) -> (energy [B] eV, charges [N] e)``; it receives the same
    positions and cell tensors that forces and stress are differentiated against.
    ``energy_convention`` says what the energies mean: "mp2020" (MP2020-corrected, as CHGNet is
    trained) or "raw-pbe" (uncorrected PBE/PBE+U, as SevenNet is); scoring corrects raw energies
    before comparing them with a hull.
    """

    kind: ClassVar[str]  # the backbone's name in model files (``backbones.BACKBONES``)
    config_class: ClassVar[type]  # its config dataclass (``to_dict()`` gives the saved arguments)

    def __init__(self, config: Any, max_atomic_number: int, energy_convention: EnergyConvention) -> None:
        super().__init__()
        if energy_convention not in ENERGY_CONVENTIONS:
            raise ModelError(
                f"unknown energy convention {energy_convention!r}; expected one of {ENERGY_CONVENTIONS}"
            )
        self.config = config
        self.info = ModelInfo()
        self.energy_convention: EnergyConvention = energy_convention
        self.max_atomic_number = max_atomic_number
        self.register_buffer("atom_ref", torch.zeros(max_atomic_number))
        self.long_range: nn.Module | None = None
        self.pair_correction: nn.Module | None = None

    # What a backbone implements -------------------------------------------------------------

    @property
    @abstractmethod
    def cutoff(self) -> float:
        """Neighbour cutoff in Å: the largest distance at which atoms interact directly."""

    @property
    @abstractmethod
    def feature_dim(self) -> int:
        """Width F of the atom features handed to the readout and the long-range head."""

    @abstractmethod
    def neighbors(self, state: BatchedState) -> Any:
        """The batch's neighbour structure (indices only, no gradients), reused at strained geometry."""

    @abstractmethod
    def features(
        self, positions: torch.Tensor, cell: torch.Tensor, state: BatchedState, graph: Any
    ) -> Features:
        """Final atom features at (possibly strained) `positions` [N, 3] Å and `cell` [B, 3, 3] Å."""

    @abstractmethod
    def site_energies(self, atom_features: torch.Tensor, atomic_numbers: torch.Tensor) -> torch.Tensor:
        """[N] eV per atom read out from the features, without AtomRef."""

    @abstractmethod
    def estimated_bytes(self, n_atoms: int, volume: float) -> float:
        """Peak memory (bytes) of energy, forces and stress of one structure of `volume` Å³ (> 0)."""

    def upgrade_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A state dict from an older model file as this class loads it (unchanged by default)."""
        return state_dict

    # The shared tail ---------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        return self.atom_ref.device

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the weights."""
        return self.atom_ref.dtype

    def readout_energy(self, atom_features: torch.Tensor, state: BatchedState) -> torch.Tensor:
        """[B] eV: Σ_i site energy(f_i) + AtomRef(Z_i) (no pair correction, no long-range head)."""
        site = self.site_energies(atom_features, state.atomic_numbers)
        site = site + self.atom_ref[state.atomic_numbers - 1]
        return site.new_zeros(state.n_systems).index_add(0, state.batch, site)

    def _energy(
        self, positions: torch.Tensor, cell: torch.Tensor, state: BatchedState, graph: Any
    ) -> dict[str, torch.Tensor]:
        """Energy [B] eV, charges [N] e and (where predicted) magmoms [N] μB at positions and cell."""
        features = self.features(positions, cell, state, graph)
        energy = self.readout_energy(features.atoms, state)
        if self.pair_correction is not None:
            bonds, z = features.bonds, state.atomic_numbers
            energy = energy + self.pair_correction(
                bonds.lengths,
                z.index_select(0, bonds.first),
                z.index_select(0, bonds.second),
                bonds.system,
                state.n_systems,
            )
        if self.long_range is not None:
            long_range_energy, charges = self.long_range(
                features.atoms, positions, cell, state.batch, state.pbc, atomic_numbers=state.atomic_numbers
            )
            energy = energy + long_range_energy
        else:
            charges = torch.zeros_like(state.positions[:, 0])
        out = {"energy": energy, "charges": charges}
        if features.magmoms is not None:
            out["magmoms"] = features.magmoms
        return out

    def _check_atomic_numbers(self, atomic_numbers: torch.Tensor) -> None:
        low, high = torch.aminmax(atomic_numbers)
        low, high = int(low), int(high)
        if low < 1 or high > self.max_atomic_number:
            bad = low if low < 1 else high
            raise ValueError(
                f"atomic number {bad} is not supported; the model covers 1 to {self.max_atomic_number}"
            )

    def compute(
        self,
        state: BatchedState,
        *,
        forces: bool = True,
        stress: bool = True,
        create_graph: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Energies, forces, stresses (and where predicted magnetic moments) of a batch.

        Returns a dict of tensors on the model's device:

        - ``energy`` [B] total energy per cell, eV.
        - ``forces`` [N, 3] -dE/dr, eV/Å (when ``forces``).
        - ``stress_ev_per_a3`` [B, 3, 3] sigma = (1/V) dE/d(epsilon), eV/Å³ (when ``stress``;
          the model's internal unit: ``predict`` and relaxation results give GPa, the ASE
          calculator ASE's eV/Å³), where the structure is deformed as r -> r (I + epsilon) and
          cell -> cell (I + epsilon) (rows), and V is the cell volume. This is ASE's (and
          CHGNet's) sign: positive diagonal = tensile (the energy falls if the cell shrinks),
          negative = compressive. A relaxer moves the cell along -V * sigma (the negative strain
          gradient of E); multiply by 160.21766208 for GPa.
        - ``charges`` [N] charges of the long-range head, e (zeros without a head).
        - ``magmoms`` [N] magnetic moment magnitudes, μB (backbones that predict them only).

        ``state`` is not modified. ``create_graph`` keeps the autograd graph of all outputs (for
        training on them, or for derivatives with respect to ``state.positions`` / ``state.cell``
        when those require grad); otherwise outputs are detached and, without forces and stress,
        no autograd graph is built at all.
        """
        if state.dtype != self.dtype or state.device != self.device:
            state = state.to(self.device, self.dtype)
        self._check_atomic_numbers(state.atomic_numbers)
        graph = self.neighbors(state)
        need_grad = forces or stress
        with torch.set_grad_enabled(need_grad or create_graph):
            # A caller's positions/cell that require grad are used as they are, so that outputs
            # stay differentiable with respect to them (create_graph=True).
            positions = state.positions
            if not positions.requires_grad:
                positions = positions.detach().requires_grad_(need_grad)
            cell = state.cell
            strain = torch.zeros_like(cell, requires_grad=stress)
            if stress:
                deformation = torch.eye(3, dtype=cell.dtype, device=cell.device) + strain
                positions_used = torch.einsum("nk,nkl->nl", positions, deformation[state.batch])
                cell_used = cell @ deformation
            else:
                positions_used, cell_used = positions, cell
            out = self._energy(positions_used, cell_used, state, graph)
            if need_grad:
                inputs = [t for t, wanted in ((positions, forces), (strain, stress)) if wanted]
                grads = torch.autograd.grad(out["energy"].sum(), inputs, create_graph=create_graph)
                grads_iter = iter(grads)
                if forces:
                    out["forces"] = -next(grads_iter)
                if stress:
                    volume = torch.linalg.det(cell).abs()
                    out["stress_ev_per_a3"] = next(grads_iter) / volume[:, None, None]
        if not create_graph:
            out = {key: value.detach() for key, value in out.items()}
        return out

    def predict(
        self,
        structures: Sequence[Structure],
        batch_size: int = 64,
        *,
        forces: bool = True,
        stress: bool = True,
    ) -> list[dict[str, Any]]:
        """Single-point predictions, one dict per structure, computed ``batch_size`` at a time.

        Keys: ``energy`` (float, eV per cell), ``charges`` ([n] e), ``magmoms`` ([n] μB, backbones
        that predict them), and ``forces`` ([n, 3] eV/Å) and ``stress`` ([3, 3] GPa, ASE's sign,
        see :meth:`compute`) when asked for. ``forces=False, stress=False`` is the static
        screening mode: no autograd graph is built; ``stress=False`` alone skips the strain
        derivative. Skewed cells are evaluated on their LLL-reduced basis (same crystal, same site
        order). Raises UnsupportedStructure, naming the structure, for non-finite numbers, a flat
        cell, coincident atoms or a density whose neighbour list would be unbounded.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        prepared = [self._prepared(index, s) for index, s in enumerate(structures)]
        results: list[dict[str, Any]] = []
        for start in range(0, len(prepared), batch_size):
            chunk = prepared[start : start + batch_size]
            state = BatchedState.from_structures(chunk, device=self.device, dtype=self.dtype)
            out = self.compute(state, forces=forces, stress=stress)
            splits = np.cumsum([len(s) for s in chunk])[:-1]
            columns: dict[str, Any] = {"energy": out["energy"].cpu().double().numpy().tolist()}
            for key in ("magmoms", "charges", "forces"):
                if key in out:
                    columns[key] = np.split(out[key].cpu().double().numpy(), splits)
            if stress:
                columns["stress"] = list(out["stress_ev_per_a3"].cpu().double().numpy() * EV_PER_A3_IN_GPA)
            results += [{key: values[b] for key, values in columns.items()} for b in range(len(chunk))]
        return results

    def _prepared(self, index: int, structure: Structure) -> Structure:
        """`structure` on a reduced cell, checked; UnsupportedStructure names it by `index`."""
        reduced = reduce_cell(structure)
        try:
            check_structure(reduced, self.cutoff)
        except UnsupportedStructure as exc:
            raise UnsupportedStructure(f"structure {index} ({structure.formula}): {exc}") from None
        return reduced

    def as_ase_calculator(self) -> Any:
        """ASE calculator (energy, free_energy, forces, stress, charges, magmoms where predicted)."""
        from matsearch.mlip.calculator import MLIPCalculator

        return MLIPCalculator(self)

    def save(self, path: str | Path) -> Path:
        """Write a self-describing model file (backbone kind and config, weights, energy convention,
        long-range head, species-pair correction, provenance; see ``files.py``) that
        ``load_model(path)`` reads; returns the path."""
        path = Path(path)
        backbone = {
            k: v
            for k, v in self.state_dict().items()
            if not k.startswith(("long_range.", "pair_correction."))
        }
        torch.save(
            {
                "format": FILE_FORMAT,
                "format_version": FILE_FORMAT_VERSION,
                "backbone": self.kind,
                "config": self.config.to_dict(),
                "energy_convention": self.energy_convention,
                "state_dict": backbone,
                "long_range": _saved_module(self.long_range, "long-range head"),
                "pair_correction": _saved_module(self.pair_correction, "pair correction"),
                "info": {"name": self.info.name, "source": self.info.source},
            },
            path,
        )
        return path

    @property
    def n_params(self) -> int:
        """Number of weights (the fixed elemental references are not counted)."""
        return sum(p.numel() for p in self.parameters())


def _saved_module(module: nn.Module | None, what: str) -> dict[str, Any] | None:
    """An optional head as ``{"config", "state_dict"}`` for a model file; None when absent."""
    if module is None:
        return None
    if not hasattr(module, "config"):
        raise ModelError(f"the {what} {type(module).__name__} has no `config`; it cannot be saved")
    return {"config": dict(module.config), "state_dict": module.state_dict()}
