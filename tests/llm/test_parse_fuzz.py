"""Fuzzing parse_response with malformed chat answers: nothing escapes, every piece has a reason,
and a cut-off answer never yields a structure with sites missing."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymatgen.core import Element, Lattice, Structure

from matsearch.proposers.llm import RejectReason, parse_response
from matsearch.proposers.llm.codecs import to_cif, to_json, to_poscar
from matsearch.proposers.llm.parse import SNIPPET_CHARS

from .crystals import rocksalt, wurtzite

STRUCTURES = [
    rocksalt(),
    wurtzite(),
    Structure(
        Lattice([[4.1, 0.1, 0], [0.3, 3.9, 0], [0, 0.2, 6.0]]),
        ["Li", "Co", "O", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25], [0.75, 0.75, 0.75]],
    ),
]
FORMULAS = {s.composition.formula for s in STRUCTURES}
REASONS = {r.value for r in RejectReason} - {RejectReason.INTERNAL_ERROR.value}
GARBAGE = [
    "nan",
    "inf",
    "1e999",
    "abc",
    "1/0",
    "--1",
    "0.5.5",
    "",
    "Xx",
    "{",
    "]",
    '"',
    "\\n",
    "```",
    "data_",
]


def render(structures: list[Structure], style: str) -> str:
    """An answer in one of the shapes chat models produce."""
    if style == "json_poscar":
        return json.dumps(
            {
                "structures": [
                    {"formula": s.composition.reduced_formula, "poscar": to_poscar(s)} for s in structures
                ]
            }
        )
    if style == "fenced_poscar":
        return (
            "Here are my proposals.\n"
            + "\n".join(f"```\n{to_poscar(s)}\n```" for s in structures)
            + "\nDone."
        )
    if style == "plain_poscar":
        return "\n\n".join(to_poscar(s) for s in structures)
    if style == "cif":
        return "\n".join(f"```cif\n{to_cif(s)}```" for s in structures)
    return "```json\n" + json.dumps([to_json(s) for s in structures], indent=1) + "\n```"


STYLES = ["json_poscar", "fenced_poscar", "plain_poscar", "cif", "json_objects"]
answers = st.builds(
    render,
    st.lists(st.sampled_from(STRUCTURES), min_size=1, max_size=3),
    st.sampled_from(STYLES),
)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A valid answer damaged by one to three edits of the kinds seen in real model output."""
    text = draw(answers)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(
                [
                    "cut",
                    "delete_line",
                    "dup_line",
                    "swap_lines",
                    "char",
                    "number",
                    "element",
                    "insert",
                ]
            )
        )
        lines = text.split("\n")
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        k = draw(st.integers(0, max(len(lines) - 1, 0)))
        if kind == "cut":
            text = text[: draw(st.integers(1, max(len(text), 1)))]
            continue
        if kind == "delete_line":
            del lines[i]
        elif kind == "dup_line":
            lines.insert(i, lines[i])
        elif kind == "swap_lines":
            lines[i], lines[k] = lines[k], lines[i]
        elif kind == "char" and lines[i]:
            j = draw(st.integers(0, len(lines[i]) - 1))
            lines[i] = lines[i][:j] + draw(st.characters()) + lines[i][j + 1 :]
        elif kind == "number":
            words = lines[i].split(" ")
            j = draw(st.integers(0, len(words) - 1))
            words[j] = draw(st.sampled_from(GARBAGE))
            lines[i] = " ".join(words)
        elif kind == "element":
            lines[i] = lines[i].replace(
                draw(st.sampled_from(["Na", "Cl", "Ga", "N", "Li", "Co", "O"])),
                draw(st.text("QXZqxz", min_size=1, max_size=2)),
            )
        elif kind == "insert":
            lines.insert(i, draw(st.text(max_size=40)))
        text = "\n".join(lines)
    return text


def check(text: str) -> list[Structure]:
    result = parse_response(text)
    assert result.structures or result.rejected, "every answer gives a structure or a rejection"
    for r in result.rejected:
        assert r.reason in REASONS, r
        assert isinstance(r.detail, str) and r.detail
        assert isinstance(r.snippet, str) and len(r.snippet) <= SNIPPET_CHARS
    for s in result.structures:
        assert isinstance(s, Structure) and len(s) >= 1
        assert np.all(np.isfinite(s.lattice.matrix)) and np.all(np.isfinite(s.frac_coords))
        assert s.volume > 0
        assert all(isinstance(e, Element) for e in s.composition.elements)
    return result.structures


@settings(max_examples=1000, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_malformed_answers_never_escape(text: str) -> None:
    check(text)


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers, st.floats(0, 1))
def test_cut_off_answers_never_yield_partial_structures(text: str, fraction: float) -> None:
    cut = text[: int(len(text) * fraction)]
    for s in check(cut):
        assert s.composition.formula in FORMULAS
    assert {r.reason for r in parse_response(cut).rejected} <= {
        "truncated",
        "empty_response",
        "no_structure",
    }


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.text(max_size=400) | st.text(alphabet='{}[]",:0123456789.\n -NaClxyz_', max_size=400))
def test_arbitrary_text(text: str) -> None:
    check(text)
