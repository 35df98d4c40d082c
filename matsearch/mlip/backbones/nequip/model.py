"""An equivariant NequIP-family backbone (SevenNet's layout), batched: our accurate model.

Atoms start from a linear embedding of their species one-hot; each interaction block
(``block.py``) passes messages along the directed edges within ``cutoff`` Å, built from the
spherical harmonics of the edge direction and a Bessel embedding of its length, and keeps features
of degree up to l (e.g. 128x0e+64x1e+32x2e). The last block keeps even scalars; two linear
layers read out a per-atom energy, scaled per species, to which the tail adds AtomRef (SevenNet's
per-species shift). The published SevenNet weights convert with ``scripts/convert_sevennet.py``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from e3nn import o3
from torch import nn

from matsearch.mlip.backbones.nequip.block import InteractionBlock
from matsearch.mlip.backbones.nequip.radial import BesselEmbedding, Envelope
from matsearch.mlip.inputs import refuse_coincident_pairs
from matsearch.mlip.model import Bonds, EnergyConvention, Features, MLIPModel
from matsearch.mlip.neighbors import neighbor_pairs
from matsearch.mlip.state import BatchedState

# Peak memory of energy, forces and stress: about 3.0-3.2 numbers per directed edge for every
# component the convolutions write per edge (Σ over blocks of their output width), measured on the
# CPU for rattled rock-salt NaCl supercells of 64-512 atoms (sevennet-0: 110-135 kB per edge,
# sevennet-l3i5: 300 kB); rounded up.
VALUES_PER_EDGE_COMPONENT = 3.5
BYTES_PER_ATOM = 40_000


@dataclass(frozen=True)
class NequipConfig:
    """Constructor arguments of :class:`NequipModel`.

    ``irreps``: atom-feature irreps of the embedding and after each block (e3nn strings).
    ``species``: atomic numbers in the order of the embedding's one-hot. ``cutoff`` in Å.
    ``denominators``: per block, the constant the summed messages are divided by (about the square
    root of the mean neighbour count). ``fidelity``: a constant one-hot appended to the scalar
    inputs of each block's linear layers and of the readout (multi-fidelity models; empty
    otherwise).
    """

    irreps: tuple[str, ...]
    species: tuple[int, ...]
    denominators: tuple[float, ...]
    cutoff: float = 5.0
    lmax_sh: int = 2
    sh_parity: int = 1  # 1: even harmonics (SevenNet's is_parity False), -1: the physical parity
    num_basis: int = 8
    envelope: Envelope = "xplor"
    polynomial_p: int = 6
    xplor_r_on: float = 4.5
    radial_hidden: tuple[int, ...] = (64, 64)
    readout_hidden: int = 64
    fidelity: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name in ("irreps", "species", "denominators", "radial_hidden", "fidelity"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if len(self.irreps) < 2 or len(self.denominators) != len(self.irreps) - 1:
            raise ValueError(
                f"need the embedding's irreps and one per block, and one denominator per block; got "
                f"{len(self.irreps)} irreps and {len(self.denominators)} denominators"
            )
        if o3.Irreps(self.irreps[-1]).lmax != 0:
            raise ValueError(f"the last block must output scalars only, got {self.irreps[-1]}")
        if len(set(self.species)) != len(self.species) or min(self.species, default=0) < 1:
            raise ValueError("species must be distinct atomic numbers (1 or more)")
        if self.sh_parity not in (1, -1):
            raise ValueError(f"sh_parity must be 1 or -1, got {self.sh_parity}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-friendly) of the arguments."""
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()
        }


class NequipModel(MLIPModel):
    """NequIP-family equivariant interatomic potential over batched periodic structures."""

    kind = "nequip"
    config_class = NequipConfig

    def __init__(self, config: NequipConfig, energy_convention: EnergyConvention = "raw-pbe") -> None:
        super().__init__(config, max(config.species), energy_convention)
        irreps = [o3.Irreps(s) for s in config.irreps]
        fidelity_dim = len(config.fidelity)
        self.sh = o3.SphericalHarmonics(
            o3.Irreps.spherical_harmonics(config.lmax_sh, config.sh_parity),
            normalize=True,
            normalization="component",
            irreps_in=o3.Irreps("1x1o" if config.sh_parity == -1 else "1x1e"),
        )
        self.radial_embedding = BesselEmbedding(
            config.num_basis, config.cutoff, config.envelope, config.polynomial_p, config.xplor_r_on
        )
        self.embedding = o3.Linear(o3.Irreps(f"{len(config.species)}x0e"), irreps[0], biases=False)
        self.blocks = nn.ModuleList(
            InteractionBlock(
                irreps[t],
                irreps[t + 1],
                self.sh.irreps_out,
                config.num_basis,
                config.radial_hidden,
                config.denominators[t],
                fidelity_dim,
            )
            for t in range(len(irreps) - 1)
        )
        fidelity = o3.Irreps(f"{fidelity_dim}x0e") if fidelity_dim else o3.Irreps("")
        hidden = o3.Irreps(f"{config.readout_hidden}x0e")
        self.readout_hidden = o3.Linear(irreps[-1] + fidelity, hidden, biases=False)
        self.readout = o3.Linear(hidden, o3.Irreps("1x0e"), biases=False)
        self.register_buffer("species_scale", torch.ones(self.max_atomic_number))
        species_index = torch.full((self.max_atomic_number + 1,), -1, dtype=torch.long)
        species_index[torch.tensor(config.species)] = torch.arange(len(config.species))
        self.register_buffer("species_index", species_index, persistent=False)
        self.register_buffer("fidelity_onehot", torch.tensor(config.fidelity), persistent=False)
        # Spherical harmonics of the reversed edge: (-1)^l times those of the edge.
        reverse = torch.cat([torch.full((2 * d + 1,), (-1.0) ** d) for d in range(config.lmax_sh + 1)])
        self.register_buffer("reverse_sign", reverse, persistent=False)

    @property
    def cutoff(self) -> float:
        return self.config.cutoff

    @property
    def feature_dim(self) -> int:
        return o3.Irreps(self.config.irreps[-1]).dim

    def estimated_bytes(self, n_atoms: int, volume: float) -> float:
        """Peak memory (bytes) from the mean density: directed edges within the cutoff, times what
        the convolutions keep per edge."""
        edges = n_atoms * n_atoms / volume * 4.0 / 3.0 * torch.pi * self.config.cutoff**3
        per_edge = sum(block.convolution.irreps_out.dim for block in self.blocks)
        itemsize = self.atom_ref.element_size()
        return VALUES_PER_EDGE_COMPONENT * itemsize * per_edge * edges + BYTES_PER_ATOM * n_atoms

    def _check_atomic_numbers(self, atomic_numbers: torch.Tensor) -> None:
        super()._check_atomic_numbers(atomic_numbers)
        unknown = self.species_index[atomic_numbers] < 0
        if bool(unknown.any()):
            z = sorted(set(atomic_numbers[unknown].tolist()))
            raise ValueError(f"atomic numbers {z} are not among the species this model was trained on")

    def neighbors(self, state: BatchedState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(first [U], second [U], images [U, 3] in the positions' dtype) of the bonds within the cutoff."""
        with torch.no_grad():
            first, second, images, lengths = neighbor_pairs(
                state.positions.detach(), state.cell.detach(), state.batch, state.pbc, self.config.cutoff
            )
            refuse_coincident_pairs(first, second, lengths, state.batch)
        return first, second, images.to(state.positions.dtype)

    def features(
        self,
        positions: torch.Tensor,
        cell: torch.Tensor,
        state: BatchedState,
        graph: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    ) -> Features:
        """Scalar atom features [N, F] after the last block."""
        first, second, images = graph
        bond_system = state.batch.index_select(0, first)
        shifts = torch.einsum("uk,ukl->ul", images, cell.index_select(0, bond_system))
        vectors = positions.index_select(0, second) - positions.index_select(0, first) + shifts
        lengths = torch.linalg.vector_norm(vectors, dim=1)
        radial = self.radial_embedding(lengths)
        sh = self.sh(vectors)
        sh = torch.cat([sh, sh * self.reverse_sign])
        center = torch.cat([first, second])
        neighbor = torch.cat([second, first])
        species = self.species_index.index_select(0, state.atomic_numbers)
        onehot = torch.nn.functional.one_hot(species, len(self.config.species)).to(positions.dtype)
        fidelity = None
        if self.fidelity_onehot.numel():
            fidelity = self.fidelity_onehot.to(positions.dtype).expand(state.n_atoms, -1)
        x = self.embedding(onehot)
        for block in self.blocks:
            x = block(x, sh, radial, center, neighbor, fidelity)
        return Features(atoms=x, bonds=Bonds(first=first, second=second, lengths=lengths, system=bond_system))

    def site_energies(self, atom_features: torch.Tensor, atomic_numbers: torch.Tensor) -> torch.Tensor:
        if self.fidelity_onehot.numel():
            fidelity = self.fidelity_onehot.to(atom_features.dtype).expand(atom_features.shape[0], -1)
            atom_features = torch.cat([atom_features, fidelity], dim=1)
        scaled = self.readout(self.readout_hidden(atom_features)).squeeze(1)
        return scaled * self.species_scale.index_select(0, atomic_numbers - 1)
