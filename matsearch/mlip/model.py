"""The MLIP: our batched implementation of the CHGNet architecture, plus optional long-range head.

Energy (eV per cell) = sum over atoms of an elemental reference energy (AtomRef, fixed) + a per-atom
energy read out from atom features after ``n_conv`` interaction blocks (+ a learned species-pair
correction over the bonds, ``pair.PairCorrection``, and the long-range head's energy when they are
attached). Forces are -dE/dr by autograd; stress is (1/V) dE/d(strain); magnetic
moments are |linear(atom features)| after the second-to-last atom convolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pymatgen.core import Structure
from torch import nn

from matsearch.errors import ModelError
from matsearch.mlip.basis import FourierAngle, RadialBessel, bond_angles
from matsearch.mlip.graph import CrystalGraph, build_graph
from matsearch.mlip.inputs import UnsupportedStructure, check_structure, reduce_cell
from matsearch.mlip.layers import AngleUpdate, AtomConv, BondConv
from matsearch.mlip.protocol import EV_PER_A3_IN_GPA
from matsearch.mlip.state import BatchedState

FILE_FORMAT = "matsearch-mlip"  # the ``format`` entry of our model files
FILE_FORMAT_VERSION = 2  # written by ``MLIPModel.save``; 2 added ``pair_correction``


@dataclass(frozen=True)
class ModelConfig:
    """Constructor arguments of :class:`MLIPModel` (dimensions, cutoffs in Å)."""

    atom_dim: int = 64
    bond_dim: int = 64
    angle_dim: int = 64
    num_radial: int = 31
    num_angular: int = 31
    n_conv: int = 4
    conv_hidden_dim: int = 64
    readout_hidden_dims: tuple[int, ...] = (64, 64, 64)
    atom_cutoff: float = 6.0
    bond_cutoff: float = 3.0
    envelope_exponent: int = 8
    max_atomic_number: int = 94

    def __post_init__(self) -> None:
        object.__setattr__(self, "readout_hidden_dims", tuple(self.readout_hidden_dims))
        if self.num_angular % 2 != 1:
            raise ValueError(f"num_angular must be odd, got {self.num_angular}")
        if self.n_conv < 2:
            raise ValueError(f"n_conv must be at least 2, got {self.n_conv}")
        if not 0 < self.bond_cutoff <= self.atom_cutoff:
            raise ValueError(
                f"bond_cutoff must be in (0, atom_cutoff={self.atom_cutoff}] Å, got {self.bond_cutoff}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-friendly) of the arguments."""
        out = asdict(self)
        out["readout_hidden_dims"] = list(self.readout_hidden_dims)
        return out


@dataclass
class ModelInfo:
    """Provenance of a model's weights."""

    name: str = "untrained"
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class MLIPModel(nn.Module):
    """CHGNet-architecture interatomic potential over batched periodic structures.

    Use :func:`matsearch.mlip.load_model` to get one with published weights. ``long_range`` is
    an optional head called as ``head(atom_features [N, F], positions [N, 3], cell [B, 3, 3],
    batch [N], pbc [B, 3]) -> (energy [B] eV, charges [N] e)`` on the final (normalised) atom
    features; its energy is added to the model's, and it receives the same positions and cell
    tensors that forces and stress are differentiated against.
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        config = config or ModelConfig()
        self.config = config
        self.info = ModelInfo()
        a, b, g = config.atom_dim, config.bond_dim, config.angle_dim
        self.register_buffer("atom_ref", torch.zeros(config.max_atomic_number))
        self.atom_embedding = nn.Embedding(config.max_atomic_number, a)
        self.radial_atom = RadialBessel(config.num_radial, config.atom_cutoff, config.envelope_exponent)
        self.radial_bond = RadialBessel(config.num_radial, config.bond_cutoff, config.envelope_exponent)
        self.angle_basis = FourierAngle((config.num_angular - 1) // 2)
        self.bond_embedding = nn.Linear(config.num_radial, b, bias=False)
        self.bond_weights_atom = nn.Linear(config.num_radial, a, bias=False)
        self.bond_weights_bond = nn.Linear(config.num_radial, b, bias=False)
        self.angle_embedding = nn.Linear(config.num_angular, g, bias=False)
        hidden = config.conv_hidden_dim
        self.atom_convs = nn.ModuleList(AtomConv(a, b, hidden) for _ in range(config.n_conv))
        self.bond_convs = nn.ModuleList(BondConv(a, b, g, hidden) for _ in range(config.n_conv - 1))
        # Angle features feed the next bond convolution only, so the block after the last bond
        # convolution (CHGNet has one) would feed nothing and is not built.
        self.angle_updates = nn.ModuleList(AngleUpdate(a, b, g) for _ in range(config.n_conv - 2))
        self.magmom_head = nn.Linear(a, 1)
        self.readout_norm = nn.LayerNorm(a)
        widths = [a, *config.readout_hidden_dims]
        readout: list[nn.Module] = []
        for w_in, w_out in zip(widths[:-1], widths[1:], strict=True):
            readout += [nn.Linear(w_in, w_out), nn.SiLU()]
        readout.append(nn.Linear(widths[-1], 1))
        self.readout = nn.Sequential(*readout)
        self.long_range: nn.Module | None = None
        self.pair_correction: nn.Module | None = None

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        return self.atom_ref.device

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the weights."""
        return self.atom_ref.dtype

    def _check_atomic_numbers(self, atomic_numbers: torch.Tensor) -> None:
        low, high = torch.aminmax(atomic_numbers)
        low, high = int(low), int(high)
        if low < 1 or high > self.config.max_atomic_number:
            bad = low if low < 1 else high
            raise ValueError(
                f"atomic number {bad} is not supported; the model covers 1 to {self.config.max_atomic_number}"
            )

    def _energy(
        self,
        positions: torch.Tensor,
        cell: torch.Tensor,
        state: BatchedState,
        graph: CrystalGraph,
    ) -> dict[str, torch.Tensor]:
        """Energy [B] eV, magmoms [N] μB, charges [N] e at (strained) positions and cell."""
        i, j = graph.bond_atoms[0], graph.bond_atoms[1]
        shifts = torch.einsum("uk,ukl->ul", graph.bond_images, cell[graph.bond_system])
        vectors = positions.index_select(0, j) - positions.index_select(0, i) + shifts
        lengths = torch.linalg.vector_norm(vectors, dim=1)

        radial_atom = self.radial_atom(lengths)
        bond_feas = self.bond_embedding(radial_atom)
        bond_weights_atom = self.bond_weights_atom(radial_atom)

        short = graph.short_bonds
        short_lengths = lengths.index_select(0, short)
        short_units = vectors.index_select(0, short) / short_lengths.unsqueeze(1)
        short_bond_weights = self.bond_weights_bond(self.radial_bond(short_lengths))
        first, second = graph.angle_bonds[0], graph.angle_bonds[1]
        cosines = graph.angle_sign * (
            short_units.index_select(0, first) * short_units.index_select(0, second)
        ).sum(dim=1)
        angle_feas = self.angle_embedding(self.angle_basis(bond_angles(cosines)))

        atom_feas = self.atom_embedding(state.atomic_numbers - 1)
        magmoms = None
        for k in range(self.config.n_conv - 1):
            atom_feas = self.atom_convs[k](
                atom_feas, bond_feas, bond_weights_atom, graph.edge_center, graph.edge_neighbor
            )
            short_feas = self.bond_convs[k](
                atom_feas,
                bond_feas.index_select(0, short),
                short_bond_weights,
                angle_feas,
                graph.angle_center,
                graph.angle_bonds,
            )
            bond_feas = bond_feas.index_copy(0, short, short_feas)
            if k < len(self.angle_updates):
                angle_feas = self.angle_updates[k](
                    atom_feas, short_feas, angle_feas, graph.angle_center, graph.angle_bonds
                )
            if k == self.config.n_conv - 2:
                magmoms = torch.abs(self.magmom_head(atom_feas)).squeeze(1)
        atom_feas = self.atom_convs[-1](
            atom_feas, bond_feas, bond_weights_atom, graph.edge_center, graph.edge_neighbor
        )
        atom_feas = self.readout_norm(atom_feas)

        site_energies = self.readout(atom_feas).squeeze(1) + self.atom_ref[state.atomic_numbers - 1]
        energy = positions.new_zeros(state.n_systems).index_add(0, state.batch, site_energies)
        if self.pair_correction is not None:
            z = state.atomic_numbers
            energy = energy + self.pair_correction(
                lengths, z.index_select(0, i), z.index_select(0, j), graph.bond_system, state.n_systems
            )
        if self.long_range is not None:
            long_range_energy, charges = self.long_range(
                atom_feas, positions, cell, state.batch, state.pbc, atomic_numbers=state.atomic_numbers
            )
            energy = energy + long_range_energy
        else:
            charges = torch.zeros_like(site_energies)
        return {"energy": energy, "magmoms": magmoms, "charges": charges}

    def compute(
        self,
        state: BatchedState,
        *,
        forces: bool = True,
        stress: bool = True,
        create_graph: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Energies, forces, stresses and magnetic moments of a batch of structures.

        Returns a dict of tensors on the model's device:

        - ``energy`` [B] total energy per cell, eV.
        - ``forces`` [N, 3] -dE/dr, eV/Å (when ``forces``).
        - ``stress_ev_per_a3`` [B, 3, 3] sigma = (1/V) dE/d(epsilon), eV/Å³ (when ``stress``;
          the model's internal unit: ``predict`` and relaxation results give GPa, the ASE
          calculator ASE's eV/Å³), where the
          structure is deformed as r -> r (I + epsilon) and cell -> cell (I + epsilon) (rows), and V
          is the cell volume. This is ASE's (and CHGNet's) sign: positive diagonal = tensile (the
          energy falls if the cell shrinks), negative = compressive. A relaxer moves the cell along
          -V * sigma (the negative strain gradient of E); multiply by 160.21766208 for GPa.
        - ``magmoms`` [N] magnetic moment magnitudes, μB.
        - ``charges`` [N] charges of the long-range head, e (zeros without a head).

        ``state`` is not modified. ``create_graph`` keeps the autograd graph of all outputs (for
        training on them, or for derivatives with respect to ``state.positions`` / ``state.cell``
        when those require grad); otherwise outputs are detached and, without forces and stress,
        no autograd graph is built at all.
        """
        if state.dtype != self.dtype or state.device != self.device:
            state = state.to(self.device, self.dtype)
        self._check_atomic_numbers(state.atomic_numbers)
        graph = build_graph(
            state.positions,
            state.cell,
            state.batch,
            state.pbc,
            self.config.atom_cutoff,
            self.config.bond_cutoff,
        )
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

        Keys: ``energy`` (float, eV per cell), ``magmoms`` ([n] μB), ``charges`` ([n] e), and
        ``forces`` ([n, 3] eV/Å) and ``stress`` ([3, 3] GPa, CHGNet's sign, see :meth:`compute`)
        when asked for. ``forces=False, stress=False`` is the static screening mode: no autograd
        graph is built (about 2× faster on one CPU thread, benchmarks/RESULTS.md); ``stress=False``
        alone skips the strain derivative. Skewed cells are evaluated on their LLL-reduced basis
        (same crystal, same site order). Raises UnsupportedStructure, naming the structure, for
        non-finite numbers, a flat cell, coincident atoms or a density whose neighbour list would be
        unbounded.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        prepared = [self._prepared(index, s) for index, s in enumerate(structures)]
        per_atom_keys = ("magmoms", "charges", "forces") if forces else ("magmoms", "charges")
        results: list[dict[str, Any]] = []
        for start in range(0, len(prepared), batch_size):
            chunk = prepared[start : start + batch_size]
            state = BatchedState.from_structures(chunk, device=self.device, dtype=self.dtype)
            out = self.compute(state, forces=forces, stress=stress)
            splits = np.cumsum([len(s) for s in chunk])[:-1]
            columns: dict[str, Any] = {"energy": out["energy"].cpu().double().numpy().tolist()}
            for key in per_atom_keys:
                columns[key] = np.split(out[key].cpu().double().numpy(), splits)
            if stress:
                columns["stress"] = list(out["stress_ev_per_a3"].cpu().double().numpy() * EV_PER_A3_IN_GPA)
            results += [{key: values[b] for key, values in columns.items()} for b in range(len(chunk))]
        return results

    def _prepared(self, index: int, structure: Structure) -> Structure:
        """`structure` on a reduced cell, checked; UnsupportedStructure names it by `index`."""
        reduced = reduce_cell(structure)
        try:
            check_structure(reduced, self.config.atom_cutoff)
        except UnsupportedStructure as exc:
            raise UnsupportedStructure(f"structure {index} ({structure.formula}): {exc}") from None
        return reduced

    def as_ase_calculator(self) -> Any:
        """ASE calculator (energy, free_energy, forces, stress, magmoms, charges) of this model."""
        from matsearch.mlip.calculator import MLIPCalculator

        return MLIPCalculator(self)

    def save(self, path: str | Path) -> Path:
        """Write a self-describing model file (config, weights, long-range head, species-pair
        correction, provenance; see ``weights.py``) that ``load_model(path)`` reads; returns the path."""
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
                "config": self.config.to_dict(),
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
