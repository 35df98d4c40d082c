"""Where a generation's children come from: generation 0's seeds, prototypes, CSP templates and
random starts; later generations' proposers, plus the next CSP templates.

Generation g draws its random numbers from `default_rng([seed, g, k])` (k = proposer index; 0 for
generation 0's random starts), so a resumed seeded run proposes what an uninterrupted one would.
"""

from __future__ import annotations

import logging

import numpy as np

from matsearch.candidate import Candidate
from matsearch.evaluation.fast_energy import fast_energies
from matsearch.proposers.base import Proposal, Proposer, StructureCheck
from matsearch.proposers.builtin import random_starts
from matsearch.proposers.registry import split_children
from matsearch.relax_defaults import PRERELAX_MODEL
from matsearch.spec import RunSpec
from matsearch.structures.known import KnownMaterials
from matsearch.structures.limits import ChemistryLimits
from matsearch.structures.prototypes import prototype_seeds
from matsearch.structures.seeds import initial_population
from matsearch.structures.templates import Template, template_decorations

logger = logging.getLogger(__name__)


def chemistry_limits(spec: RunSpec) -> ChemistryLimits:
    """The spec's chemistry as the plain limits seeds, proposers and validity checks use."""
    loose = frozenset(spec.chemistry.elements)
    return ChemistryLimits(
        elements=spec.chemistry.allowed_elements,
        max_atoms=spec.chemistry.max_atoms,
        max_elements=spec.chemistry.max_elements,
        target=spec.task.target_composition,
        systems=tuple(frozenset(system.split("-")) | loose for system in spec.chemistry.systems),
    )


def ranked_templates(
    spec: RunSpec, limits: ChemistryLimits, known: KnownMaterials, valid: StructureCheck
) -> list[Proposal]:
    """CSP: the target's decorated templates (structures.templates) that pass `valid`, ranked by
    the fast model's energy per atom of the rescaled decoration (mlip.prerelax, or PRERELAX_MODEL
    when that is null; one batched single point, no relaxation), lowest first; empty for generate
    runs or with both template shares 0."""
    task = spec.task
    if task.kind != "csp" or limits.target is None or task.template_share + task.template_operator_share <= 0:
        return []
    found: list[Template] = template_decorations(limits.target, limits.max_atoms, known)
    found = [t for t in found if valid(t.structure) is None]
    model = spec.mlip.prerelax or PRERELAX_MODEL
    energies = [
        e if np.isfinite(e) else None
        for e in fast_energies([t.structure for t in found], model, spec.mlip.device)
    ]
    ranked = sorted(zip(found, energies, strict=True), key=lambda te: (te[1] is None, te[1] or 0))
    logger.info("%d templates ranked by %s single points", len(ranked), model)
    return [
        Proposal(
            structure=t.structure,
            operator="template",
            parents=[],
            origin="template",
            extra=t.provenance() | {"screen_model": model, "screen_energy_per_atom": energy},
            valid=True,
        )
        for t, energy in ranked
    ]


def initial_proposals(
    spec: RunSpec, limits: ChemistryLimits, known: KnownMaterials, templates: list[Proposal]
) -> list[Proposal]:
    """Generation 0: the known materials inside the chemistry, most stable first (a quarter of the
    population: parents, not discoveries), then prototypes of other systems decorated with the
    run's elements, then random symmetric structures. CSP starts from the best-ranked `templates`
    (task.template_share of the population), then random structures: known answers are not handed
    in (templates never have the target's own formula)."""
    size = spec.population_size
    rng = np.random.default_rng([spec.seed, 0, 0])
    if spec.task.kind == "csp":
        chosen = templates[: round(spec.task.template_share * size)]
        return chosen + random_starts(limits, size - len(chosen), rng)
    known_seeds = initial_population(limits, max(1, size // 4), known)
    prototypes = prototype_seeds(limits, size - len(known_seeds), known)
    proposals = [
        Proposal(structure=s, operator="seed", parents=[], origin="known", extra={"material_id": mid})
        for s, mid in known_seeds
    ]
    proposals += [
        Proposal(structure=s, operator="prototype", parents=[], origin="builtin", extra=dict(s.properties))
        for s in prototypes
    ]
    return proposals + random_starts(limits, size - len(proposals), rng)


def later_proposals(
    spec: RunSpec,
    limits: ChemistryLimits,
    generation: int,
    parents: list[Candidate],
    proposers: list[Proposer],
    next_templates: list[Proposal],
) -> list[Proposal]:
    """A generation after the first: CSP's share of `next_templates` (the ranked templates not yet
    proposed), then the spec's proposers share the rest by their fractions."""
    n_children = spec.children_per_generation
    proposals = next_templates[: round(spec.task.template_operator_share * n_children)]
    counts = split_children(n_children - len(proposals), [p.fraction for p in spec.proposers])
    for k, (proposer, n) in enumerate(zip(proposers, counts, strict=True)):
        if n > 0:
            proposals += proposer.propose(
                parents, n, limits, np.random.default_rng([spec.seed, generation, k])
            )
    return proposals


def to_candidate(generation: int, proposal: Proposal) -> Candidate:
    """A new candidate of `generation` holding the proposal; rejected at once when the proposer
    produced no structure."""
    candidate = Candidate(
        id=None,
        generation=generation,
        origin=proposal.origin,
        operator=proposal.operator,
        parents=list(proposal.parents),
        structure=proposal.structure,
        extra=dict(proposal.extra),
        valid_when_proposed=proposal.valid,
    )
    if proposal.structure is None:
        candidate.reject(proposal.reason or "proposer produced no structure")
    return candidate
