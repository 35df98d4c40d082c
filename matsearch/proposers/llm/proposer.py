"""LLMProposer: MatLLMSearch-style reproduction, mutation and crossover by a pretrained chat model.

Each prompt states the run's goal (every objective with its unit, direction or target and bounds),
shows up to `k_parents` scored parents and asks for `structures_per_prompt` children; with no
parents it asks zero-shot, and with a target composition it asks for crystal-structure prediction.
When the backend supports it, answers are constrained to a JSON schema of structures. Answers are
parsed and every structure is checked with the run's validity check; an answer with unreadable
pieces or invalid structures gets one repair prompt (by default) that quotes the problems back.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymatgen.core import Structure

from matsearch.candidate import Candidate
from matsearch.proposers.base import Proposal, RunContext
from matsearch.proposers.chemistry_text import composition_rule, systems_text
from matsearch.proposers.goals import DEFAULT_GOALS
from matsearch.proposers.llm.backends.base import (
    ChatBackend,
    ChatRequest,
    Completion,
    LLMConfigError,
    Message,
)
from matsearch.proposers.llm.bounded import PARSE_TIME_LIMIT_S, BoundedParser
from matsearch.proposers.llm.codecs import StructureFormat, encode
from matsearch.proposers.llm.parse import ParseResult
from matsearch.proposers.llm.schema import structures_schema
from matsearch.proposers.prompts import PromptTemplates, goal_text, load_templates
from matsearch.structures.limits import ChemistryLimits

logger = logging.getLogger(__name__)

SCORE_DECIMALS = 4  # eV/atom, GPa
MAX_REJECTIONS_PER_RESPONSE = 16  # failure records kept per answer (all are counted in extra)
OPERATOR_KINDS = ("reproduce", "mutate", "crossover")
MIN_PARENTS = {"reproduce": 1, "mutate": 1, "crossover": 2, "zero_shot": 0, "csp": 0}
FALLBACK = {"crossover": "mutate", "reproduce": "zero_shot", "mutate": "zero_shot"}


@dataclass
class _Prompt:
    kind: str  # a template kind: reproduce, mutate, crossover, zero_shot, csp
    parents: list[tuple[Candidate, Structure]]
    request: ChatRequest
    n_children: int
    repair_of: str | None = None  # prompt hash of the answer being repaired
    repair_attempt: int = 0


def _parent_structure(candidate: Candidate) -> Structure | None:
    return candidate.relaxed or candidate.structure


def _scores(candidate: Candidate, names: set[str]) -> dict[str, float]:
    """e_above_hull (eV/atom) and the scores named by the run's objectives (units in the goal)."""
    scores = {}
    if candidate.e_above_hull is not None and math.isfinite(candidate.e_above_hull):
        scores["e_above_hull"] = round(candidate.e_above_hull, SCORE_DECIMALS)
    for name, value in candidate.scores.items():
        if name in names and isinstance(value, int | float) and math.isfinite(value):
            scores[name] = round(float(value), SCORE_DECIMALS)
    return scores


class LLMProposer:
    """Proposer backed by a chat model. `name` is the backend's name ("openai" or "hf").

    `context` holds the run's objectives, selection and validity check (default: minimise
    e_above_hull, nothing checked here); `objective_text` is extra goal text from the user.
    temperature and max_tokens (answer tokens) are the sampling settings; `operator_weights`
    sets how often reproduce / mutate / crossover prompts are chosen (default: equal).
    Each answer is parsed in a worker process within `parse_time_limit_s` seconds.
    A CSP prompt shows the first `template_examples` of `context.examples` (decorated templates).
    """

    def __init__(
        self,
        backend: ChatBackend,
        templates: PromptTemplates | None = None,
        objective_text: str = "",
        *,
        context: RunContext | None = None,
        k_parents: int = 2,
        structures_per_prompt: int = 2,
        temperature: float = 1.0,
        max_tokens: int = 2048,
        repair_attempts: int = 1,
        structure_format: StructureFormat | str = StructureFormat.POSCAR,
        operator_weights: Mapping[str, float] | None = None,
        parse_time_limit_s: float = PARSE_TIME_LIMIT_S,
        template_examples: int = 0,
    ) -> None:
        if k_parents < 1 or structures_per_prompt < 1 or repair_attempts < 0:
            raise LLMConfigError(
                f"k_parents ({k_parents}) and structures_per_prompt ({structures_per_prompt}) "
                f"must be at least 1 and repair_attempts ({repair_attempts}) at least 0"
            )
        weights = dict(operator_weights or dict.fromkeys(OPERATOR_KINDS, 1.0))
        unknown = set(weights) - set(OPERATOR_KINDS)
        if unknown or not any(w > 0 for w in weights.values()) or any(w < 0 for w in weights.values()):
            raise LLMConfigError(
                f"operator_weights {weights} must give non-negative weights to "
                f"{', '.join(OPERATOR_KINDS)}, at least one positive"
            )
        self.backend = backend
        self.name = backend.name
        self.templates = templates or load_templates()
        self.objective_text = objective_text
        self.context = context or RunContext()
        self.score_names = {g.name for g in self.context.goals or DEFAULT_GOALS}
        self.k_parents = k_parents
        self.structures_per_prompt = structures_per_prompt
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.repair_attempts = repair_attempts
        self.structure_format = StructureFormat(structure_format)
        self.operator_weights = weights
        self.parse = BoundedParser(parse_time_limit_s)
        self.template_examples = template_examples

    def __repr__(self) -> str:
        return f"LLMProposer(backend={self.backend!r}, k_parents={self.k_parents})"

    # --- Proposer protocol ----------------------------------------------------------------

    def propose(
        self,
        parents: list[Candidate],
        n_children: int,
        limits: ChemistryLimits,
        rng: np.random.Generator,
    ) -> list[Proposal]:
        """Up to `n_children` structures that pass the run's validity check, every structure that
        fails it (extra "invalid_reason"), and one structure-less Proposal per unreadable piece
        of an answer (reason "parse_error: <code>") or refused request ("llm_error: <code>").

        Raises LLMUnavailableError when the model cannot be reached.
        """
        if n_children <= 0:
            return []
        usable = [(p, s) for p in parents if (s := _parent_structure(p)) is not None]
        n_prompts = math.ceil(n_children / self.structures_per_prompt)
        shares = [n_children // n_prompts + (i < n_children % n_prompts) for i in range(n_prompts)]
        prompts = [self._prompt(usable, n, limits, rng) for n in shares]
        proposals: list[Proposal] = []
        pending = prompts
        while pending:
            answers = self.backend.complete([p.request for p in pending])
            repairs = []
            for prompt, answer in zip(pending, answers, strict=True):
                result = self.parse(answer.text) if answer.error is None else None
                invalid = self._invalid(result)
                proposals += self._proposals(prompt, answer, result, invalid)
                problems = _problems(result, invalid)
                if result is not None and problems and prompt.repair_attempt < self.repair_attempts:
                    n_problems = len(invalid) + len(result.rejected)
                    repair = self._repair(prompt, answer, problems, n_problems)
                    if repair is not None:
                        repairs.append(repair)
            pending = repairs
        return self._cap(proposals, n_children)

    # --- prompts ----------------------------------------------------------------------------

    def _kind(self, n_parents: int, limits: ChemistryLimits, rng: np.random.Generator) -> str:
        if limits.target is not None:
            return "csp"
        kinds = [k for k in OPERATOR_KINDS if MIN_PARENTS[k] <= min(n_parents, self.k_parents)]
        weights = np.array([self.operator_weights.get(k, 0.0) for k in kinds])
        if not kinds or weights.sum() <= 0:
            return "zero_shot"
        return str(kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))])

    def _prompt(
        self,
        parents: list[tuple[Candidate, Structure]],
        n_children: int,
        limits: ChemistryLimits,
        rng: np.random.Generator,
    ) -> _Prompt:
        kind = self._kind(len(parents), limits, rng)
        wanted = 1 if kind == "mutate" else min(self.k_parents, len(parents))
        if kind == "zero_shot":
            wanted = 0
        chosen = (
            [parents[int(i)] for i in rng.choice(len(parents), size=wanted, replace=False)] if wanted else []
        )
        seed = int(rng.integers(0, 2**31 - 1))
        while True:
            messages = self._messages(kind, chosen, n_children, limits)
            needed = self.backend.count_tokens(messages) + self.max_tokens
            if needed <= self.backend.context_tokens:
                break
            if not chosen:
                raise LLMConfigError(
                    f"The {kind} prompt needs {needed} tokens (with max_tokens={self.max_tokens}) "
                    f"but the model's context holds {self.backend.context_tokens}; "
                    "lower max_tokens."
                )
            chosen = chosen[:-1]
            while len(chosen) < MIN_PARENTS[kind]:
                kind = FALLBACK[kind]
            logger.info("prompt too long for the context: %s with %d parent(s)", kind, len(chosen))
        schema = structures_schema(limits) if self.backend.structured_output else None
        request = ChatRequest(messages, self.temperature, self.max_tokens, seed, json_schema=schema)
        return _Prompt(kind, chosen, request, n_children)

    def _messages(
        self,
        kind: str,
        parents: list[tuple[Candidate, Structure]],
        n_children: int,
        limits: ChemistryLimits,
    ) -> list[Message]:
        entries = []
        for p, structure in parents:
            entry: dict[str, Any] = {
                "formula": structure.composition.reduced_formula,
                "scores": _scores(p, self.score_names),
            }
            entry[self.structure_format.value] = encode(structure, self.structure_format)
            entries.append(json.dumps(entry, ensure_ascii=False))
        if parents:
            basis = {str(e) for _, s in parents for e in s.composition.elements}
        elif limits.target is not None:
            basis = {str(e) for e in limits.target.elements}
        else:
            basis = set(limits.elements)
        values: dict[str, object] = {
            "parents_json": "[\n" + ",\n".join(entries) + "\n]",
            "n_parents": len(parents),
            "n_children": n_children,
            "elements": ", ".join(limits.elements),
            "systems": systems_text(limits),
            "max_atoms": limits.max_atoms,
            "max_elements": limits.max_elements,
            "target_formula": limits.target.reduced_formula if limits.target is not None else "",
            "composition_rule": composition_rule(basis, charge_neutrality=self.context.charge_neutrality),
            "objective_text": "",
            "answer_format": "",
            "error": "",
            "examples_json": "",
        }
        values["objective_text"] = goal_text(
            self.templates, self.context.goals, self.context.selection, self.objective_text, **values
        )
        answer = "answer_json" if self.backend.structured_output else "answer_poscar"
        values["answer_format"] = self.templates.render(answer, **values)
        user = self.templates.render(kind, **values)
        examples = self.context.examples[: self.template_examples] if kind == "csp" else ()
        if examples:
            values["examples_json"] = self._examples_json(examples)
            user += "\n\n" + self.templates.render("csp_examples", **values)
        return [
            {"role": "system", "content": self.templates.render("system", **values)},
            {"role": "user", "content": user},
        ]

    def _examples_json(self, examples: tuple[Structure, ...]) -> str:
        """Decorated templates as a JSON list: formula, the known material it decorates, structure."""
        entries = []
        for structure in examples:
            entry: dict[str, Any] = {
                "formula": structure.composition.reduced_formula,
                "decorates": f"{structure.properties.get('template_formula')} "
                f"({structure.properties.get('template_id')})",
            }
            entry[self.structure_format.value] = encode(structure, self.structure_format)
            entries.append(json.dumps(entry, ensure_ascii=False))
        return "[\n" + ",\n".join(entries) + "\n]"

    def _invalid(self, result: ParseResult | None) -> dict[int, str]:
        """Index in `result.structures` → why the run's validity check rejects that structure."""
        if result is None or self.context.check is None:
            return {}
        reasons = {i: self.context.check(s) for i, s in enumerate(result.structures)}
        return {i: reason for i, reason in reasons.items() if reason is not None}

    def _repair(self, prompt: _Prompt, answer: Completion, problems: str, n_children: int) -> _Prompt | None:
        """The conversation so far plus the problems found in the answer (parse errors and
        validity failures); None when it would not fit the context."""
        messages = [
            *prompt.request.messages,
            {"role": "assistant", "content": answer.text},
            {"role": "user", "content": self.templates.render("repair", error=problems)},
        ]
        needed = self.backend.count_tokens(messages) + self.max_tokens
        if needed > self.backend.context_tokens:
            logger.info("no repair prompt: %d tokens exceed the context", needed)
            return None
        request = ChatRequest(
            messages,
            self.temperature,
            self.max_tokens,
            prompt.request.seed,
            json_schema=prompt.request.json_schema,
        )
        return _Prompt(
            prompt.kind,
            prompt.parents,
            request,
            n_children,
            repair_of=answer.prompt_hash,
            repair_attempt=prompt.repair_attempt + 1,
        )

    # --- answers → proposals --------------------------------------------------------------

    def _proposals(
        self,
        prompt: _Prompt,
        answer: Completion,
        result: ParseResult | None,
        invalid: dict[int, str],
    ) -> list[Proposal]:
        """One Proposal per structure (those failing the validity check carry `invalid_reason`
        in extra; the engine rejects them with that reason) and one per unreadable piece."""
        operator = f"llm_{prompt.kind}"
        parent_ids = [p.id for p, _ in prompt.parents if p.id is not None]
        extra: dict[str, Any] = {
            "model": self.backend.model,
            "prompt_hash": answer.prompt_hash,
            "prompt": prompt.request.messages,
            "response": answer.text,
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "cost_usd": answer.cost_usd,
            "cached": answer.cached,
            "finish_reason": answer.finish_reason,
            "seed": prompt.request.seed,
            "output_mode": str(answer.output_mode),
        }
        if prompt.repair_of is not None:
            extra |= {"repair_of": prompt.repair_of, "repair_attempt": prompt.repair_attempt}
        if result is None:
            reason = f"llm_error: {answer.error}"
            return [
                Proposal(
                    None,
                    operator,
                    parent_ids,
                    self.name,
                    reason,
                    extra | {"parse_outcome": "llm_error"},
                )
            ]
        extra["response_outcome"] = result.outcome
        extra["rejections_in_response"] = len(result.rejected)
        outcome = "repaired" if prompt.repair_of is not None else "parsed"
        proposals = [
            Proposal(
                s,
                operator,
                parent_ids,
                self.name,
                None,
                extra | {"parse_outcome": outcome} | ({"invalid_reason": invalid[i]} if i in invalid else {}),
            )
            for i, s in enumerate(result.structures)
        ]
        proposals += [
            Proposal(
                None,
                operator,
                parent_ids,
                self.name,
                f"parse_error: {r.reason}",
                extra
                | {
                    "parse_outcome": str(r.reason),
                    "parse_detail": r.detail,
                    "parse_snippet": r.snippet,
                },
            )
            for r in result.rejected[:MAX_REJECTIONS_PER_RESPONSE]
        ]
        return proposals

    @staticmethod
    def _cap(proposals: list[Proposal], n_children: int) -> list[Proposal]:
        """Keep the first `n_children` structures that passed the validity check, the first
        `n_children` that failed it, and every unreadable-piece record."""
        kept, counts = [], {True: 0, False: 0}
        for p in proposals:
            if p.structure is not None:
                valid = "invalid_reason" not in p.extra
                counts[valid] += 1
                if counts[valid] > n_children:
                    continue
            kept.append(p)
        if max(counts.values()) > n_children:
            logger.info(
                "model gave %d valid and %d invalid structures for %d children; extras dropped",
                counts[True],
                counts[False],
                n_children,
            )
        return kept


def _problems(result: ParseResult | None, invalid: dict[int, str]) -> str:
    """What a repair prompt quotes back: one line per unreadable piece and per invalid structure."""
    if result is None:
        return ""
    lines = [result.error_report()] if result.rejected else []
    lines += [
        f"- structure {i + 1} ({result.structures[i].composition.reduced_formula}): {reason}"
        for i, reason in sorted(invalid.items())
    ]
    return "\n".join(lines)
