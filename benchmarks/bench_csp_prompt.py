"""Prompt cost of showing decorated templates in LLM CSP prompts (`template_examples`).

For the first `--targets` targets of bench_csp's panel, the CSP prompt (system + user message,
2 children asked, no parents, POSCAR structures) is built with 0, 2 and 4 example templates (the
first by substitution score; the run ranks them by energy, which changes which ones, not their
size) and its tokens counted as the OpenAI backend estimates them without a tokenizer
(characters / 4). Nothing is sent to a model.

    python benchmarks/bench_csp_prompt.py [--targets 5]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pymatgen.core import Composition

from matsearch.proposers.base import RunContext
from matsearch.proposers.llm import LLMProposer
from matsearch.proposers.llm.backends.openai_backend import OpenAIBackend
from matsearch.structures.known import KnownMaterials
from matsearch.structures.limits import ChemistryLimits
from matsearch.structures.templates import template_decorations

ROOT = Path(__file__).resolve().parents[1]
PANEL_FILE = ROOT / "benchmarks" / "results" / "csp_panel.json"
MAX_ATOMS = 8


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", type=int, default=5)
    args = parser.parse_args()
    known = KnownMaterials.load()
    backend = OpenAIBackend("any", base_url="http://127.0.0.1:9", api_key="unused")
    print("| target | tokens, 0 examples | 2 examples | 4 examples |")
    print("|---|---|---|---|")
    for _, formula, _ in json.loads(PANEL_FILE.read_text())[: args.targets]:
        target = Composition(formula)
        examples = tuple(t.structure for t in template_decorations(target, MAX_ATOMS, known)[:4])
        limits = ChemistryLimits(tuple(el.symbol for el in target.elements), MAX_ATOMS, target=target)
        tokens = []
        for n in (0, 2, 4):
            proposer = LLMProposer(backend, context=RunContext(examples=examples), template_examples=n)
            tokens.append(backend.count_tokens(proposer._messages("csp", [], 2, limits)))
        print(f"| {formula} | {' | '.join(str(t) for t in tokens)} |")


if __name__ == "__main__":
    main()
