"""parse_response on answers shaped like real chat-model output, one reason code at a time."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from matsearch.proposers.llm import RejectReason, parse_response
from matsearch.proposers.llm.codecs import to_cif, to_json, to_poscar

from .crystals import rocksalt

NACL = rocksalt()
KCL = rocksalt(6.29, "K")
CIF_HEAD = (
    "data_x\n_cell_length_a 5\n_cell_length_b 5\n_cell_length_c 5\n_cell_angle_alpha 90\n"
    "_cell_angle_beta 90\n_cell_angle_gamma 90\nloop_\n_atom_site_label\n"
    "_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n"
)
POSCAR_2 = "NaCl\n1.0\n5 0 0\n0 5 0\n0 0 5\nNa Cl\n1 1\nDirect\n0 0 0 Na\n0.5 0.5 0.5 Cl"


def same(a: Structure, b: Structure) -> bool:
    return StructureMatcher().fit(a, b)


def reasons(text: str) -> list[str]:
    return [str(r.reason) for r in parse_response(text).rejected]


def test_poscar_writer_labels_every_site_with_fixed_decimals() -> None:
    lines = to_poscar(NACL).splitlines()
    assert lines[:2] == ["NaCl", "1.0"]
    assert lines[2] == "5.6400 0.0000 0.0000"
    assert lines[5:8] == ["Na Cl", "4 4", "Direct"]
    assert all(len(line.split()) == 4 and line.split()[3] in ("Na", "Cl") for line in lines[8:])
    assert len(lines) == 16


@pytest.mark.parametrize(
    "writer", [to_poscar, to_cif, lambda s: json.dumps(to_json(s))], ids=["poscar", "cif", "json"]
)
def test_round_trip_of_every_writer(writer) -> None:
    result = parse_response(writer(KCL))
    assert result.rejected == []
    assert len(result.structures) == 1 and same(result.structures[0], KCL)
    assert result.structures[0].lattice.a == pytest.approx(6.29, abs=1e-4)


def test_json_answer_in_code_fence_with_prose_and_two_structures() -> None:
    answer = {
        "structures": [
            {"formula": "NaCl", "poscar": to_poscar(NACL)},
            {"formula": "KCl", "poscar": to_poscar(KCL)},
        ]
    }
    text = (
        "Sure! Here are two candidates:\n```json\n"
        + json.dumps(answer, indent=2)
        + "\n```\nBoth are rock salts."
    )
    result = parse_response(text)
    assert result.outcome == "ok"
    assert [s.composition.reduced_formula for s in result.structures] == ["NaCl", "KCl"]


def test_json_with_raw_newlines_inside_strings() -> None:
    text = '{"structures": [{"formula": "NaCl", "poscar": "' + POSCAR_2 + '"}]}'
    result = parse_response(text)
    assert result.rejected == [] and result.structures[0].composition.reduced_formula == "NaCl"


def test_labels_out_of_element_order_rebuild_the_header() -> None:
    lines = to_poscar(NACL).splitlines()
    sites = lines[8:]
    shuffled = [sites[i] for i in (4, 0, 5, 1, 6, 2, 7, 3)]  # Cl, Na, Cl, Na, ...
    result = parse_response("\n".join(lines[:8] + shuffled))
    assert result.rejected == []
    s = result.structures[0]
    assert [e.symbol for e in s.species][:2] == ["Cl", "Na"]
    assert same(s, NACL)


def test_labels_win_over_a_wrong_species_header() -> None:
    text = POSCAR_2.replace("Na Cl\n1 1", "Cl Na\n1 1")  # header says Cl first, labels say Na first
    s = parse_response(text).structures[0]
    assert s[0].specie.symbol == "Na" and s[1].specie.symbol == "Cl"


def test_header_species_used_when_sites_have_no_labels() -> None:
    text = "NaCl\n1.0\n5 0 0\n0 5 0\n0 0 5\nNa Cl\n1 1\nDirect\n0 0 0\n0.5 0.5 0.5"
    s = parse_response(text).structures[0]
    assert [e.symbol for e in s.species] == ["Na", "Cl"]


def test_cartesian_coordinates_and_negative_scale_as_volume() -> None:
    text = "NaCl\n-125.0\n1 0 0\n0 1 0\n0 0 1\nNa Cl\n1 1\nCartesian\n0 0 0 Na\n0.5 0.5 0.5 Cl"
    s = parse_response(text).structures[0]
    assert s.volume == pytest.approx(125.0)
    # VASP scales Cartesian coordinates by the same factor as the lattice: 0.5 × 5 = 2.5 Å
    np.testing.assert_allclose(s[1].coords, [2.5, 2.5, 2.5], atol=1e-9)


def test_labels_first_commas_and_fractions_are_read() -> None:
    lattice = "[4.0, 0.0, 0.0]\n[0.0, 4.0, 0.0]\n[0.0, 0.0, 4.0]"
    text = f"LiF\n1.0\n{lattice}\nDirect\nLi 0 0 0\nF 1/2 1/2 1/2"
    s = parse_response(text).structures[0]
    assert s.composition.reduced_formula == "LiF"
    np.testing.assert_allclose(s[1].frac_coords, [0.5, 0.5, 0.5])


def test_json_structure_objects_in_several_layouts() -> None:
    params = {
        "lattice": {"a": 5, "b": 5, "c": 5, "alpha": 90, "beta": 90, "gamma": 90},
        "sites": [{"element": "Na", "abc": [0, 0, 0]}, {"element": "Cl", "abc": [0.5, 0.5, 0.5]}],
    }
    text = json.dumps([params, NACL.as_dict()])
    result = parse_response(text)
    assert result.rejected == []
    assert [len(s) for s in result.structures] == [2, 8]
    assert same(result.structures[1], NACL)


def test_cif_block_among_prose() -> None:
    text = "I propose this structure.\n```cif\n" + to_cif(KCL) + "```\nIt should be stable."
    result = parse_response(text)
    assert result.rejected == [] and same(result.structures[0], KCL)


def test_truncated_json_keeps_the_complete_structures() -> None:
    answer = json.dumps(
        {
            "structures": [
                {"formula": "NaCl", "poscar": to_poscar(NACL)},
                {"formula": "KCl", "poscar": to_poscar(KCL)},
            ]
        }
    )
    cut = answer[: answer.index("0.5000 0.5000 0.5000 Cl", answer.index("KCl"))]
    result = parse_response(cut)
    assert [s.composition.reduced_formula for s in result.structures] == ["NaCl"]
    assert [str(r.reason) for r in result.rejected] == ["truncated"]
    assert "KCl" in result.rejected[0].snippet
    assert result.outcome == "partial"


def test_truncated_json_structure_object_is_not_read_with_missing_sites() -> None:
    text = '{"lattice": [[5,0,0],[0,5,0],[0,0,5]], "species": ["Na","Cl"], "coords": [[0,0,0],[0.5,0.5'
    assert reasons(text) == ["truncated"]


def test_truncated_plain_poscar() -> None:
    assert reasons(to_poscar(NACL)[:-40]) == ["truncated"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty_response"),
        ("I cannot help with crystal structures today.", "no_structure"),
        ("Direct\n0 0 0 Na\n0.5 0.5 0.5 Cl", "no_lattice"),
        ('{"species": ["Na", "Cl"], "coords": [[0, 0, 0], [0.5, 0.5, 0.5]]}', "no_lattice"),
        (POSCAR_2.replace("0 5 0\n0 0 5", "0 5 0\n0 5.0.1 5"), "bad_number"),
        (POSCAR_2.replace("0.5 0.5 0.5 Cl", "0.5 nan 0.5 Cl"), "bad_number"),
        (
            '{"lattice": [[5,0,0],[0,5,0],[0,0,5]], "species": ["Na"], "coords": [[0, "x", 0]]}',
            "bad_number",
        ),
        (POSCAR_2.replace("0.5 0.5 0.5 Cl", "0.5 0.5 0.5 Qx"), "unknown_element"),
        (POSCAR_2.replace("1 1", "1 2") + "\n\nThat is all.", "site_count_mismatch"),
        (
            '{"lattice": [[5,0,0],[0,5,0],[0,0,5]], "species": ["Na", "Cl"], "coords": [[0,0,0]]}',
            "site_count_mismatch",
        ),
        (POSCAR_2.replace("0 0 5", "5 5 0"), "singular_lattice"),
        ("NaCl\n1.0\n5 0 0\n0 5 0\n0 0 5\nDirect\n0 0 0\n0.5 0.5 0.5\n\nok", "no_species"),
        ("NaCl\n1.0\n5 0 0\n0 5 0\n0 0 5\nNa Cl\n1 1\n\nThat is my answer.", "no_sites"),
        ('```json\n{"structures": [{"formula": "NaCl" "poscar": 5}]}\n```', "json_error"),
        (CIF_HEAD + "Qq1 0 0 0\n```", "unknown_element"),
        (CIF_HEAD + "Na1 0 0 0\nCl1 0.5 0.5 0.5 0.5\n```", "cif_error"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 25 else None,
)
def test_reason_codes(text: str, reason: str) -> None:
    result = parse_response(text)
    assert result.structures == []
    assert [str(r.reason) for r in result.rejected] == [reason]
    assert all(r.detail for r in result.rejected)


def test_good_and_bad_pieces_in_one_answer_and_the_repair_report() -> None:
    bad = POSCAR_2.replace("0.5 0.5 0.5 Cl", "0.5 0.5 0.5 Qx")
    result = parse_response(f"First:\n{POSCAR_2}\n\nSecond:\n{bad}\n\nDone.")
    assert len(result.structures) == 1 and result.outcome == "partial"
    report = result.error_report()
    assert report.startswith("- unknown_element: site 2: 'Qx' is not a chemical element symbol")
    assert "near:" in report


def test_every_reason_code_is_an_enum_member() -> None:
    assert {r.value for r in RejectReason} >= {
        "no_lattice",
        "bad_number",
        "unknown_element",
        "site_count_mismatch",
        "singular_lattice",
        "truncated",
        "json_error",
    }


def test_lattice_matrix_kept_exactly() -> None:
    lattice = Lattice([[3.1, 0.2, 0.0], [-1.4, 2.9, 0.0], [0.1, 0.3, 7.7]])
    s = Structure(lattice, ["Ga", "N"], [[0.1, 0.2, 0.3], [0.6, 0.7, 0.8]])
    parsed = parse_response(to_poscar(s)).structures[0]
    np.testing.assert_allclose(parsed.lattice.matrix, lattice.matrix, atol=1e-4)
