"""Chemistry-aware variation operators on pymatgen structures.

Each operator takes parent structure(s), the run's ChemistryLimits and a numpy Generator, and
returns `(child, info)` or None when it does not apply (e.g. a swap in an elemental crystal).
`info` is a small JSON-able dict describing what was done. Children carry plain elements (no
oxidation states, no site properties). All randomness comes from the Generator passed in.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
from pymatgen.core import Composition, Lattice, Species, Structure

from matsearch.structures.limits import ChemistryLimits
from matsearch.structures.substitution import element_affinity, substitution_table, table_species

OperatorResult = tuple[Structure, dict[str, Any]] | None

PARTIAL_SUBSTITUTION_PROBABILITY = 0.3  # chance to substitute only some sites of an element
STRAIN_STD = 0.03  # standard deviation of each strain-tensor component (dimensionless)
STRAIN_MAX = 0.1  # strain components are clipped to ±STRAIN_MAX
RATTLE_STD = 0.05  # Å, standard deviation of the Cartesian position rattle after straining


def substitute(structure: Structure, limits: ChemistryLimits, rng: np.random.Generator) -> OperatorResult:
    """Replace all (or, sometimes, some) sites of one element by an allowed element not yet present.

    The new element is drawn with Hautier et al.'s data-mined substitution probabilities
    (pymatgen's SubstitutionProbability): when the parent's reduced formula has an integer
    oxidation-state guess, among species of the same charge (so charge balance is kept), weighted
    by exp(λ(new, old)), and None if no allowed element has such a species; without a guess,
    among allowed elements weighted by the summed exp(λ) over their listed species pairs.
    A partial substitution adds an element, so it is only drawn when the limits allow the extra
    element (max_elements and chemical systems).
    """
    plain = _plain(structure)
    present = sorted({site.specie.symbol for site in plain})
    source = present[int(rng.integers(len(present)))]
    choice = _draw_substitute(plain.composition, source, present, limits, rng)
    if choice is None:
        return None
    new_element, weighting = choice

    sites = [i for i, site in enumerate(plain) if site.specie.symbol == source]
    partial = (
        len(sites) >= 2
        and limits.allows({*present, new_element})
        and rng.random() < PARTIAL_SUBSTITUTION_PROBABILITY
    )
    if partial:
        n_replace = int(rng.integers(1, len(sites)))
        sites = sorted(int(i) for i in rng.choice(sites, size=n_replace, replace=False))
    child = plain.copy()
    for i in sites:
        child.replace(i, new_element)
    info = {"from": source, "to": new_element, "n_sites": len(sites), "weighting": weighting}
    return child, info


def strain(structure: Structure, limits: ChemistryLimits, rng: np.random.Generator) -> OperatorResult:
    """Apply a random symmetric strain (components ~ N(0, STRAIN_STD²), clipped) to the lattice,
    keeping fractional coordinates, then rattle positions by N(0, RATTLE_STD²) Å per component."""
    plain = _plain(structure)
    eps = rng.normal(0.0, STRAIN_STD, size=(3, 3))
    eps = np.clip(0.5 * (eps + eps.T), -STRAIN_MAX, STRAIN_MAX)
    lattice = Lattice(plain.lattice.matrix @ (np.eye(3) + eps))
    cart = lattice.get_cartesian_coords(plain.frac_coords)
    cart = cart + rng.normal(0.0, RATTLE_STD, size=cart.shape)
    child = Structure(lattice, plain.species, cart, coords_are_cartesian=True)
    info = {"strain_voigt": [round(float(v), 5) for v in _voigt(eps)]}
    return child, info


def swap(structure: Structure, limits: ChemistryLimits, rng: np.random.Generator) -> OperatorResult:
    """Exchange the elements of two sites holding different elements (sometimes two such pairs).
    Composition is unchanged, so this is safe for CSP."""
    plain = _plain(structure)
    symbols = [site.specie.symbol for site in plain]
    if len(set(symbols)) < 2:
        return None
    n_swaps = 2 if rng.random() < 0.3 else 1
    pairs: list[list[int]] = []
    for _ in range(n_swaps):
        i = int(rng.integers(len(symbols)))
        others = [j for j, s in enumerate(symbols) if s != symbols[i]]
        j = int(others[int(rng.integers(len(others)))])
        symbols[i], symbols[j] = symbols[j], symbols[i]
        pairs.append([i, j])
    child = Structure(plain.lattice, symbols, plain.frac_coords)
    return child, {"pairs": pairs}


def crossover(
    parent_a: Structure,
    parent_b: Structure,
    limits: ChemistryLimits,
    rng: np.random.Generator,
    *,
    max_tries: int = 10,
) -> OperatorResult:
    """Deaven–Ho cut-and-splice: a random plane through the unit cube of fractional coordinates
    keeps parent A's atoms on one side and parent B's on the other, in a lattice whose parameters
    are the atom-weighted average of both Niggli cells, scaled to the weighted volume per atom.

    If the parents share a reduced composition (always in CSP), the child keeps parent A's exact
    atom counts: missing atoms are taken from the discarded halves nearest the plane and surplus
    ones nearest the plane are dropped. Otherwise the spliced composition stands, if it fits
    within max_atoms and max_elements.
    """
    a = _plain(parent_a).get_reduced_structure()
    b = _plain(parent_b).get_reduced_structure()
    fa, fb = a.frac_coords % 1.0, b.frac_coords % 1.0
    sym_a = np.array([site.specie.symbol for site in a])
    sym_b = np.array([site.specie.symbol for site in b])
    same_formula = a.composition.reduced_composition.almost_equals(b.composition.reduced_composition)
    target_counts = _counts(a) if same_formula else None

    for _ in range(max_tries):
        normal = rng.normal(size=3)
        normal /= np.linalg.norm(normal)
        point = rng.random(3)
        side_a = (fa - point) @ normal  # A keeps side < 0
        side_b = (fb - point) @ normal  # B keeps side >= 0
        keep_a, keep_b = side_a < 0, side_b >= 0
        if target_counts is not None:
            fixed = _fix_counts(target_counts, sym_a, sym_b, side_a, side_b, keep_a, keep_b)
            if fixed is None:
                continue
            keep_a, keep_b = fixed
        n_a, n_b = int(keep_a.sum()), int(keep_b.sum())
        n = n_a + n_b
        if n_a == 0 or n_b == 0 or n > limits.max_atoms:
            continue
        symbols = list(sym_a[keep_a]) + list(sym_b[keep_b])
        if not limits.allows(symbols):
            continue
        lattice = _blend_lattices(a, b, n_a / n, n)
        if lattice is None:
            continue
        coords = np.vstack([fa[keep_a], fb[keep_b]])
        child = Structure(lattice, symbols, coords)
        info = {
            "normal": [round(float(x), 4) for x in normal],
            "point": [round(float(x), 4) for x in point],
            "from_a": n_a,
            "from_b": n_b,
        }
        return child, info
    return None


def _plain(structure: Structure) -> Structure:
    """Copy of an ordered `structure` with element species only and no site properties."""
    symbols = [site.specie.symbol for site in structure]
    return Structure(structure.lattice, symbols, structure.frac_coords)


def _counts(structure: Structure) -> dict[str, int]:
    return {el.symbol: int(round(n)) for el, n in structure.composition.element_composition.items()}


def _voigt(eps: np.ndarray) -> list[float]:
    return [eps[0, 0], eps[1, 1], eps[2, 2], 2 * eps[1, 2], 2 * eps[0, 2], 2 * eps[0, 1]]


def _blend_lattices(a: Structure, b: Structure, weight_a: float, n_atoms: int) -> Lattice | None:
    """Lattice with parameters weight_a·A + (1 − weight_a)·B, volume n_atoms × blended Å³/atom."""
    params = weight_a * np.array(a.lattice.parameters) + (1 - weight_a) * np.array(b.lattice.parameters)
    try:
        lattice = Lattice.from_parameters(*params)
    except ValueError:
        return None
    if not np.isfinite(lattice.volume) or lattice.volume < 1e-3:
        return None
    volume_per_atom = weight_a * a.volume / len(a) + (1 - weight_a) * b.volume / len(b)
    return lattice.scale(n_atoms * volume_per_atom)


def _fix_counts(
    target: dict[str, int],
    sym_a: np.ndarray,
    sym_b: np.ndarray,
    side_a: np.ndarray,
    side_b: np.ndarray,
    keep_a: np.ndarray,
    keep_b: np.ndarray,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Adjust the kept-atom masks so each element has exactly its `target` count, changing atoms
    nearest the cutting plane first; None if the parents lack enough atoms of some element."""
    keep_a, keep_b = keep_a.copy(), keep_b.copy()
    distance = np.concatenate([np.abs(side_a), np.abs(side_b)])
    symbols = np.concatenate([sym_a, sym_b])
    kept = np.concatenate([keep_a, keep_b])
    for element in sorted(set(symbols) | set(target)):
        want = target.get(element, 0)
        of_element = symbols == element
        have = int((kept & of_element).sum())
        if have < want:
            pool = np.flatnonzero(of_element & ~kept)
            if len(pool) < want - have:
                return None
            kept[pool[np.argsort(distance[pool], kind="stable")[: want - have]]] = True
        elif have > want:
            chosen = np.flatnonzero(of_element & kept)
            kept[chosen[np.argsort(distance[chosen], kind="stable")[: have - want]]] = False
    n_a = len(sym_a)
    return kept[:n_a], kept[n_a:]


def _draw_substitute(
    composition: Composition,
    source: str,
    present: list[str],
    limits: ChemistryLimits,
    rng: np.random.Generator,
) -> tuple[str, str] | None:
    """(new element, "species" or "element" weighting) or None if no allowed element is left.
    An element is allowed when replacing `source` by it keeps the structure inside the limits
    (elements and chemical systems)."""
    kept = set(present) - {source}
    allowed = sorted(el for el in set(limits.elements) - set(present) if limits.allows(kept | {el}))
    if not allowed:
        return None
    oxidation = _oxidation_guess(composition.reduced_formula).get(source)
    table = substitution_table()
    if oxidation is not None and Species(source, oxidation) in table.species:
        old = Species(source, oxidation)
        usable = set(allowed)
        candidates = [sp for sp in table_species() if sp.oxi_state == oxidation and sp.symbol in usable]
        if not candidates:
            return None
        weights = np.array([math.exp(table.get_lambda(sp, old)) for sp in candidates])
        index = int(rng.choice(len(candidates), p=weights / weights.sum()))
        return candidates[index].symbol, "species"
    weights = np.array([element_affinity(source, el) for el in allowed])
    index = int(rng.choice(len(allowed), p=weights / weights.sum()))
    return allowed[index], "element"


@lru_cache(maxsize=4096)
def _oxidation_guess(reduced_formula: str) -> dict[str, int]:
    """Most probable integer oxidation state per element, {} if no charge-balanced guess exists.
    Elements with a mixed (non-integer) or zero average state are left out."""
    guesses = Composition(reduced_formula).oxi_state_guesses(max_sites=-1)
    if not guesses:
        return {}
    return {
        el: int(round(ox)) for el, ox in guesses[0].items() if abs(ox - round(ox)) < 1e-6 and round(ox) != 0
    }
