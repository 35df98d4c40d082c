"""Per-generation discovery metrics: validity, uniqueness, novelty, stability, S.U.N., hypervolume.

Definitions (all rates are fractions in [0, 1]; a rate over an empty set is 0):

- validity rate = children that passed the validity checks / children proposed.
- uniqueness rate = valid children that are not duplicates of an earlier candidate of the run,
  before or after relaxation / valid children.
- novelty: a relaxed child is novel when it reproduces no material of the known-materials index
  (scoring/discovery.py; StructureMatcher with the run's tolerances). novelty rate = novel /
  scored children (children that relaxed into an earlier candidate are not scored).
- stability rates: scored children with e_above_hull ≤ t / children proposed, for each threshold
  t in `STABILITY_THRESHOLDS` (eV/atom); ≤ 0 is "stable", ≤ 0.1 MatLLMSearch's "metastable".
- S.U.N.: scored children that are stable (e_above_hull ≤ `stable_threshold`), unique after
  relaxation, novel and not artefacts (elemental or molecular, unless admitted).
- hypervolume of the surviving population in objective space (pymoo's HV on
  `selection.minimisation_matrix`), measured against a fixed reference point; see
  `hypervolume_reference` for the rule.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
from pymoo.indicators.hv import HV

from matsearch.candidate import Candidate, Novelty, Status
from matsearch.scoring.discovery import is_artefact, is_discovery, is_new
from matsearch.selection import minimisation_matrix
from matsearch.spec import Objective

logger = logging.getLogger(__name__)

STABILITY_THRESHOLDS = (0.0, 0.03, 0.1)  # eV/atom
# Hypervolume reference of minimised built-in objectives: the worst value that still counts.
DEFAULT_REFERENCE = {
    "e_above_hull": 0.1,  # eV/atom: MatLLMSearch's metastability threshold
    "formation_energy": 0.0,  # eV/atom: only compounds more stable than the elements
    "deformation_energy": 1.0,  # eV/atom released on relaxation
}
_PASSED_VALIDITY = frozenset({Status.VALID, Status.SCORED, Status.FAILED, Status.DUPLICATE})
_UNIQUE = frozenset({Status.VALID, Status.SCORED, Status.FAILED})


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


def generation_metrics(
    children: Sequence[Candidate],
    population: Sequence[Candidate],
    objectives: Sequence[Objective],
    ref_point: Sequence[float] | None,
    *,
    stable_threshold: float = 0.0,
    admit: Sequence[str] = (),
) -> dict[str, float | int | None]:
    """Metrics of one generation (see the module docstring for definitions), JSON-ready.

    `children` are the candidates proposed this generation (any status, marked by
    scoring/discovery.py once relaxed), `population` the survivors after selection; `admit` lists
    the artefact flags counted as discoveries anyway. The hypervolume is None without a
    `ref_point`. e_above_hull thresholds are eV/atom.
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
    n_novel = sum(is_new(c) for c in scored)
    n_sun = sum(is_discovery(c, stable_threshold, admit) for c in scored)
    metrics.update(
        n_relaxed_duplicates=sum(c.duplicate_of is not None for c in children),
        n_known=sum(c.novelty == Novelty.KNOWN for c in scored),
        n_novel=n_novel,
        n_artefacts=sum(is_artefact(c, admit) for c in scored),
        novelty_rate=_rate(n_novel, len(scored)),
        n_sun=n_sun,
        sun_rate=_rate(n_sun, n_proposed),
    )
    metrics["hypervolume"] = None if ref_point is None else hypervolume(population, objectives, ref_point)
    return metrics
