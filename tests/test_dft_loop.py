"""The DFT loop on a real tiny Na–Cl run and the shipped VASP outputs: read, ingest (matching,
idempotence, bad input), status/export/report views, fine-tune from the ingested frames, rescore,
and the two-model uncertainty that orders `export --priority`."""

from __future__ import annotations

import gzip
import json
import shutil
import tarfile
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from matsearch.candidate import Status
from matsearch.cli import app
from matsearch.dft.ingest import match_candidate
from matsearch.dft.read import find_outputs, read_calculation
from matsearch.dft.scores import score_calculation
from matsearch.errors import DftInputError
from matsearch.run import Run
from matsearch.scoring.hull import HullReference
from matsearch.summary import SCHEMA_PATH

DFT = "dft"  # folder of the mirror holding the VASP outputs
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def nacl_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real one-generation Na–Cl search scored by chgnet-0.3.0 (fast); rock salt is a seed."""
    from matsearch import Search

    spec = {
        "seed": 3,
        "population_size": 3,
        "children_per_generation": 3,
        "generations": 1,
        "mlip": {"steps": 40, "model": "chgnet-0.3.0"},
        "name": "nacl",
        "output": str(tmp_path_factory.mktemp("runs")),
        "chemistry": {"systems": ["Na-Cl"], "max_atoms": 8},
    }
    return Search(spec).run().run_dir


@pytest.fixture
def run_copy(nacl_run: Path, tmp_path: Path) -> Path:
    """A private copy of the run, so each test starts from the run as the search left it."""
    return Path(shutil.copytree(nacl_run, tmp_path / "nacl", ignore=shutil.ignore_patterns(".lock")))


def store_state(run_dir: Path) -> tuple[pd.DataFrame, list[dict]]:
    run = Run(run_dir)
    return run.to_dataframe(), run.dft_results(frames=True)


def assert_same_state(before: tuple[pd.DataFrame, list[dict]], run_dir: Path) -> None:
    frame, results = store_state(run_dir)
    pd.testing.assert_frame_equal(before[0], frame)
    assert results == before[1]


def rock_salt_id(run_dir: Path) -> int:
    return next(c.id for c in Run(run_dir).best() if c.operator == "seed" and c.formula == "NaCl")


def test_reads_every_shipped_vasp_output_or_says_why_not(mirror_dir: Path, tmp_path: Path) -> None:
    hull = HullReference.named("mp20-subset")
    nacl = read_calculation(mirror_dir / DFT / "NaCl_static_vasprun.xml.gz")
    assert (nacl.run_type, len(nacl.frames), len(nacl.final.structure)) == ("GGA", 1, 8)
    assert nacl.final.energy_ev == pytest.approx(-27.11090125)  # VASP's energy(sigma→0)
    scores = score_calculation(nacl, hull)
    assert scores.comparable and scores.corrected_energy_per_atom_ev < scores.energy_per_atom_ev  # Cl anion
    assert abs(scores.e_above_hull_ev_per_atom) < 0.02  # rock salt is on the MP hull

    feo = read_calculation(mirror_dir / DFT / "FeO_GGA+U_relax_vasprun.xml.gz")
    assert (feo.run_type, feo.hubbards, len(feo.frames)) == ("GGA+U", {"Fe": 4.0}, 28)
    assert feo.frames[0].forces.shape == (4, 3) and feo.frames[0].stress_gpa.shape == (3, 3)
    feo_scores = score_calculation(feo, hull)  # U = 4 eV is not MP's 5.3 eV: kept, not compared
    assert not feo_scores.comparable and "U values: Fe=4" in feo_scores.note

    stopped = tmp_path / "feo" / "vasprun.xml"  # the same run, as if NSW had been its 28 steps
    text = gzip.decompress((mirror_dir / DFT / "FeO_GGA+U_relax_vasprun.xml.gz").read_bytes()).decode()
    stopped.parent.mkdir()
    stopped.write_text(text.replace('name="NSW">    99<', 'name="NSW">    28<'))
    with pytest.raises(DftInputError, match="ionic relaxation did not converge within NSW"):
        read_calculation(stopped)

    al = score_calculation(read_calculation(mirror_dir / DFT / "Al_r2SCAN_relax_vasprun.xml.gz"), hull)
    assert not al.comparable and al.e_above_hull_ev_per_atom is None and "R2SCAN" in al.note

    with pytest.raises(DftInputError, match="truncated") as truncated:
        read_calculation(mirror_dir / DFT / "truncated_vasprun.xml.gz")
    assert "\n" not in str(truncated.value)

    with tarfile.open(mirror_dir / "mlip" / "sevennet_hfo2_outcars.tar.gz") as archive:
        archive.extractall(tmp_path / "hfo2", filter="data")
    outcars = find_outputs([tmp_path / "hfo2"])
    assert len(outcars) == 10
    hfo2 = read_calculation(outcars[0])
    assert hfo2.final.forces.shape == (96, 3) and hfo2.run_type == "SCAN"
    unfinished = tmp_path / "stopped" / "OUTCAR"
    unfinished.parent.mkdir()
    text = outcars[0].read_text()
    unfinished.write_text(text[: len(text) // 20])
    with pytest.raises(DftInputError, match="without a finished ionic step"):
        read_calculation(unfinished)


def test_ingest_shows_dft_in_status_and_is_idempotent(run_copy: Path, mirror_dir: Path) -> None:
    nacl = mirror_dir / DFT / "NaCl_static_vasprun.xml.gz"
    first = invoke("ingest", run_copy, nacl)
    assert first.exit_code == 0, first.output
    assert "ingested" in first.output and "matched by initial structure" in first.output

    status = invoke("status", run_copy, "--json")
    data = json.loads(status.stdout)
    jsonschema.validate(data, json.loads(SCHEMA_PATH.read_text()), cls=jsonschema.Draft202012Validator)
    row = next(c for c in data["candidates"] if c["id"] == rock_salt_id(run_copy))
    dft = row["dft"]
    assert dft["energy_per_atom_ev"] == pytest.approx(-27.11090125 / 8)
    assert dft["comparable"] and dft["stability"] == "stable"
    assert dft["mlip_minus_dft_e_hull_ev_per_atom"] == pytest.approx(
        row["scores"]["e_above_hull"] - dft["e_above_hull_ev_per_atom"]
    )
    assert data["dft"]["results"] == 1 and data["dft"]["energy_mae_ev_per_atom"] is not None
    assert [c["dft"] for c in data["candidates"] if c["id"] != row["id"]] == [None] * (
        len(data["candidates"]) - 1
    )
    frames = Run(run_copy).dft_results(frames=True)[0]["frames"]
    assert len(frames) == 1 and np.asarray(frames[0]["forces"]).shape == (8, 3)

    before = store_state(run_copy)
    again = invoke("ingest", run_copy, nacl)
    assert again.exit_code == 0 and "nothing changed" in again.output
    assert_same_state(before, run_copy)

    truncated = invoke("ingest", run_copy, mirror_dir / DFT / "truncated_vasprun.xml.gz")
    assert truncated.exit_code == 2
    assert len(truncated.output.strip().splitlines()) == 1 and "truncated" in truncated.output
    assert_same_state(before, run_copy)

    other = invoke("ingest", run_copy, mirror_dir / DFT / "Si_relax_vasprun.xml.gz")
    assert other.exit_code == 2 and "outside the run's chemistry" in other.output
    assert_same_state(before, run_copy)

    text = invoke("status", run_copy).stdout
    assert "MLIP stability calls confirmed" in text and "DFT e_hull" in text
    report = invoke("report", run_copy)
    assert report.exit_code == 0
    page = (run_copy / "report" / "report.html").read_text()
    assert "MLIP vs DFT energy above hull, 1 ingested candidates" in page and "DFT results</h2>" in page


def test_matches_by_export_id_first_and_refuses_what_matches_nothing(
    run_copy: Path, mirror_dir: Path, tmp_path: Path
) -> None:
    export = run_copy / "export"
    result = invoke("export", run_copy, "--include-known", "--vasp", "MPRelaxSet", "-f", "csv")
    assert result.exit_code == 0, result.output
    rock_salt = rock_salt_id(run_copy)
    folder = next((export / "vasp").glob(f"{rock_salt:04d}_NaCl"))
    shutil.copy(mirror_dir / DFT / "NaCl_static_vasprun.xml.gz", folder / "vasprun.xml.gz")
    outcome = Run(run_copy).ingest([export])
    assert [(o.status, o.candidate_id) for o in outcome] == [("ingested", rock_salt)]
    assert Run(run_copy).dft_results()[0]["matched_by"] == "manifest id"

    scored = Run(run_copy).candidates(Status.SCORED)
    others = [c for c in scored if c.id != rock_salt]
    cscl = next(c for c in others if c.formula == "NaCl")  # the id in a bare export folder's name wins
    bare = tmp_path / f"{cscl.id:04d}_NaCl" / "vasprun.xml.gz"
    bare.parent.mkdir()
    shutil.copy(mirror_dir / DFT / "NaCl_static_vasprun.xml.gz", bare)
    assert match_candidate(read_calculation(bare), scored) == (cscl, "export folder name")

    calc = read_calculation(mirror_dir / DFT / "NaCl_static_vasprun.xml.gz")
    with pytest.raises(DftInputError, match="matches no relaxed candidate"):
        match_candidate(calc, others)


def test_finetune_from_ingested_frames_then_rescore_into_a_new_run(
    run_copy: Path, mirror_dir: Path, tmp_path: Path
) -> None:
    empty = invoke(
        "mlip", "finetune", "--from-run", run_copy, "--out", tmp_path / "m.pt", "--base", "chgnet-0.3.0"
    )
    assert empty.exit_code == 2 and "no ingested PBE(+U) DFT frames" in empty.output
    assert invoke("ingest", run_copy, mirror_dir / DFT / "NaCl_static_vasprun.xml.gz").exit_code == 0
    model = tmp_path / "nacl-ft.pt"
    tuned = invoke(
        "mlip", "finetune", "--from-run", run_copy, "--out", model, "--base", "chgnet-0.3.0",
        "--epochs", "2", "--validation-fraction", "0",
    )  # fmt: skip
    assert tuned.exit_code == 0, tuned.output
    summary = json.loads(tuned.stdout[tuned.stdout.index("{") :])
    assert summary["n_train"] == 1 and model.is_file()

    before = store_state(run_copy)
    out = tmp_path / "rescored"
    rescored = invoke("rescore", run_copy, "--model", model, "--out", out)
    assert rescored.exit_code == 0, rescored.output
    assert_same_state(before, run_copy)  # the original run is untouched
    new = Run(out)
    assert Run(out).spec().mlip.model == str(model.resolve())
    originals = {c.id: c for c in Run(run_copy).best()}
    scored = new.best()
    assert {c.id for c in scored} == set(originals)
    for c in scored:
        assert c.extra["rescored_from"]["e_above_hull"] == originals[c.id].e_above_hull
    rock_salt = rock_salt_id(run_copy)
    dft_hull = Run(run_copy).dft_results()[0]["e_above_hull_ev_per_atom"]
    moved = next(c for c in scored if c.id == rock_salt).e_above_hull
    assert abs(moved - dft_hull) < abs(originals[rock_salt].e_above_hull - dft_hull)  # learnt from DFT


def test_uncertainty_is_stored_and_orders_export_priority(run_copy: Path, tmp_path: Path) -> None:
    first = invoke("uncertainty", run_copy, "--device", "cpu")
    assert first.exit_code == 0 and "computed for" in first.output
    scored = Run(run_copy).best()
    for c in scored:
        row = c.extra["uncertainty"]
        assert row["model"] == "sevennet-0"  # the run scored with chgnet-0.3.0
        assert row["e_above_hull_ev_per_atom"] == pytest.approx(
            c.e_above_hull - row["delta_e_hull_ev_per_atom"]
        )
    assert "nothing changed" in invoke("uncertainty", run_copy).output

    out = tmp_path / "export"
    result = invoke("export", run_copy, "--priority", "--include-known", "--out", out, "-f", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "candidates.json").read_text())["candidates"]
    priorities = [r["priority_ev_per_atom"] for r in rows]
    assert priorities == sorted(priorities) and len(rows) == len(scored)
    for r in rows:
        assert r["priority_ev_per_atom"] == pytest.approx(
            r["e_above_hull_ev_per_atom"] - abs(r["models_delta_e_hull_ev_per_atom"])
        )
    data = json.loads(invoke("status", run_copy, "--json").stdout)
    assert all(c["uncertainty"] is not None for c in data["candidates"])
