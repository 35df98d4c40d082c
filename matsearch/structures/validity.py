"""Cheap validity checks run on every proposed structure before it is relaxed.

`check_validity` returns None for a valid structure, else a reason string "kind: detail" whose kind
is one of KINDS, e.g. "too_close: Na-Cl 0.81 Å < 0.5×(r_cov sum) 1.34 Å".

The rules are tuned to accept real materials: on all 9,046 MP-20 test crystals (DFT-relaxed) the
default rules reject 0.4 % (`benchmarks/bench_discovery.py --validity-only` measures it).

- Volume: the cell volume divided by the summed volumes per atom of each element's own ground
  state (pymatgen's molar volumes) must lie in `volume_ratio` (default [0.25, 3.0]; MP-20 ranges
  from 0.29 to 6, with 0.05 % outside the default). An absolute Å³/atom window rejected alkali
  metals (Cs: 119 Å³/atom) while accepting far too dense cells of large atoms.
- Charge neutrality (`is_charge_balanced`) is asked only of ionic compositions, those with oxygen or
  a halogen and at least one other element: pymatgen's oxidation-state guesser must find an
  assignment summing to zero, with ICSD states or, failing that, any known states (peroxides such
  as Li2O2, oxy-anions such as ClO3⁻). Intermetallics, MAX phases (Ti3AlN), pnictides, hydrides
  and subnitrides pass: the guesser has no states for their metallic bonding.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from functools import lru_cache

import numpy as np
from ase.data import covalent_radii
from pymatgen.core import Composition, Element, Lattice, Structure

from matsearch.structures.limits import ChemistryLimits

KINDS = (
    "non_finite",
    "disordered",
    "too_many_atoms",
    "element_not_allowed",
    "too_many_elements",
    "not_in_systems",
    "wrong_composition",
    "volume_ratio",
    "too_close",
    "not_charge_balanced",
)


def check_validity(
    structure: Structure,
    limits: ChemistryLimits,
    *,
    check_charge_neutrality: bool = True,
    min_distance_factor: float = 0.5,
    volume_ratio: tuple[float, float] = (0.25, 3.0),
) -> str | None:
    """Return None if `structure` is acceptable under `limits`, else the first failed check.

    min_distance_factor: two atoms (or an atom and its own periodic image) closer than this factor
        times the sum of their covalent radii (Å, Cordero via ASE) are rejected.
    volume_ratio: allowed cell volume / Σ elemental ground-state volume per atom, inclusive.
    """
    lattice = structure.lattice.matrix
    if not (np.isfinite(lattice).all() and np.isfinite(structure.frac_coords).all()):
        return "non_finite: lattice or coordinates contain NaN or infinity"
    if not structure.is_ordered:
        return "disordered: partial occupancies are not supported"

    n_atoms = len(structure)
    if n_atoms > limits.max_atoms:
        return f"too_many_atoms: {n_atoms} > {limits.max_atoms}"

    composition = structure.composition.element_composition
    symbols = [el.symbol for el in composition.elements]
    not_allowed = [s for s in symbols if s not in limits.elements]
    if not_allowed:
        return f"element_not_allowed: {', '.join(not_allowed)} (allowed: {', '.join(limits.elements)})"
    if len(symbols) > limits.max_elements:
        return f"too_many_elements: {len(symbols)} > {limits.max_elements} ({', '.join(symbols)})"
    outside = limits.outside_systems(symbols)
    if outside is not None:
        return outside
    if limits.target is not None:
        target = limits.target.element_composition.reduced_composition
        if not composition.reduced_composition.almost_equals(target):
            return f"wrong_composition: {composition.reduced_formula} != target {target.reduced_formula}"

    reference = elemental_volume(composition)
    if reference is not None:
        ratio = structure.volume / reference
        low, high = volume_ratio
        if not low <= ratio <= high:
            return (
                f"volume_ratio: cell volume {structure.volume:.1f} Å³ is {ratio:.2f}× the elements' own "
                f"{reference:.1f} Å³, outside [{low:g}, {high:g}]"
            )

    contact = _closest_contact(structure, min_distance_factor)
    if contact is not None:
        return contact

    if check_charge_neutrality and not is_charge_balanced(composition):
        return (
            f"not_charge_balanced: no oxidation-state assignment of "
            f"{composition.reduced_formula} sums to zero"
        )
    return None


def is_charge_balanced(composition: Composition) -> bool:
    """True if `composition` passes the charge-neutrality rule in the module docstring."""
    return _charge_balanced(composition.element_composition.reduced_formula)


IONIC_ANIONS = frozenset({"O", "F", "Cl", "Br", "I"})
_AVOGADRO = 6.02214076e23


@lru_cache(maxsize=65536)
def _charge_balanced(reduced_formula: str) -> bool:
    composition = Composition(reduced_formula)
    if not is_ionic(el.symbol for el in composition.elements):
        return True
    return bool(
        composition.oxi_state_guesses(max_sites=-1)
        or composition.oxi_state_guesses(max_sites=-1, all_oxi_states=True)
    )


def is_plausible_composition(composition: Composition) -> bool:
    """The builtin proposer's chemistry prior, stricter than validity: an ionic composition (see
    `is_ionic`) must balance with ICSD oxidation states (Li2O2 does not; peroxides and oxy-anions
    with unusual states are left to the LLM proposers). Non-ionic compositions are plausible."""
    return _icsd_balanced(composition.element_composition.reduced_formula)


@lru_cache(maxsize=65536)
def _icsd_balanced(reduced_formula: str) -> bool:
    composition = Composition(reduced_formula)
    if not is_ionic(el.symbol for el in composition.elements):
        return True
    return bool(composition.oxi_state_guesses(max_sites=-1))


def elemental_volume(composition: Composition) -> float | None:
    """Σ n_i v_i (Å³): each atom with its element's ground-state volume per atom (pymatgen molar
    volume); None when an element has none (At, Fr and the heaviest elements)."""
    total = 0.0
    for element, amount in composition.element_composition.items():
        volume = _atomic_volume(element.symbol)
        if volume is None:
            return None
        total += amount * volume
    return total


@lru_cache(maxsize=128)
def _atomic_volume(symbol: str) -> float | None:
    molar_volume = Element(symbol).molar_volume  # cm³/mol
    return None if not molar_volume else float(molar_volume) * 1e24 / _AVOGADRO


def is_ionic(symbols: Iterable[str]) -> bool:
    """True for the compositions the charge-neutrality rule applies to: two or more elements, one
    of them oxygen or a halogen."""
    present = set(symbols)
    return len(present) > 1 and bool(present & IONIC_ANIONS)


def _closest_contact(structure: Structure, factor: float) -> str | None:
    """Reason string for the worst pair closer than factor × (r_cov,i + r_cov,j), or None."""
    numbers = np.array([site.specie.Z for site in structure])
    radii = covalent_radii[numbers]
    symbols = [site.specie.symbol for site in structure]

    # distinct sites, minimum image over periodic boundaries
    distances = structure.distance_matrix
    limit = factor * (radii[:, None] + radii[None, :])
    iu = np.triu_indices(len(structure), k=1)
    ratios = distances[iu] / limit[iu]
    worst: tuple[float, int, int, float] | None = None
    if ratios.size and ratios.min() < 1.0:
        k = int(np.argmin(ratios))
        i, j = int(iu[0][k]), int(iu[1][k])
        worst = (float(ratios[k]), i, j, float(distances[i, j]))

    # every atom and its own periodic image
    shortest = _shortest_lattice_vector(structure.lattice)
    self_ratios = shortest / (2.0 * factor * radii)
    i = int(np.argmin(self_ratios))
    if self_ratios[i] < 1.0 and (worst is None or self_ratios[i] < worst[0]):
        worst = (float(self_ratios[i]), i, i, shortest)

    if worst is None:
        return None
    _, i, j, d = worst
    return f"too_close: {symbols[i]}-{symbols[j]} {d:.2f} Å < {factor:g}×(r_cov sum) {limit[i, j]:.2f} Å"


def _shortest_lattice_vector(lattice: Lattice) -> float:
    """Length (Å) of the shortest non-zero lattice vector, searched around the LLL-reduced basis."""
    basis = lattice.lll_matrix
    combos = np.array([c for c in itertools.product((-1, 0, 1), repeat=3) if any(c)])
    return float(np.linalg.norm(combos @ basis, axis=1).min())
