"""Random symmetric crystals from pyxtal, reproducible from a numpy Generator.

Compositions are drawn within a run's ChemistryLimits (preferring plausible ones, see
`matsearch.structures.validity.is_plausible_composition`), or given (CSP: the target formula times a
number of formula units). Space groups are drawn uniformly from those whose Wyckoff positions can
hold the atom counts. pyxtal's atom counts refer to its conventional cell, which `random_structure`
returns; `random_target_structure` returns the Niggli-reduced primitive cell of a possibly larger
centred one.

pyxtal (1.1.5) builds a new atomic `Tol_matrix` (a 119 × 119 Python loop, about 5 ms) on every
`operations.check_images` call that passes no `tm`, even when a `tol` leaves it unused; merging
Wyckoff positions makes dozens of such calls per crystal (489 in two profiled generations of 32
builtin children: 18 % of the engine's own time). Before its first crystal, `random_structure`
makes one such matrix check_images' default (`_share_tolerance_matrix`): it is only read, and
equals the one pyxtal would build, so pyxtal's structures are unchanged.
"""

from __future__ import annotations

import inspect
import logging
import math
from functools import lru_cache, reduce

import numpy as np
from pymatgen.core import Composition, Structure
from pyxtal import operations, pyxtal
from pyxtal.symmetry import Group
from pyxtal.tolerance import Tol_matrix

from matsearch.structures.limits import ChemistryLimits
from matsearch.structures.validity import is_plausible_composition

logger = logging.getLogger(__name__)

_MAX_REDUCED_COUNT = 6  # largest stoichiometric coefficient drawn for a random composition
_N_SPACE_GROUPS = 230
_LATTICE_POINTS = {"P": 1, "A": 2, "B": 2, "C": 2, "I": 2, "R": 3, "F": 4}  # per conventional cell


def random_composition(
    limits: ChemistryLimits, rng: np.random.Generator, *, max_tries: int = 50
) -> Composition | None:
    """A random cell composition (≤ max_atoms atoms, 2..max_elements allowed elements where the
    limits permit, all from one chemical system when the limits name systems), plausible if
    one is found within `max_tries` draws; None if none fits."""
    allowed = frozenset(limits.elements)
    pools = [sorted(system & allowed) for system in limits.systems] or [sorted(allowed)]
    if limits.max_atoms < 1 or not any(pools):
        return None
    fallback: Composition | None = None
    for _ in range(max_tries):
        elements = pools[int(rng.integers(len(pools)))] if len(pools) > 1 else pools[0]
        k_max = min(limits.max_elements, len(elements))
        if k_max < 1:
            continue
        k = int(rng.integers(min(2, k_max), k_max + 1))
        chosen = [elements[i] for i in rng.choice(len(elements), size=k, replace=False)]
        counts = [int(c) for c in rng.integers(1, _MAX_REDUCED_COUNT + 1, size=k)]
        divisor = reduce(math.gcd, counts)
        counts = [c // divisor for c in counts]
        n_reduced = sum(counts)
        if n_reduced > limits.max_atoms:
            continue
        units = int(rng.integers(1, limits.max_atoms // n_reduced + 1))
        composition = Composition({el: c * units for el, c in zip(chosen, counts, strict=True)})
        if is_plausible_composition(composition):
            return composition
        fallback = fallback or composition
    return fallback


def max_formula_units(target: Composition, max_atoms: int) -> int:
    """How many formula units of `target` fit in a cell of `max_atoms` atoms (0 if none)."""
    return int(max_atoms // target.element_composition.reduced_composition.num_atoms)


def random_target_structure(
    target: Composition, units: int, rng: np.random.Generator, *, max_space_group_tries: int = 30
) -> Structure | None:
    """A random symmetric crystal of `units` formula units of `target` in its primitive cell.

    The space group is drawn first; for a centred group (A, B, C, I: 2 lattice points, R in the
    hexagonal setting: 3, F: 4) pyxtal builds the conventional cell with that many times the atoms
    and the primitive cell is returned, so conventional cells larger than max_atoms are reachable
    (rock salt: 8 atoms conventional, 2 primitive). None if pyxtal found no arrangement.
    """
    reduced = target.element_composition.reduced_composition
    wanted = int(round(reduced.num_atoms)) * units
    for group in (int(g) for g in rng.integers(1, _N_SPACE_GROUPS + 1, size=max_space_group_tries)):
        points = _LATTICE_POINTS[_group(group).symbol[0]]
        structure = random_structure(reduced * (units * points), rng, space_group=group)
        if structure is None:
            continue
        primitive = structure.get_primitive_structure()
        if len(primitive) == wanted:
            return primitive.get_reduced_structure()  # Niggli: no needlessly skewed cell for the MLIP
    return None


def random_structure(
    composition: Composition,
    rng: np.random.Generator,
    *,
    space_group: int | None = None,
    volume_factor: float = 1.1,
    max_space_group_tries: int = 30,
) -> Structure | None:
    """A random crystal with exactly `composition` (integer atom counts) in a random compatible
    space group (or `space_group`), or None if pyxtal found no arrangement.

    volume_factor: pyxtal's ratio of cell volume to the sum of atomic volumes.
    """
    _share_tolerance_matrix()
    symbols = [el.symbol for el in composition.elements]
    counts = [int(round(composition[el])) for el in symbols]
    candidates = (
        [space_group]
        if space_group is not None
        else [int(g) for g in rng.integers(1, _N_SPACE_GROUPS + 1, size=max_space_group_tries)]
    )
    for group in candidates:
        if not _group(group).check_compatible(counts)[0]:
            continue
        seed = int(rng.integers(2**63))
        crystal = pyxtal()
        try:
            crystal.from_random(
                3,
                group,
                symbols,
                counts,
                factor=volume_factor,
                random_state=np.random.default_rng(seed),
            )
        except Exception as exc:  # pyxtal signals failure with several exception types
            logger.debug("pyxtal failed for %s in group %d: %s", composition, group, exc)
            continue
        if not crystal.valid:
            continue
        return crystal.to_pymatgen()
    return None


@lru_cache(maxsize=_N_SPACE_GROUPS)
def _group(number: int) -> Group:
    return Group(number)


@lru_cache(maxsize=1)
def _share_tolerance_matrix() -> None:
    """Make one atomic Tol_matrix the default `tm` of pyxtal's `check_images` (see the module
    docstring); left alone when check_images has no `tm` defaulting to None."""
    parameters = inspect.signature(operations.check_images).parameters
    if "tm" not in parameters or parameters["tm"].default is not None:
        return
    shared = Tol_matrix(prototype="atomic")
    operations.check_images.__defaults__ = tuple(
        shared if name == "tm" else parameter.default
        for name, parameter in parameters.items()
        if parameter.default is not inspect.Parameter.empty
    )
