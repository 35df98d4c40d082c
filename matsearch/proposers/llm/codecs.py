"""Structure ↔ text for prompts: POSCAR with a species label on each site, CIF, JSON.

Writers use fixed decimals so prompts stay compact. Readers are tolerant of what chat models write
(labels out of element order, commas and brackets around numbers, fractions like 1/3) and raise
`DecodeError` with a machine-readable reason code when a block cannot be read.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections import Counter
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import numpy as np
from pymatgen.core import Composition, Element, Lattice, Structure
from pymatgen.io.cif import CifParser, CifWriter

LATTICE_DECIMALS = 4  # Å
COORD_DECIMALS = 4  # fractional coordinates
MIN_CELL_SKEW = 1e-4  # |det| / (|a||b||c|) below this: the three lattice vectors are (nearly) coplanar


class StructureFormat(StrEnum):
    """How parents are written into prompts (the parser reads all three regardless)."""

    POSCAR = "poscar"
    CIF = "cif"
    JSON = "json"


class DecodeError(ValueError):
    """A block could not be read. `reason` is a RejectReason code; `end` is the index of the first
    line after the block (POSCAR only) so that scanning can continue behind it; `cut` says the
    offending token could be the start of a valid one (what an answer cut off mid-token leaves)."""

    def __init__(self, reason: str, detail: str, end: int | None = None, cut: bool = False) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.end = end
        self.cut = cut


# --- writers --------------------------------------------------------------------------------


def _symbol(site: Any) -> str:
    specie = site.specie
    return getattr(specie, "element", specie).symbol


def to_poscar(structure: Structure, decimals: int = COORD_DECIMALS) -> str:
    """POSCAR (VASP 5, direct coordinates) with the element symbol after each site's coordinates."""
    s = structure.get_sorted_structure()
    symbols = [_symbol(site) for site in s]
    order = list(dict.fromkeys(symbols))
    lines = [s.composition.reduced_formula, "1.0"]
    lines += [" ".join(f"{x:.{LATTICE_DECIMALS}f}" for x in row) for row in s.lattice.matrix]
    lines.append(" ".join(order))
    lines.append(" ".join(str(symbols.count(e)) for e in order))
    lines.append("Direct")
    for site, symbol in zip(s, symbols, strict=True):
        lines.append(" ".join(f"{x:.{decimals}f}" for x in site.frac_coords) + f" {symbol}")
    return "\n".join(lines)


def to_cif(structure: Structure, decimals: int = COORD_DECIMALS) -> str:
    """CIF written by pymatgen (P1, `decimals` significant figures beyond the integer part)."""
    return str(CifWriter(structure, significant_figures=decimals + 1))


def to_json(structure: Structure, decimals: int = COORD_DECIMALS) -> dict[str, Any]:
    """{"lattice": 3×3 Å, "species": [...], "coords": fractional} with fixed decimals."""
    return {
        "lattice": [[round(float(x), LATTICE_DECIMALS) for x in row] for row in structure.lattice.matrix],
        "species": [_symbol(site) for site in structure],
        "coords": [[round(float(x), decimals) for x in site.frac_coords] for site in structure],
    }


def encode(structure: Structure, fmt: StructureFormat) -> str | dict[str, Any]:
    """A structure in the prompt format `fmt` (text for POSCAR/CIF, a JSON-ready dict for JSON)."""
    if fmt is StructureFormat.POSCAR:
        return to_poscar(structure)
    if fmt is StructureFormat.CIF:
        return to_cif(structure)
    return to_json(structure)


# --- small readers shared by all formats -----------------------------------------------------

_FRACTION = re.compile(r"^([-+]?\d+(?:\.\d*)?)/(\d+(?:\.\d*)?)$")
# what a number cut short looks like; unambiguous (one way to match a digit run: linear time)
_NUMBER_START = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d*)?(?:[eE][-+]?|/)?")
_LETTERS = re.compile(r"^[A-Za-z]+")


def read_number(token: str) -> float:
    """A finite float from a token like '0.25', '-1e-3', '1/3'; else DecodeError('bad_number')."""
    token = token.strip()
    match = _FRACTION.match(token)
    try:
        value = float(match[1]) / float(match[2]) if match else float(token)
    except (ValueError, ZeroDivisionError):
        cut = _NUMBER_START.fullmatch(token) is not None
        raise DecodeError("bad_number", f"'{token[:40]}' is not a number", cut=cut) from None
    if not math.isfinite(value):
        raise DecodeError("bad_number", f"'{token[:40]}' is not a finite number")
    return value


def read_element(label: str) -> str:
    """The element symbol a site label starts with ('Na', 'Na1', 'Fe3+', 'o' → 'O');
    DecodeError('unknown_element') when it is not a chemical element."""
    match = _LETTERS.match(label.strip())
    letters = match[0] if match else ""
    symbol = letters[:1].upper() + letters[1:].lower()
    if not symbol or len(symbol) > 2 or not Element.is_valid_symbol(symbol):
        cut = len(symbol) == 1 and any(e.symbol.startswith(symbol) for e in Element)
        raise DecodeError("unknown_element", f"'{label[:40]}' is not a chemical element symbol", cut=cut)
    return symbol


def build_structure(matrix: Any, species: list[str], coords: Any, *, cartesian: bool = False) -> Structure:
    """A pymatgen Structure after checks with reason codes: counts, finite numbers, a 3D cell."""
    try:
        m = np.asarray(matrix, dtype=float)
        xyz = np.asarray(coords, dtype=float)
    except (TypeError, ValueError):
        raise DecodeError("bad_number", "lattice or coordinates contain non-numbers") from None
    if m.shape != (3, 3):
        raise DecodeError("no_lattice", f"the lattice has shape {m.shape}, not 3×3")
    if not species:
        raise DecodeError("no_sites", "the structure has no sites")
    if xyz.ndim != 2 or xyz.shape[1] != 3 or len(xyz) != len(species):
        raise DecodeError(
            "site_count_mismatch", f"{len(species)} species but coordinates of shape {xyz.shape}"
        )
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(xyz))):
        raise DecodeError("bad_number", "lattice or coordinates contain NaN or infinity")
    norms = np.linalg.norm(m, axis=1)
    if np.any(norms == 0) or abs(np.linalg.det(m)) / np.prod(norms) < MIN_CELL_SKEW:
        raise DecodeError("singular_lattice", "the three lattice vectors do not span a 3D cell")
    try:
        return Structure(Lattice(m), species, xyz, coords_are_cartesian=cartesian)
    except Exception as exc:  # pymatgen may refuse for reasons we do not model
        raise DecodeError("invalid_structure", f"pymatgen refused the structure: {exc}") from None


# --- POSCAR ----------------------------------------------------------------------------------


def tokens(line: str) -> list[str]:
    """Whitespace tokens, without the commas, brackets and quotes models put around numbers."""
    return re.sub(r"[,\[\]()\"';]", " ", line).split()


def is_numberish(token: str) -> bool:
    """True for tokens meant as numbers (they contain a digit, or spell nan/inf)."""
    return any(c.isdigit() for c in token) or token.lower().lstrip("+-") in (
        "nan",
        "inf",
        "infinity",
    )


def is_vector_line(line: str) -> bool:
    """Exactly three number-like tokens: a lattice row."""
    t = tokens(line)
    return len(t) == 3 and all(is_numberish(x) and x[:1] in "+-.0123456789" for x in t)


def is_scale_line(line: str) -> bool:
    t = tokens(line)
    return len(t) == 1 and is_numberish(t[0]) and t[0][:1] in "+-.0123456789"


def _is_species_line(t: list[str]) -> bool:
    return bool(t) and all(x[:1].isalpha() and not is_numberish(x) for x in t)


def _is_counts_line(t: list[str]) -> bool:
    return bool(t) and all(x.isdigit() for x in t)


_FLAGS = {"T", "F"}


def _keyword(line: str, initials: str) -> bool:
    """A words-only line starting with one of `initials` ('Direct', 'Cartesian', 'Selective')."""
    t = tokens(line)
    return bool(t) and t[0][:1] in initials and not any(is_numberish(x) for x in t)


def _site(line: str, selective: bool) -> tuple[list[float], str | None] | None:
    """Coordinates and label of a site line, or None when the line is not a site line."""
    t = tokens(line)
    if len(t) >= 4 and t[0][:1].isalpha() and all(is_numberish(x) for x in t[1:4]):
        t = t[1:4] + [t[0]]  # "Na 0.0 0.0 0.0": label first
    if len(t) < 3 or not all(is_numberish(x) for x in t[:3]):
        return None
    coords = [read_number(x) for x in t[:3]]
    rest = t[3:]
    if rest and (selective or (len(rest) >= 4 and set(rest[:3]) <= _FLAGS)) and set(rest[:3]) <= _FLAGS:
        rest = rest[3:]
    return coords, (rest[0] if rest else None)


def _species(
    labels: list[str | None],
    header: list[str] | None,
    counts: list[int] | None,
    fail: Callable[..., DecodeError],
    end: int,
) -> list[str]:
    """Species of each site: from the per-site labels when every site has one (the header is then
    rebuilt from them, so sites may come in any element order), else from the header. Labels and
    header must agree on the composition when both are given."""
    from_labels: list[str] | None = None
    if all(label is not None for label in labels):
        from_labels = []
        for i, label in enumerate(labels):
            try:
                from_labels.append(read_element(str(label)))
            except DecodeError as exc:
                cut = exc.cut and i == len(labels) - 1
                raise fail(exc.reason, f"site {i + 1}: {exc.detail}", end, cut) from None
    from_header: list[str] | None = None
    if header is not None and counts is not None:
        try:
            if len(header) != len(counts):
                raise DecodeError(
                    "site_count_mismatch", f"{len(header)} species names but {len(counts)} counts"
                )
            from_header = [read_element(e) for e, c in zip(header, counts, strict=True) for _ in range(c)]
        except DecodeError as exc:
            if from_labels is None:
                raise fail(exc.reason, exc.detail, end, False) from None
    if from_labels is not None and from_header is not None:
        by_labels, by_header = Counter(from_labels), Counter(from_header)
        if by_labels != by_header:
            raise fail(
                "site_count_mismatch",
                f"the site labels give {_formula(by_labels)} but the header says {_formula(by_header)}",
                end,
            )
    species = from_labels or from_header
    if species is None:
        raise fail("no_species", "sites have no element labels and there is no species header", end)
    return species


def _formula(counts: Counter[str]) -> str:
    return "".join(f"{e}{n}" for e, n in counts.items())


def read_poscar(lines: list[str], start: int, *, at_end: bool) -> tuple[Structure, int]:
    """Read the POSCAR whose scale line (or first lattice row) is `lines[start]`.

    Per-site labels, when every site has one, define the species and the header is rebuilt from
    them; otherwise the species and counts lines are used. `at_end` says the text ends where
    `lines` ends, so a block cut short there is 'truncated' rather than inconsistent.
    Returns the structure and the index of the first line after the block.
    """
    n = len(lines)
    j = start

    def fail(reason: str, detail: str, stop: int, cut_token: bool | None = None) -> DecodeError:
        """The error for this block. At the end of the answer, a block that stops short, or whose
        last line holds a token cut short (`cut_token`), was cut off: 'truncated'."""
        if at_end and stop >= n - 1 and cut_token is not False:
            return DecodeError("truncated", f"the answer ends inside a structure ({detail})", stop)
        return DecodeError(reason, detail, stop)

    # (error, line, could be a cut-off token), raised once the block's end is known
    first_error: tuple[DecodeError, int, bool] | None = None
    scale = 1.0
    if is_scale_line(lines[j]):
        try:
            scale = read_number(tokens(lines[j])[0])
        except DecodeError as exc:
            first_error = (DecodeError(exc.reason, f"scale factor: {exc.detail}"), j, exc.cut)
        j += 1
    rows = []
    while len(rows) < 3 and j < n and is_vector_line(lines[j]):
        try:
            rows.append([read_number(x) for x in tokens(lines[j])])
        except DecodeError as exc:
            detail = f"lattice row {len(rows) + 1}: {exc.detail}"
            first_error = first_error or (DecodeError(exc.reason, detail), j, exc.cut)
            rows.append([0.0, 0.0, 0.0])
        j += 1
    if len(rows) < 3:
        short = DecodeError("no_lattice", f"{len(rows)} lattice rows instead of three")
        first_error = first_error or (short, j, True)
    header: list[str] | None = None
    counts: list[int] | None = None
    if (
        j < n
        and _is_species_line(tokens(lines[j]))
        and not lines[j].strip().lower().startswith(("direct", "cartesian", "selective"))
    ):
        header = tokens(lines[j])
        j += 1
    if j < n and _is_counts_line(tokens(lines[j])):
        counts = [int(x) for x in tokens(lines[j])]
        j += 1
    selective = j < n and _keyword(lines[j], "sS")
    j += int(selective)
    cartesian = False
    if j < n and _keyword(lines[j], "dDcCkK"):
        cartesian = _keyword(lines[j], "cCkK")
        j += 1
    coords: list[list[float]] = []
    labels: list[str | None] = []
    while j < n:
        try:
            site = _site(lines[j], selective)
        except DecodeError as exc:
            detail = f"site {len(coords) + 1}: {exc.detail}"
            first_error = first_error or (DecodeError(exc.reason, detail), j, exc.cut)
            site = ([0.0, 0.0, 0.0], None)
        if site is None:
            break
        coords.append(site[0])
        labels.append(site[1])
        j += 1
    if first_error is not None:
        error, line, cut = first_error
        raise fail(error.reason, error.detail, j, cut and line >= n - 1)
    if not coords:
        raise fail("no_sites", "no site coordinates after the lattice", j)
    if counts is not None and sum(counts) != len(coords):
        raise fail(
            "site_count_mismatch",
            f"the header counts {sum(counts)} sites but {len(coords)} site lines follow",
            j,
        )
    species = _species(labels, header, counts, fail, j)
    matrix = np.array(rows)
    if scale < 0:  # VASP convention: a negative scale is the cell volume in Å³
        volume = abs(float(np.linalg.det(matrix)))
        scale = (abs(scale) / volume) ** (1 / 3) if volume > 0 else 0.0
    try:
        structure = build_structure(
            matrix * scale,
            species,
            np.array(coords) * (scale if cartesian else 1.0),
            cartesian=cartesian,
        )
    except DecodeError as exc:
        raise DecodeError(exc.reason, exc.detail, j) from None
    return structure, j


# --- CIF -------------------------------------------------------------------------------------


_FORMULA_SUM = re.compile(r"^[ \t]*_chemical_formula_sum\s+['\"]?([^'\"\n]+)", re.MULTILINE)


def _formula_sum(block: str) -> Composition | None:
    """The reduced composition stated in _chemical_formula_sum, if any and readable."""
    match = _FORMULA_SUM.search(block)
    try:
        return Composition(match[1]).reduced_composition if match else None
    except Exception:  # an unreadable formula states nothing we can check
        return None


def read_cif(block: str, *, at_end: bool) -> list[Structure]:
    """Structures in one CIF data block, read by pymatgen; DecodeError when none can be read."""
    lower = block.lower()
    if "_cell_length_a" not in lower:
        raise DecodeError("truncated" if at_end else "no_lattice", "the CIF block has no _cell_length_a")
    if "_atom_site_fract_x" not in lower and "_atom_site_cartn_x" not in lower:
        reason = "truncated" if at_end else "no_sites"
        raise DecodeError(reason, "the CIF block has no _atom_site coordinates")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structures = CifParser.from_str(block).parse_structures(primitive=False, on_error="raise")
    except Exception as exc:  # pymatgen raises many types on malformed CIF
        reason = "truncated" if at_end else "cif_error"
        raise DecodeError(reason, f"pymatgen could not read the CIF: {str(exc)[:200]}") from None
    if not structures:
        raise DecodeError("cif_error", "the CIF block holds no structure")
    for s in structures:
        for specie in s.composition:
            if not Element.is_valid_symbol(getattr(specie, "symbol", "")):
                raise DecodeError("unknown_element", f"'{specie}' is not a chemical element symbol")
        if not s.is_ordered:
            raise DecodeError("invalid_structure", "the CIF has partly occupied sites; give ordered sites")
        stated = _formula_sum(block)
        if stated is not None and not stated.almost_equals(s.composition.reduced_composition):
            reason = "truncated" if at_end else "site_count_mismatch"
            raise DecodeError(
                reason,
                f"_chemical_formula_sum is {stated.reduced_formula} but the sites give {s.formula}",
            )
        build_structure(s.lattice.matrix, [e.symbol for e in s.species], s.frac_coords)
    return structures


# --- JSON ------------------------------------------------------------------------------------

_COORD_KEYS = ("coords", "frac_coords", "fractional_coords", "abc", "positions")
_CART_KEYS = ("cart_coords", "cartesian_coords", "xyz")
_SPECIES_KEYS = ("species", "elements", "symbols", "atoms")


def _json_lattice(value: Any) -> Any:
    if isinstance(value, dict):
        if "matrix" in value:
            return value["matrix"]
        keys = ("a", "b", "c", "alpha", "beta", "gamma")
        if all(k in value for k in keys):
            params = [read_number(str(value[k])) for k in keys]
            try:
                return Lattice.from_parameters(*params).matrix.tolist()
            except Exception:
                raise DecodeError("singular_lattice", "the lattice parameters give no 3D cell") from None
        raise DecodeError("no_lattice", "the lattice object has neither 'matrix' nor a b c alpha beta gamma")
    if isinstance(value, list) and len(value) == 6 and all(not isinstance(x, list) for x in value):
        return _json_lattice(dict(zip(("a", "b", "c", "alpha", "beta", "gamma"), value, strict=True)))
    return value


def _json_numbers(value: Any, what: str) -> Any:
    """Nested lists of numbers (strings like "0.5" or "1/3" accepted)."""
    if isinstance(value, list):
        return [_json_numbers(v, what) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, dict):
        raise DecodeError("bad_number", f"{what} holds {json.dumps(value)[:40]}, not a number")
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a float, e.g. 400 digits
            raise DecodeError("bad_number", f"{what} holds an integer too large for a float") from None
        if not math.isfinite(number):
            raise DecodeError("bad_number", f"{what} holds a non-finite number")
        return number
    return read_number(str(value))


def _json_sites(obj: dict[str, Any]) -> tuple[list[str], Any, bool]:
    """Species, coordinates and whether they are Cartesian, from parallel lists or 'sites'."""
    if isinstance(obj.get("sites"), list):
        species, coords, cartesian = [], [], False
        for site in obj["sites"]:
            if not isinstance(site, dict):
                raise DecodeError("bad_site", "a site is not an object")
            label = site.get("species", site.get("element", site.get("label")))
            if isinstance(label, list) and label and isinstance(label[0], dict):
                label = label[0].get("element")  # pymatgen as_dict()
            if not isinstance(label, str):
                raise DecodeError("no_species", "a site has no element name")
            species.append(read_element(label))
            key = next((k for k in _COORD_KEYS + _CART_KEYS if k in site), None)
            if key is None:
                raise DecodeError("bad_site", f"site '{label[:10]}' has no coordinates")
            cartesian = key in _CART_KEYS
            coords.append(_json_numbers(site[key], "coordinates"))
        return species, coords, cartesian
    skey = next((k for k in _SPECIES_KEYS if k in obj), None)
    ckey = next((k for k in _COORD_KEYS + _CART_KEYS if k in obj), None)
    if skey is None or not isinstance(obj[skey], list):
        raise DecodeError("no_species", "the object has no list of species")
    if ckey is None:
        raise DecodeError("no_sites", "the object has no coordinates")
    if not all(isinstance(x, str) for x in obj[skey]):
        raise DecodeError("unknown_element", "species must be element symbols")
    cartesian = ckey in _CART_KEYS or bool(obj.get("cartesian", False))
    return [read_element(x) for x in obj[skey]], _json_numbers(obj[ckey], "coordinates"), cartesian


def read_json_structure(obj: dict[str, Any]) -> Structure:
    """A structure from {"lattice": 3×3 | {matrix} | {a,b,c,alpha,beta,gamma}, "species", "coords"}
    or {"lattice", "sites": [{"species"/"element", "coords"/"abc"/"xyz"}]} (also pymatgen's
    as_dict)."""
    if "lattice" not in obj:
        raise DecodeError("no_lattice", "the object has no 'lattice'")
    matrix = _json_numbers(_json_lattice(obj["lattice"]), "lattice")
    species, coords, cartesian = _json_sites(obj)
    return build_structure(matrix, species, coords, cartesian=cartesian)
