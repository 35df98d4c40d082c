"""Per-generation discovery metrics: validity, uniqueness, novelty, stability, S.U.N., hypervolume.

Definitions (all rates are fractions in [0, 1]; a rate over an empty set is 0):

- validity rate = children that passed the validity checks / children proposed.
- uniqueness rate = valid children that are not duplicates of an earlier candidate of the run
  (the engine's dedup) / valid children.
- novelty: a relaxed structure is novel when no MP-20 train or val structure of the same reduced
  formula matches it (pymatgen StructureMatcher with the dedup tolerances; see `NoveltyIndex`).
  novelty rate = novel / scored children.
- stability rates: scored children with e_above_hull ≤ t / children proposed, for each threshold
  t in `STABILITY_THRESHOLDS` (eV/atom); ≤ 0 is "stable", ≤ 0.1 MatLLMSearch's "metastable".
- S.U.N.: scored children that are stable (e_above_hull ≤ `stable_threshold`), unique and novel.
- hypervolume of the surviving population in objective space (pymoo's HV on
  `selection.minimisation_matrix`), measured against a fixed reference point; see
  `hypervolume_reference` for the rule.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from pymatgen.core import Structure
from pymoo.indicators.hv import HV

from matsearch.candidate import Candidate, Status
from matsearch.selection import minimisation_matrix
from matsearch.spec import Objective
from matsearch.structures.dedup import DuplicateIndex

logger = logging.getLogger(__name__)

STABILITY_THRESHOLDS = (0.0, 0.03, 0.1)  # eV/atom
# Hypervolume reference of minimised built-in objectives: the worst value that still counts.
DEFAULT_REFERENCE = {
    "e_above_hull": 0.1,  # eV/atom: MatLLMSearch's metastability threshold
    "formation_energy": 0.0,  # eV/atom: only compounds more stable than the elements
    "deformation_energy": 1.0,  # eV/atom released on relaxation
}
NOVELTY_SPLITS = ("train", "val")
_PASSED_VALIDITY = frozenset({Status.VALID, Status.SCORED, Status.FAILED, Status.DUPLICATE})
_UNIQUE = frozenset({Status.VALID, Status.SCORED, Status.FAILED})


class NoveltyIndex:
    """Known structures by reduced formula; `match` finds the known structure a query reproduces.

    Built from MP-20 with `from_mp20` (lazy: the table is read on the first query and a formula's
    CIFs are parsed the first time that formula is asked for) or from any mapping of id →
    structure with `from_structures`. MP-20 train rows without a CIF cannot be compared and are
    counted in `n_without_structure`.
    """

    def __init__(self, cifs_by_formula: Mapping[str, Sequence[tuple[str, str]]] | None = None) -> None:
        self._cifs_by_formula = cifs_by_formula
        self._splits: tuple[str, ...] = ()
        self._indexes: dict[str, tuple[DuplicateIndex, list[str]]] = {}
        self.n_without_structure = 0

    @classmethod
    def from_mp20(cls, splits: Sequence[str] = NOVELTY_SPLITS) -> NoveltyIndex:
        """MP-20 `splits` (default train + val) from the data registry; nothing is read yet."""
        index = cls()
        index._splits = tuple(splits)
        return index

    @classmethod
    def from_structures(cls, structures: Mapping[str, Structure]) -> NoveltyIndex:
        """A reference set of your own: {id: structure}."""
        index = cls({})
        for ref_id, structure in structures.items():
            formula = structure.composition.reduced_formula
            group = index._indexes.setdefault(formula, (DuplicateIndex(), []))
            group[0].add(len(group[1]), structure)
            group[1].append(ref_id)
        return index

    def _table(self) -> Mapping[str, Sequence[tuple[str, str]]]:
        if self._cifs_by_formula is None:
            import pandas as pd

            from matsearch.data import load_mp20

            frame = pd.concat([load_mp20(split) for split in self._splits], ignore_index=True)
            has_cif = frame["cif"].map(lambda c: isinstance(c, str) and bool(c.strip()))
            self.n_without_structure = int((~has_cif).sum())
            frame = frame[has_cif]
            self._cifs_by_formula = {
                formula: list(zip(group["material_id"], group["cif"], strict=True))
                for formula, group in frame.groupby("reduced_formula", sort=False)
            }
            logger.info(
                "novelty reference: MP-20 %s, %d structures (%d rows without CIF)",
                "+".join(self._splits),
                len(frame),
                self.n_without_structure,
            )
        return self._cifs_by_formula

    def _group(self, formula: str) -> tuple[DuplicateIndex, list[str]] | None:
        if formula not in self._indexes:
            rows = self._table().get(formula)
            if not rows:
                return None
            index, ids = DuplicateIndex(), []
            for ref_id, cif in rows:
                with warnings.catch_warnings():  # MP CIFs: "coordinates rounded to ideal values"
                    warnings.simplefilter("ignore", UserWarning)
                    structure = Structure.from_str(cif, fmt="cif")
                index.add(len(ids), structure)
                ids.append(ref_id)
            self._indexes[formula] = (index, ids)
        return self._indexes[formula]

    def match(self, structure: Structure) -> str | None:
        """Id (e.g. MP material_id) of the known structure that matches `structure`, or None."""
        group = self._group(structure.composition.reduced_formula)
        if group is None:
            return None
        found = group[0].find(structure)
        return None if found is None else group[1][found]

    def is_novel(self, structure: Structure) -> bool:
        return self.match(structure) is None


def hypervolume_reference(
    population: Sequence[Candidate],
    objectives: Sequence[Objective],
    *,
    fixed: Mapping[str, float] | None = None,
    margin: float = 0.1,
) -> np.ndarray:
    """Reference point of the hypervolume, in the minimisation space of `selection`.

    Fix it once per run (from the initial population) so that hypervolumes of later generations
    are comparable. Per objective, the first rule that applies:

    1. `fixed[name]`, in the objective's own units: the worst value that still counts (for a
       `target` objective, the largest tolerated |x − target|);
    2. for a minimised built-in objective, `DEFAULT_REFERENCE` (e.g. e_above_hull 0.1 eV/atom,
       so only metastable candidates add volume);
    3. otherwise from `population`: worst + margin · span, where span is worst − best, or
       max(|worst|, 1) when all values are equal.
    """
    if margin <= 0:
        raise ValueError(f"margin must be positive, got {margin}")
    fixed = dict(fixed or {})
    unknown = sorted(set(fixed) - {o.name for o in objectives})
    if unknown:
        raise ValueError(f"hypervolume reference given for {', '.join(unknown)}, which is not an objective")
    ref = np.full(len(objectives), np.nan)
    for j, objective in enumerate(objectives):
        if objective.name in fixed:
            value = float(fixed[objective.name])
            ref[j] = -value if objective.direction == "max" else value
        elif objective.direction == "min" and objective.name in DEFAULT_REFERENCE:
            ref[j] = DEFAULT_REFERENCE[objective.name]
    derive = np.isnan(ref)
    if derive.any():
        if not population:
            names = ", ".join(o.name for o, d in zip(objectives, derive, strict=True) if d)
            raise ValueError(f"the hypervolume reference of {names} needs a population or a fixed value")
        values = minimisation_matrix(population, objectives)
        high, low = values.max(axis=0), values.min(axis=0)
        span = np.where(high > low, high - low, np.maximum(np.abs(high), 1.0))
        ref[derive] = (high + margin * span)[derive]
    return ref


def hypervolume(
    population: Sequence[Candidate], objectives: Sequence[Objective], ref_point: Sequence[float]
) -> float:
    """Hypervolume dominated by `population` up to `ref_point` (units: product of objective units).

    Candidates without a finite score for an objective, and points that do not dominate the
    reference point, add nothing.
    """
    ref = np.asarray(ref_point, dtype=float)
    if ref.shape != (len(objectives),):
        raise ValueError(f"ref_point has {ref.size} values but there are {len(objectives)} objectives")
    complete = [c for c in population if all(np.isfinite(c.scores.get(o.name, np.nan)) for o in objectives)]
    if not complete:
        return 0.0
    return float(HV(ref_point=ref)(minimisation_matrix(complete, objectives)))


def _rate(count: int, total: int) -> float:
    return count / total if total else 0.0


def is_novel(candidate: Candidate, novelty_index: NoveltyIndex) -> bool:
    """Novelty of the relaxed structure (the proposed one if it was never relaxed)."""
    structure = candidate.relaxed if candidate.relaxed is not None else candidate.structure
    return novelty_index.is_novel(structure)


def generation_metrics(
    children: Sequence[Candidate],
    population: Sequence[Candidate],
    objectives: Sequence[Objective],
    novelty_index: NoveltyIndex | None,
    ref_point: Sequence[float] | None,
    *,
    stable_threshold: float = 0.0,
) -> dict[str, float | int | None]:
    """Metrics of one generation (see the module docstring for definitions), JSON-ready.

    `children` are the candidates proposed this generation (any status), `population` the
    survivors after selection. Novelty and S.U.N. are None without a `novelty_index`, the
    hypervolume is None without a `ref_point`. e_above_hull thresholds are eV/atom.
    """
    n_proposed = len(children)
    statuses = [c.status for c in children]
    n_valid = sum(s in _PASSED_VALIDITY for s in statuses)
    n_unique = sum(s in _UNIQUE for s in statuses)
    scored = [c for c in children if c.status == Status.SCORED and c.e_above_hull is not None]
    metrics: dict[str, float | int | None] = {
        "n_proposed": n_proposed,
        "n_valid": n_valid,
        "n_unique": n_unique,
        "n_scored": len(scored),
        "validity_rate": _rate(n_valid, n_proposed),
        "uniqueness_rate": _rate(n_unique, n_valid),
    }
    for threshold in STABILITY_THRESHOLDS:
        count = sum(c.e_above_hull <= threshold for c in scored)
        metrics[f"rate_e_hull_le_{threshold:g}"] = _rate(count, n_proposed)
    if novelty_index is None:
        metrics.update(n_novel=None, novelty_rate=None, n_sun=None, sun_rate=None)
    else:
        novel = [is_novel(c, novelty_index) for c in scored]
        n_sun = sum(n and c.e_above_hull <= stable_threshold for n, c in zip(novel, scored, strict=True))
        metrics.update(
            n_novel=sum(novel),
            novelty_rate=_rate(sum(novel), len(scored)),
            n_sun=n_sun,
            sun_rate=_rate(n_sun, n_proposed),
        )
    metrics["hypervolume"] = None if ref_point is None else hypervolume(population, objectives, ref_point)
    return metrics
