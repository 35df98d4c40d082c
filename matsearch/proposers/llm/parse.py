"""Find crystal structures in a chat model's answer. The answer is untrusted text: read, never run.

`parse_response` accepts JSON (complete, inside code fences, or cut off mid-way), POSCAR blocks
with per-site labels, CIF data blocks, prose around all of these and several structures per
answer. It never raises: every piece it cannot read becomes a `Rejection` with a reason code.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pymatgen.core import Structure

from matsearch.proposers.llm.codecs import (
    DecodeError,
    is_scale_line,
    is_vector_line,
    read_cif,
    read_json_structure,
    read_poscar,
    tokens,
)

logger = logging.getLogger(__name__)

SNIPPET_CHARS = 300  # longest offending text kept with a rejection
MAX_ANSWER_CHARS = 200_000  # characters of an answer that are read; the rest is rejected
MAX_LINE_CHARS = 10_000  # longer lines are skipped with a rejection (no structure line is that long)
MAX_JSON_DEPTH = 32  # nesting below this is ignored (answers are not that deep)


class RejectReason(StrEnum):
    """Why a piece of an answer gave no structure."""

    EMPTY_RESPONSE = "empty_response"  # the answer is blank
    NO_STRUCTURE = "no_structure"  # nothing in the answer looks like a structure
    NO_LATTICE = "no_lattice"  # sites or a structure object without three lattice vectors
    BAD_NUMBER = "bad_number"  # a number that does not parse or is NaN/infinite
    UNKNOWN_ELEMENT = "unknown_element"  # a species label that is not a chemical element
    NO_SPECIES = "no_species"  # sites whose elements are not given anywhere
    NO_SITES = "no_sites"  # a lattice with no sites after it
    BAD_SITE = "bad_site"  # a JSON site that is not an object with an element and coordinates
    SITE_COUNT_MISMATCH = "site_count_mismatch"  # header counts, labels or coordinates disagree
    SINGULAR_LATTICE = "singular_lattice"  # lattice vectors that do not span 3D space
    TRUNCATED = "truncated"  # the answer stops inside a structure
    JSON_ERROR = "json_error"  # a JSON object with a syntax error and no readable structure
    CIF_ERROR = "cif_error"  # a CIF block pymatgen cannot read
    INVALID_STRUCTURE = "invalid_structure"  # pymatgen refused the structure for another reason
    ANSWER_TOO_LONG = "answer_too_long"  # only the first MAX_ANSWER_CHARS were read
    LINE_TOO_LONG = "line_too_long"  # a line longer than MAX_LINE_CHARS was skipped
    TIME_LIMIT = "time_limit"  # parsing the answer took longer than its time limit
    INTERNAL_ERROR = "internal_error"  # a parser bug; logged with the answer


@dataclass(frozen=True)
class Rejection:
    """A piece of an answer that gave no structure: `reason` code, `detail` in words, `snippet`."""

    reason: str
    snippet: str
    detail: str


@dataclass
class ParseResult:
    """Structures read from one answer and the pieces that could not be read."""

    structures: list[Structure] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        """'ok' (all pieces read), 'partial' (some read, some rejected) or 'failed' (none read)."""
        if not self.structures:
            return "failed"
        return "partial" if self.rejected else "ok"

    def error_report(self) -> str:
        """One line per rejected piece, as handed back to the model in a repair prompt."""
        return "\n".join(
            f"- {r.reason}: {r.detail}" + (f' (near: "{_oneline(r.snippet, 80)}")' if r.snippet else "")
            for r in self.rejected
        )


def _oneline(text: str, limit: int) -> str:
    flat = " / ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _snippet(text: str) -> str:
    text = text.strip()
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


Piece = Structure | Rejection


def parse_response(text: str) -> ParseResult:
    """All structures in an answer, plus a Rejection (with a reason code) per unreadable piece."""
    try:
        pieces = _parse(text if isinstance(text, str) else str(text))
    except Exception as exc:  # last guard: a parser bug must not stop a run
        logger.exception("parser failed on an answer of %d characters", len(str(text)))
        pieces = [Rejection(RejectReason.INTERNAL_ERROR, _snippet(str(text)), f"parser bug: {exc!r}")]
    result = ParseResult()
    for piece in pieces:
        if isinstance(piece, Rejection):
            result.rejected.append(piece)
        else:
            result.structures.append(piece)
    return result


def _parse(text: str) -> list[Piece]:
    if not text.strip():
        return [Rejection(RejectReason.EMPTY_RESPONSE, "", "the answer is empty")]
    cap: list[Piece] = []
    if len(text) > MAX_ANSWER_CHARS:
        detail = f"the answer has {len(text)} characters; only the first {MAX_ANSWER_CHARS} were read"
        cap.append(Rejection(RejectReason.ANSWER_TOO_LONG, "", detail))
        text = text[:MAX_ANSWER_CHARS]
    pieces: list[Piece] = []
    cursor = 0
    for start, end, found in _json_regions(text):
        pieces += _scan_text(text[cursor:start], at_end=False)
        pieces += found
        cursor = end
    pieces += _scan_text(text[cursor:], at_end=True)
    if not pieces:
        pieces.append(
            Rejection(
                RejectReason.NO_STRUCTURE,
                _snippet(text),
                "no lattice, POSCAR, CIF or JSON structure found",
            )
        )
    return pieces + cap


# --- JSON ------------------------------------------------------------------------------------

_JSON_START = re.compile(r"\{\s*\"|\[\s*[{\"]")


def _parse_int(digits: str) -> int | float:
    """JSON integers; very long ones become floats (inf when huge) instead of raising."""
    return int(digits) if len(digits) <= 300 else float(digits)


# strict=False: raw newlines inside strings are common
_DECODER = json.JSONDecoder(strict=False, parse_int=_parse_int)


def _json_regions(text: str) -> list[tuple[int, int, list[Piece]]]:
    """(start, end, pieces) of each JSON value in order; unclosed JSON runs to the end."""
    regions = []
    pos = 0
    while (match := _JSON_START.search(text, pos)) is not None:
        start = match.start()
        try:
            value, end = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError) as exc:  # ValueError: also integers of > 4300 digits
            close = _closing_index(text, start)
            if close is None:
                regions.append((start, len(text), _salvage_truncated(text[start:])))
                break
            regions.append((start, close, _salvage_broken(text[start:close], str(exc))))
            pos = close
            continue
        found: list[Piece] = []
        _walk(value, found, 0)
        regions.append((start, end, found))
        pos = end
    return regions


def _closing_index(text: str, start: int) -> int | None:
    """Index just after the bracket that closes the one at `start` (string-aware), or None."""
    depth = 0
    in_string = escaped = False
    for i in range(start, len(text)):
        c = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


_CUT_MARK = "__truncated__"  # key added to every JSON object that the answer left unclosed


def _safe_cuts(fragment: str) -> list[tuple[int, str]]:
    """Places where an unclosed JSON fragment can be cut and closed into valid JSON:
    (cut index, closing text), latest last. Objects closed this way get a `_CUT_MARK` key."""
    cuts: list[tuple[int, str]] = []
    stack: list[list[Any]] = []  # [bracket, has_content]
    in_string = escaped = False

    def closing() -> str:
        parts = []
        for bracket, has_content in reversed(stack):
            if bracket == "[":
                parts.append("]")
            else:
                parts.append(("," if has_content else "") + f'"{_CUT_MARK}":true}}')
        return "".join(parts)

    for i, c in enumerate(fragment):
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
            continue
        if c.isspace():
            continue
        if stack and c not in "}]":
            stack[-1][1] = True
        if c == '"':
            in_string = True
        elif c in "{[":
            if len(stack) >= MAX_JSON_DEPTH:
                break  # nesting this deep is not an answer worth salvaging
            stack.append([c, False])
            cuts.append((i + 1, closing()))
        elif c in "}]":
            if stack:
                stack.pop()
            if stack:
                cuts.append((i + 1, closing()))
        elif c == "," and stack:
            cuts.append((i, closing()))
    return cuts


_DANGLING_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{0,3})?$")  # an escape sequence cut off at the end


def _unescape(fragment: str) -> str:
    return fragment.replace("\\n", "\n").replace("\\t", " ").replace('\\"', '"').replace("\\\\", "\\")


def _is_truncation(piece: Piece) -> bool:
    return isinstance(piece, Rejection) and piece.reason == RejectReason.TRUNCATED


def _salvage_truncated(fragment: str) -> list[Piece]:
    """Complete values of a JSON answer that stops mid-way, plus what the cut-off tail gives.
    Structure objects the cut left open are rejected as truncated, never read with missing sites."""
    found: list[Piece] = []
    tail = fragment
    for cut, closing in reversed(_safe_cuts(fragment)[-64:]):
        try:
            value = _DECODER.decode(fragment[:cut] + closing)
        except (ValueError, RecursionError):
            continue
        _walk(value, found, 0)
        tail = fragment[cut:]
        break
    tail_pieces = _scan_text(_unescape(_DANGLING_ESCAPE.sub("", tail)), at_end=True)
    if any(_is_truncation(p) for p in found + tail_pieces):
        return found + tail_pieces
    leftover = _snippet(tail.lstrip(",]} \n"))
    if any(c.isdigit() for c in leftover) or not (found or tail_pieces):
        tail_pieces.append(Rejection(RejectReason.TRUNCATED, leftover, "the answer ends inside a JSON value"))
    return found + tail_pieces


def _json_snippet(value: Any) -> str:
    try:
        return _snippet(json.dumps(value))
    except ValueError:  # integers too long to print
        return _snippet(repr(value)[: SNIPPET_CHARS * 2])


def _salvage_broken(fragment: str, error: str) -> list[Piece]:
    """A closed JSON value with a syntax error: the POSCAR/CIF text inside it, else json_error."""
    found = _scan_text(_unescape(fragment), at_end=False)
    return found or [Rejection(RejectReason.JSON_ERROR, _snippet(fragment), f"invalid JSON: {error}")]


_COORD_KEYS = {
    "coords",
    "frac_coords",
    "fractional_coords",
    "abc",
    "positions",
    "cart_coords",
    "xyz",
}
_SPECIES_KEYS = {"species", "elements", "symbols", "atoms", "sites"}


def _walk(value: Any, found: list[Piece], depth: int) -> None:
    """Structures in a decoded JSON value: structure objects, and POSCAR/CIF text in strings."""
    if depth > MAX_JSON_DEPTH:
        return
    if isinstance(value, dict):
        keys = set(value)
        if "lattice" in keys or (keys & _COORD_KEYS and keys & _SPECIES_KEYS):
            if _CUT_MARK in keys:
                snippet = _json_snippet({k: v for k, v in value.items() if k != _CUT_MARK})
                found.append(
                    Rejection(RejectReason.TRUNCATED, snippet, "the answer ends inside this structure")
                )
                return
            try:
                found.append(read_json_structure(value))
            except DecodeError as exc:
                found.append(Rejection(RejectReason(exc.reason), _json_snippet(value), exc.detail))
            except Exception as exc:  # a parser bug in one structure keeps the others
                logger.exception("parser failed on one JSON structure")
                found.append(
                    Rejection(RejectReason.INTERNAL_ERROR, _json_snippet(value), f"parser bug: {exc!r}")
                )
            return
        for k, v in value.items():
            if k != _CUT_MARK:
                _walk(v, found, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _walk(v, found, depth + 1)
    elif isinstance(value, str) and "\n" in value.strip():
        found += _scan_text(value, at_end=False)


# --- plain text: CIF and POSCAR -------------------------------------------------------------


def _scan_text(text: str, *, at_end: bool) -> list[Piece]:
    """CIF data blocks and POSCAR blocks in text (code fences are block boundaries)."""
    if not text.strip():
        return []
    at_end = at_end and not text.rstrip().endswith("```")  # a closed code block was not cut off
    lines = ["" if line.strip().startswith("```") else line for line in text.splitlines()]
    pieces: list[tuple[int, Piece]] = []
    for i, line in enumerate(lines):
        if len(line) > MAX_LINE_CHARS:
            detail = f"a line of {len(line)} characters was skipped (limit {MAX_LINE_CHARS})"
            pieces.append((i, Rejection(RejectReason.LINE_TOO_LONG, _snippet(line), detail)))
            lines[i] = ""
    for first, last in _cif_blocks(lines):
        block = "\n".join(lines[first:last])
        block_at_end = at_end and last >= len(lines) - 1  # at most a cut-off line follows
        try:
            pieces += [(first, s) for s in read_cif(block, at_end=block_at_end)]
        except DecodeError as exc:
            pieces.append((first, Rejection(RejectReason(exc.reason), _snippet(block), exc.detail)))
        lines[first:last] = [""] * (last - first)
    pieces += _poscar_blocks(lines, at_end)
    pieces.sort(key=lambda p: p[0])
    return [p for _, p in pieces]


def _cif_blocks(lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) line ranges of CIF data blocks: from 'data_' to the end of the atom rows."""
    blocks = []
    i = 0
    while i < len(lines):
        if not lines[i].strip().lower().startswith("data_"):
            i += 1
            continue
        first, j, rows = i, i + 1, 0
        in_atoms = False
        while j < len(lines) and not lines[j].strip().lower().startswith("data_"):
            stripped = lines[j].strip()
            if "_atom_site_fract_" in stripped.lower() or "_atom_site_cartn_" in stripped.lower():
                in_atoms = True
            elif in_atoms and not stripped.startswith(("_", "loop_", "#")):
                if len(stripped.split()) >= 4 and any(c.isdigit() for c in stripped):
                    rows += 1
                elif rows:
                    break
            if stripped == "" and j > first and lines[j - 1].strip() == "" and not in_atoms:
                break  # two blank lines before any atoms: the block was abandoned
            j += 1
        blocks.append((first, j))
        i = j
    return blocks


def _is_anchor(lines: list[str], i: int) -> bool:
    """True when a POSCAR starts at line i: a scale line and a lattice row, or three lattice rows
    directly followed by a species or counts line."""
    n = len(lines)
    if is_scale_line(lines[i]) and i + 1 < n and is_vector_line(lines[i + 1]):
        return True
    if i + 3 < n and all(is_vector_line(lines[i + k]) for k in range(3)):
        if i > 0 and is_scale_line(lines[i - 1]):
            return False
        head = tokens(lines[i + 3])
        return bool(head) and (all(t.isdigit() for t in head) or all(t[:1].isalpha() for t in head))
    return False


def _poscar_blocks(lines: list[str], at_end: bool) -> list[tuple[int, Piece]]:
    pieces: list[tuple[int, Piece]] = []
    used = [False] * len(lines)
    i = 0
    while i < len(lines):
        if not _is_anchor(lines, i):
            i += 1
            continue
        first = i - 1 if i > 0 and lines[i - 1].strip() else i  # include the comment line
        try:
            structure, end = read_poscar(lines, i, at_end=at_end)
            pieces.append((i, structure))
        except DecodeError as exc:
            end = exc.end if exc.end is not None else i + 1
            end = min(max(end, i + 1), len(lines))
            snippet = "\n".join(lines[first:end])
            pieces.append((i, Rejection(RejectReason(exc.reason), _snippet(snippet), exc.detail)))
        end = max(end, i + 1)
        used[first:end] = [True] * (end - first)
        i = end
    pieces += _orphans(lines, used)
    return pieces


# Line patterns for orphaned site lists. Each is unambiguous: a run of digits or spaces can be
# matched in only one way, so a failed match costs time linear in the line (no backtracking blow-up
# on repetition loops such as "Na1 0.3333…3 0.5 0.5 (approx)").
_MODE_LINE = re.compile(r"^\s*(?:direct|cartesian|fractional)(?:\s+coordinates)?\s*:?\s*$", re.IGNORECASE)
_NUM = r"[-+]?[\d.]+"
_GAP = r"(?:[,\s]+|(?=[-+]))"  # separators, or none before a sign ("0.5-0.25")
_LABELLED_SITE = re.compile(
    rf"^\s*(?:{_NUM}[,\s]+){{3}}[A-Z][a-z]?\d*[+-]?\s*$"  # "0 0 0 Na1"
    rf"|^\s*[A-Z][a-z]?\d*[,\s]+{_NUM}{_GAP}{_NUM}{_GAP}{_NUM}[,\s]*$"  # "Na1 0 0 0"
)


def _orphans(lines: list[str], used: list[bool]) -> list[tuple[int, Piece]]:
    """Site lists or coordinate-mode lines that belong to no lattice: one 'no_lattice' per run."""
    pieces: list[tuple[int, Piece]] = []
    run: list[int] = []
    for i, line in enumerate([*lines, ""]):
        orphan = i < len(lines) and not used[i] and (_MODE_LINE.match(line) or _LABELLED_SITE.match(line))
        if orphan:
            run.append(i)
        elif run:
            snippet = "\n".join(lines[run[0] : run[-1] + 1])
            pieces.append(
                (
                    run[0],
                    Rejection(RejectReason.NO_LATTICE, _snippet(snippet), "sites without lattice vectors"),
                )
            )
            run = []
    return pieces
