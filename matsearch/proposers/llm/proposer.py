"""LLMProposer: MatLLMSearch-style reproduction, mutation and crossover by a pretrained chat model.

Each prompt shows up to `k_parents` scored parents and asks for `structures_per_prompt` children;
with no parents it asks zero-shot, and with a target composition it asks for crystal-structure
prediction. Answers are parsed; pieces that cannot be read get one repair prompt (by default)
that quotes the parse errors back to the model.
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
from matsearch.proposers.base import Proposal
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
from matsearch.proposers.prompts import PromptTemplates, load_templates
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


def _scores(candidate: Candidate) -> dict[str, float]:
    scores = {}
    if candidate.e_above_hull is not None and math.isfinite(candidate.e_above_hull):
        scores["e_above_hull"] = round(candidate.e_above_hull, SCORE_DECIMALS)
    for name, value in candidate.scores.items():
        if isinstance(value, int | float) and math.isfinite(value):
            scores[name] = round(float(value), SCORE_DECIMALS)
    return scores


class LLMProposer:
    """Proposer backed by a chat model. `name` is the backend's name ("openai" or "hf").

    temperature and max_tokens (answer tokens) are the sampling settings; `operator_weights`
    sets how often reproduce / mutate / crossover prompts are chosen (default: equal).
    Each answer is parsed in a worker process within `parse_time_limit_s` seconds.
    """

    def __init__(
        self,
        backend: ChatBackend,
        templates: PromptTemplates | None = None,
        objective_text: str = "",
        *,
        k_parents: int = 2,
        structures_per_prompt: int = 2,
        temperature: float = 1.0,
        max_tokens: int = 2048,
        repair_attempts: int = 1,
        structure_format: StructureFormat | str = StructureFormat.POSCAR,
        operator_weights: Mapping[str, float] | None = None,
        parse_time_limit_s: float = PARSE_TIME_LIMIT_S,
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
        self.k_parents = k_parents
        self.structures_per_prompt = structures_per_prompt
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.repair_attempts = repair_attempts
        self.structure_format = StructureFormat(structure_format)
        self.operator_weights = weights
        self.parse = BoundedParser(parse_time_limit_s)

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
        """Up to `n_children` structures, plus one structure-less Proposal per unreadable piece
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
                proposals += self._proposals(prompt, answer, result)
                if result is not None and result.rejected and prompt.repair_attempt < self.repair_attempts:
                    repair = self._repair(prompt, answer, result)
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
        request = ChatRequest(messages, self.temperature, self.max_tokens, seed)
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
                "scores": _scores(p),
            }
            entry[self.structure_format.value] = encode(structure, self.structure_format)
            entries.append(json.dumps(entry, ensure_ascii=False))
        values = {
            "parents_json": "[\n" + ",\n".join(entries) + "\n]",
            "n_parents": len(parents),
            "n_children": n_children,
            "elements": ", ".join(limits.elements),
            "max_atoms": limits.max_atoms,
            "max_elements": limits.max_elements,
            "target_formula": limits.target.reduced_formula if limits.target is not None else "",
            "objective_text": self.objective_text,
            "error": "",
        }
        return [
            {"role": "system", "content": self.templates.render("system", **values)},
            {"role": "user", "content": self.templates.render(kind, **values)},
        ]

    def _repair(self, prompt: _Prompt, answer: Completion, result: ParseResult) -> _Prompt | None:
        """The conversation so far plus the parse errors; None when it would not fit the context."""
        messages = [
            *prompt.request.messages,
            {"role": "assistant", "content": answer.text},
            {
                "role": "user",
                "content": self.templates.render("repair", error=result.error_report()),
            },
        ]
        needed = self.backend.count_tokens(messages) + self.max_tokens
        if needed > self.backend.context_tokens:
            logger.info("no repair prompt: %d tokens exceed the context", needed)
            return None
        request = ChatRequest(messages, self.temperature, self.max_tokens, prompt.request.seed)
        return _Prompt(
            prompt.kind,
            prompt.parents,
            request,
            prompt.n_children,
            repair_of=answer.prompt_hash,
            repair_attempt=prompt.repair_attempt + 1,
        )

    # --- answers → proposals --------------------------------------------------------------

    def _proposals(self, prompt: _Prompt, answer: Completion, result: ParseResult | None) -> list[Proposal]:
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
            Proposal(s, operator, parent_ids, self.name, None, extra | {"parse_outcome": outcome})
            for s in result.structures
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
        """Keep the first `n_children` structures (and every failure record)."""
        kept, n_structures = [], 0
        for p in proposals:
            if p.structure is not None:
                n_structures += 1
                if n_structures > n_children:
                    continue
            kept.append(p)
        if n_structures > n_children:
            logger.info("model gave %d structures for %d children; extras dropped", n_structures, n_children)
        return kept
