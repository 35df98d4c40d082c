"""The CHGNet architecture (Deng et al., Nat. Mach. Intell. 2023), batched: our fast backbone.

Site energy = readout(LayerNorm(atom features)) after ``n_conv`` interaction blocks over the atom
graph (bonds within ``atom_cutoff``), the bond graph (bonds within ``bond_cutoff``) and the angles
between short bonds. Magnetic moments are |linear(atom features)| after the second-to-last atom
convolution. Published CHGNet weights load through ``checkpoint.py``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from matsearch.mlip.backbones.chgnet.basis import FourierAngle, RadialBessel, bond_angles
from matsearch.mlip.backbones.chgnet.graph import CrystalGraph, build_graph
from matsearch.mlip.backbones.chgnet.layers import AngleUpdate, AtomConv, BondConv
from matsearch.mlip.model import Bonds, EnergyConvention, Features, MLIPModel
from matsearch.mlip.state import BatchedState

# Peak memory of one model call (energy, forces and stress; float32), measured on the CPU for
# rock-salt supercells of 8-216 atoms at 11-22 Å³/atom: about 26 kB per bond and 24 kB per angle.
BYTES_PER_BOND = 32_000
BYTES_PER_ANGLE = 32_000
BYTES_PER_ATOM = 4_000


@dataclass(frozen=True)
class ChgnetConfig:
    """Constructor arguments of :class:`ChgnetModel` (dimensions, cutoffs in Å)."""

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


class ChgnetModel(MLIPModel):
    """CHGNet-architecture interatomic potential over batched periodic structures."""

    kind = "chgnet"
    config_class = ChgnetConfig

    def __init__(
        self, config: ChgnetConfig | None = None, energy_convention: EnergyConvention = "mp2020"
    ) -> None:
        config = config or ChgnetConfig()
        super().__init__(config, config.max_atomic_number, energy_convention)
        a, b, g = config.atom_dim, config.bond_dim, config.angle_dim
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

    @property
    def cutoff(self) -> float:
        return self.config.atom_cutoff

    @property
    def feature_dim(self) -> int:
        return self.config.atom_dim

    def estimated_bytes(self, n_atoms: int, volume: float) -> float:
        """Peak memory (bytes) from the mean density: bonds within the atom cutoff and angles
        between bonds shorter than the bond cutoff."""
        density = n_atoms / volume  # atoms per Å³
        ball = 4.0 / 3.0 * torch.pi
        bonds = n_atoms * density * ball * self.config.atom_cutoff**3 / 2.0
        angles = n_atoms * (density * ball * self.config.bond_cutoff**3) ** 2
        return BYTES_PER_BOND * bonds + BYTES_PER_ANGLE * angles + BYTES_PER_ATOM * n_atoms

    def neighbors(self, state: BatchedState) -> CrystalGraph:
        return build_graph(
            state.positions,
            state.cell,
            state.batch,
            state.pbc,
            self.config.atom_cutoff,
            self.config.bond_cutoff,
        )

    def features(
        self, positions: torch.Tensor, cell: torch.Tensor, state: BatchedState, graph: CrystalGraph
    ) -> Features:
        """LayerNorm'd atom features after the last atom convolution, and magmoms after the
        second-to-last."""
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
        return Features(
            atoms=self.readout_norm(atom_feas),
            bonds=Bonds(first=i, second=j, lengths=lengths, system=graph.bond_system),
            magmoms=magmoms,
        )

    def site_energies(self, atom_features: torch.Tensor, atomic_numbers: torch.Tensor) -> torch.Tensor:
        return self.readout(atom_features).squeeze(1)

    def upgrade_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A saved state dict as this class loads it: files written before the unused last angle
        update was dropped still hold its weights."""
        unused = f"angle_updates.{self.config.n_conv - 2}."
        return {k: v for k, v in state_dict.items() if not k.startswith(unused)}
