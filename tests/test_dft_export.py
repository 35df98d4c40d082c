"""VASP input export with pymatgen's MP input sets; POTCARs are licensed and not configured here."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from pymatgen.core import SETTINGS, Lattice, Structure
from pymatgen.io.vasp import Incar, Kpoints, Poscar

from matsearch.candidate import Candidate, Status
from matsearch.dft_export import PotcarSkippedWarning, export_vasp, potcar_problem


@pytest.fixture
def no_potcars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SETTINGS, "PMG_VASP_PSP_DIR", None)


def _candidate(cid: int, structure: Structure, e_hull: float) -> Candidate:
    return Candidate(
        id=cid,
        generation=2,
        origin="builtin",
        operator="substitution",
        parents=[3, 5],
        structure=structure.copy(),
        relaxed=structure,
        status=Status.SCORED,
        energy_per_atom=-6.5,
        e_above_hull=e_hull,
        converged=True,
        scores={"e_above_hull": e_hull, "deformation_energy": 0.05},
    )


@pytest.fixture
def candidates() -> list[Candidate]:
    rocksalt = [[0, 0, 0], [0.5, 0.5, 0.5]]
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], rocksalt)
    feo = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.33), ["Fe", "O"], rocksalt)
    return [_candidate(7, nacl.get_primitive_structure(), 0.0), _candidate(12, feo, 0.04)]


def test_mp_relax_set_without_potcars(tmp_path: Path, candidates, no_potcars) -> None:
    with pytest.warns(PotcarSkippedWarning) as record:
        written = export_vasp(candidates, tmp_path)
    skipped = [w for w in record if w.category is PotcarSkippedWarning]
    assert len(skipped) == 1  # one message for the whole export, not one per candidate
    message = str(skipped[0].message)
    assert message.startswith("POTCAR files were not written because PMG_VASP_PSP_DIR is not set;")
    assert "pmg config --add PMG_VASP_PSP_DIR" in message
    nacl_dir, feo_dir = tmp_path / "0007_NaCl", tmp_path / "0012_FeO"
    assert written == [
        nacl_dir / name
        for name in ("INCAR", "KPOINTS", "POSCAR", "POTCAR.spec", "0007_NaCl.cif", "0007_NaCl.json")
    ] + [
        feo_dir / name
        for name in ("INCAR", "KPOINTS", "POSCAR", "POTCAR.spec", "0012_FeO.cif", "0012_FeO.json")
    ]
    assert all(p.is_file() for p in written)
    assert not (nacl_dir / "POTCAR").exists()

    poscar = Poscar.from_file(nacl_dir / "POSCAR").structure
    assert poscar.matches(candidates[0].relaxed) and len(poscar) == 2
    assert Structure.from_file(nacl_dir / "0007_NaCl.cif").matches(candidates[0].relaxed)
    assert (nacl_dir / "POTCAR.spec").read_text().split() == ["Na_pv", "Cl"]

    incar = Incar.from_file(nacl_dir / "INCAR")
    assert incar["ENCUT"] == 520 and incar["ISIF"] == 3 and not incar.get("LDAU", False)
    fe_incar = Incar.from_file(feo_dir / "INCAR")  # MP's GGA+U for an iron oxide
    assert fe_incar["LDAU"] is True and fe_incar["LDAUU"] == [5.3, 0]
    assert Kpoints.from_file(nacl_dir / "KPOINTS").kpts[0] != [1, 1, 1]

    meta = json.loads((feo_dir / "0012_FeO.json").read_text())
    assert meta["id"] == 12 and meta["parents"] == [3, 5]
    assert meta["e_above_hull_ev_per_atom"] == 0.04 and meta["energy_per_atom_ev"] == -6.5
    assert meta["vasp_input_set"] == "MPRelaxSet"
    assert meta["potcar_symbols"] == ["Fe_pv", "O"] and meta["potcar_written"] is False


def test_r2scan_set_uses_kspacing(tmp_path: Path, candidates, no_potcars) -> None:
    with pytest.warns(PotcarSkippedWarning):
        written = export_vasp(candidates[:1], tmp_path, input_set="MPScanRelaxSet")
    names = [p.name for p in written]
    assert names == ["INCAR", "POSCAR", "POTCAR.spec", "0007_NaCl.cif", "0007_NaCl.json"]
    incar = Incar.from_file(tmp_path / "0007_NaCl" / "INCAR")
    assert incar["METAGGA"].lower() == "r2scan" and incar["KSPACING"] > 0
    meta = json.loads((tmp_path / "0007_NaCl" / "0007_NaCl.json").read_text())
    assert meta["vasp_input_set"] == "MPScanRelaxSet"


def test_psp_dir_that_does_not_exist(tmp_path: Path, candidates, monkeypatch) -> None:
    missing = str(tmp_path / "no_potcars_here")
    monkeypatch.setitem(SETTINGS, "PMG_VASP_PSP_DIR", missing)
    assert potcar_problem() == f"PMG_VASP_PSP_DIR is '{missing}', which is not a folder"
    with pytest.warns(PotcarSkippedWarning, match="which is not a folder"):
        export_vasp(candidates[:1], tmp_path / "out")


def test_nothing_to_export_gives_no_warning(tmp_path: Path, no_potcars) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert export_vasp([], tmp_path) == []


def test_unknown_input_set(tmp_path: Path, candidates) -> None:
    with pytest.raises(
        ValueError,
        match="^unknown VASP input set 'MPStaticSet'; allowed: MPRelaxSet, MPScanRelaxSet$",
    ):
        export_vasp(candidates, tmp_path, input_set="MPStaticSet")
