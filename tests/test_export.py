"""Export of a real (small) run: extxyz readable by ASE with the stored energy, forces and stress;
symmetrised CIFs; species-sorted POSCARs; a manifest with every objective; a used folder refused."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase import units
from ase.io import read as ase_read
from ase.stress import full_3x3_to_voigt_6_stress
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Element, Structure
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.io.vasp import Poscar
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from matsearch import Run, Search
from matsearch.errors import ExportWarning
from matsearch.export import export_candidates
from matsearch.export_formats import EXPORT_FORMATS
from matsearch.export_job import candidate_stem
from matsearch.mlip import load_model
from matsearch.structures.symmetry import space_group

FITNESS = '''
def atoms(structure, results):
    """Atoms in the relaxed cell (count)."""
    return float(len(structure))
'''


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("export-run")
    (folder / "fit.py").write_text(FITNESS)
    spec = {
        "name": "export",
        "seed": 2,
        "output": str(folder / "runs"),
        "chemistry": {"elements": ["Na", "Cl"], "max_atoms": 8},
        "population_size": 3,
        "generations": 0,
        "mlip": {"steps": 50},
        "custom": {"atoms": f"{folder / 'fit.py'}:atoms"},
        "objectives": [{"name": "e_above_hull"}, {"name": "deformation_energy"}, {"name": "custom:atoms"}],
    }
    return Search(spec).run()


@pytest.fixture(scope="module")
def exported(run: Run, tmp_path_factory: pytest.TempPathFactory) -> tuple[list, Path]:
    chosen = run.best()
    assert len(chosen) >= 2
    out = tmp_path_factory.mktemp("export") / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExportWarning)  # a current run stores forces and stress
        export_candidates(chosen, out, list(EXPORT_FORMATS), run.spec().objectives, cif_p1=True)
    return chosen, out


def test_extxyz_reads_back_with_the_stored_energy_forces_and_stress(exported) -> None:
    chosen, out = exported
    frames = ase_read(out / "candidates.extxyz", index=":")
    assert len(frames) == len(chosen)
    for atoms, candidate in zip(frames, chosen, strict=True):
        assert atoms.info["id"] == candidate.id
        stored_ev = candidate.energy_per_atom * len(atoms)
        assert atoms.get_potential_energy() == pytest.approx(stored_ev, rel=1e-12)
        np.testing.assert_allclose(atoms.get_forces(), candidate.forces, atol=1e-8)  # 8 decimals
        expected = full_3x3_to_voigt_6_stress(np.array(candidate.stress_gpa) * units.GPa)  # GPa → eV/Å³
        np.testing.assert_allclose(atoms.get_stress(), expected, atol=1e-12)


def test_exported_forces_and_stress_are_the_models_at_the_relaxed_structure(exported) -> None:
    """Units and signs: the model's own ASE calculator on the exported frame gives the same numbers."""
    chosen, out = exported
    calculator = load_model("default", device="cpu").as_ase_calculator()
    for atoms in ase_read(out / "candidates.extxyz", index=":"):
        stored_forces, stored_stress = atoms.get_forces(), atoms.get_stress()
        atoms.calc = calculator
        np.testing.assert_allclose(atoms.get_forces(), stored_forces, atol=2e-4)  # eV/Å
        np.testing.assert_allclose(atoms.get_stress(), stored_stress, atol=2e-6)  # eV/Å³ (0.3 MPa)


def test_cif_is_symmetrised_and_p1_cell_is_the_relaxed_one(exported) -> None:
    chosen, out = exported
    manifest = pd.read_csv(out / "candidates.csv").set_index("id")
    matcher = StructureMatcher()
    for candidate in chosen:
        stem = candidate_stem(candidate)
        expected = space_group(candidate.relaxed)
        reread = Structure.from_file(out / f"{stem}.cif")
        assert SpacegroupAnalyzer(reread).get_space_group_number() == expected.number
        assert f"_symmetry_Int_Tables_number   {expected.number}" in (out / f"{stem}.cif").read_text()
        assert manifest.loc[candidate.id, "spacegroup_number"] == expected.number
        assert manifest.loc[candidate.id, "spacegroup_symbol"] == expected.symbol
        p1 = Structure.from_file(out / f"{stem}_P1.cif")
        assert len(p1) == len(candidate.relaxed)
        assert p1.lattice.abc == pytest.approx(candidate.relaxed.lattice.abc, rel=1e-6)
        assert matcher.fit(reread, candidate.relaxed)


def test_poscar_species_are_sorted_and_grouped(exported) -> None:
    chosen, out = exported
    for candidate in chosen:
        poscar = Poscar.from_file(out / f"{candidate_stem(candidate)}.POSCAR")
        symbols = poscar.site_symbols
        assert len(set(symbols)) == len(symbols)  # each species in one block
        assert symbols == sorted(symbols, key=lambda s: Element(s).X)  # pymatgen's order
        assert poscar.structure.composition == candidate.relaxed.composition
        assert StructureMatcher().fit(poscar.structure, candidate.relaxed)


def test_manifest_has_space_group_novelty_and_every_objective_with_units(exported, run: Run) -> None:
    chosen, out = exported
    table = pd.read_csv(out / "candidates.csv")
    for column in ("e_above_hull_ev_per_atom", "deformation_energy_ev_per_atom", "custom:atoms"):
        assert column in table.columns
    assert list(table["id"]) == [c.id for c in chosen]
    assert list(table["known_id_or_new"]) == [c.known_id or "new" for c in chosen]
    assert list(table["custom:atoms"]) == [float(len(c.relaxed)) for c in chosen]
    document = json.loads((out / "candidates.json").read_text())
    assert document["units"]["deformation_energy_ev_per_atom"] == "eV/atom"
    assert document["units"]["custom:atoms"] is None  # in the unit its function states
    assert [o["name"] for o in document["objectives"]] == [o.name for o in run.spec().objectives]
    rows = document["candidates"]
    assert [r["e_above_hull_ev_per_atom"] for r in rows] == [c.e_above_hull for c in chosen]
    assert rows[0]["files"] == [f"{candidate_stem(chosen[0])}{end}" for end in (".cif", "_P1.cif", ".POSCAR")]


def test_extxyz_of_a_candidate_without_stored_forces_keeps_its_energy(exported, tmp_path: Path) -> None:
    old = copy.deepcopy(exported[0][0])
    old.forces, old.stress_gpa = None, None  # as read from a run stored before forces were kept
    with pytest.warns(ExportWarning, match="1 of 1 extxyz frames carry no forces or stress"):
        export_candidates([old], tmp_path / "old", ["extxyz"])
    (atoms,) = ase_read(tmp_path / "old" / "candidates.extxyz", index=":")
    assert atoms.get_potential_energy() == pytest.approx(old.energy_per_atom * len(atoms), rel=1e-12)


def test_used_folder_is_refused_unless_force_which_clears_the_old_export(
    run: Run, tmp_path: Path, cli
) -> None:
    out = tmp_path / "exp"
    first = cli("export", str(run.run_dir), "--out", str(out), "--include-known")
    assert first.returncode == 0, first.stderr
    assert len(list(out.glob("*.cif"))) == len(run.best())
    again = cli("export", str(run.run_dir), "--out", str(out), "--include-known", "--top", "1")
    assert again.returncode == 2
    assert len(again.stderr.strip().splitlines()) == 1
    assert "is not empty; choose another folder with --out, or add --force" in again.stderr
    forced = cli("export", str(run.run_dir), "--out", str(out), "--include-known", "--top", "1", "--force")
    assert forced.returncode == 0, forced.stderr
    assert len(list(out.glob("*.cif"))) == 1  # no stale files from the first export
    assert len(pd.read_csv(out / "candidates.csv")) == 1
    (out / "notes.txt").write_text("mine")
    foreign = cli("export", str(run.run_dir), "--out", str(out), "--force")
    assert foreign.returncode == 2
    assert "holds 'notes.txt', which matsearch export did not write" in foreign.stderr
    assert (out / "notes.txt").read_text() == "mine" and (out / "candidates.csv").exists()


def test_structure_files_match_what_the_adaptor_writes(exported) -> None:
    """The extxyz cell and positions are the relaxed structure's (same site order as the forces)."""
    chosen, out = exported
    for atoms, candidate in zip(ase_read(out / "candidates.extxyz", index=":"), chosen, strict=True):
        reference = AseAtomsAdaptor.get_atoms(candidate.relaxed)
        np.testing.assert_allclose(atoms.cell[:], reference.cell[:], atol=1e-8)
        np.testing.assert_allclose(atoms.positions, reference.positions, atol=1e-8)
        assert list(atoms.symbols) == list(reference.symbols)


def test_the_command_line_and_force_know_every_declared_format(tmp_path: Path) -> None:
    """`export --format` offers exactly EXPORT_FORMATS (default: all), the manifest comes after the
    structure files it lists, and `--force` clears the files of every format."""
    import typer

    from matsearch.cli import app
    from matsearch.export import prepare_export_dir

    command = typer.main.get_command(app).commands["export"]
    (option,) = [p for p in command.params if p.name == "fmt"]
    assert option.default == list(EXPORT_FORMATS)
    assert option.help.startswith(", ".join(EXPORT_FORMATS) + " ")
    per_candidate = [f.per_candidate for f in EXPORT_FORMATS.values()]
    assert per_candidate == sorted(per_candidate, reverse=True)
    out = tmp_path / "old"
    out.mkdir()
    for f in EXPORT_FORMATS.values():
        (out / (f"0042_NaCl{f.suffix}" if f.per_candidate else f"candidates{f.suffix}")).write_text("")
    (out / "0042_NaCl_P1.cif").write_text("")
    prepare_export_dir(out, force=True)
    assert not any(out.iterdir())
