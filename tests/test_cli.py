"""The command line on a real (small) run: status, export, report, data."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from matsearch import Search


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = {
        "name": "cli",
        "seed": 2,
        "output": str(tmp_path_factory.mktemp("runs")),
        "chemistry": {"elements": ["Na", "Cl"], "max_atoms": 8},
        "population_size": 3,
        "generations": 0,
        "mlip": {"steps": 50},
    }
    return Search(spec).run().run_dir


def test_status_json_lists_every_relaxed_candidate_with_e_hull(run_dir: Path, cli) -> None:
    done = cli("status", str(run_dir), "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["last_generation"] == 0
    relaxed = status["generations"][0]["counts"]["relaxed"]
    assert relaxed >= 1 and len(status["candidates"]) == relaxed
    assert all(isinstance(c["scores"]["e_above_hull"], float) for c in status["candidates"])
    assert status["proposers"]["known"]["proposed"] >= 1


def test_export_writes_files_and_rejects_unknown_formats(run_dir: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / "all"
    done = cli(
        "export", str(run_dir), "--top", "1", "-f", "cif", "-f", "csv", "--out", str(out), "--include-known"
    )
    assert done.returncode == 0, done.stderr
    assert len(list(out.glob("*.cif"))) == 1
    assert (out / "candidates.csv").read_text().startswith("id,formula,spacegroup_symbol,spacegroup_number")
    assert not (out / "candidates.json").exists()
    new_only = tmp_path / "new"
    done = cli("export", str(run_dir), "-f", "cif", "-f", "json", "--out", str(new_only))
    assert done.returncode == 0, done.stderr
    for row in json.loads((new_only / "candidates.json").read_text())["candidates"]:
        assert row["novelty"] in ("new_structure", "new_composition")  # known seeds are left out
        assert row["known_id_or_new"] == "new"
    bad = cli("export", str(run_dir), "-f", "xyzzy")
    assert bad.returncode == 2
    assert "unknown export format 'xyzzy'; allowed: cif, poscar, extxyz, csv, json" in bad.stderr
    bad_set = cli("export", str(run_dir), "--vasp", "MyOwnSet")
    assert bad_set.returncode == 2 and "allowed: MPRelaxSet, MPScanRelaxSet" in bad_set.stderr


def test_status_of_a_folder_that_is_not_a_run(tmp_path: Path, cli) -> None:
    done = cli("status", str(tmp_path))
    assert done.returncode == 2
    assert "is not a matsearch run folder" in done.stderr


def test_data_list_says_where_each_dataset_comes_from(use_mirror: Path, cli) -> None:
    listing = cli("data", "list")
    assert listing.returncode == 0
    assert str(use_mirror / "mp20" / "mp20_structures.csv.gz") in listing.stdout
    assert "https://raw.githubusercontent.com/txie-93/cdvae/main/data/mp_20/train.csv" in listing.stdout
    assert "…" not in listing.stdout
    rows = {row["name"]: row for row in json.loads(cli("data", "list", "--json").stdout)}
    assert rows["mp20"]["availability"] == "mirrored"
    assert rows["mp20-known-structures"]["availability"] == "shipped"
    assert rows["mp-energies-2023-01-10"]["availability"] == "unavailable"  # MATSEARCH_OFFLINE=1


def test_fetch_names_unknown_datasets(cli) -> None:
    unknown = cli("data", "fetch", "no-such-dataset")
    assert unknown.returncode == 2 and "Unknown dataset 'no-such-dataset'" in unknown.stderr


def _one_line_exit_2(done: subprocess.CompletedProcess, message: str) -> None:
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert message in done.stderr


def test_missing_spec_and_corrupted_store_are_one_line_errors(run_dir: Path, tmp_path: Path, cli) -> None:
    no_spec = tmp_path / "no_spec"
    shutil.copytree(run_dir, no_spec)
    (no_spec / "spec.yaml").unlink()
    for command in ("resume", "report"):
        _one_line_exit_2(cli(command, str(no_spec)), "spec.yaml' is missing")
    corrupted = tmp_path / "corrupted"
    shutil.copytree(run_dir, corrupted)
    (corrupted / "run.sqlite").write_bytes(b"\x00garbage" * 4096)
    for wal in corrupted.glob("run.sqlite-*"):
        wal.unlink()
    for command in ("status", "resume", "report"):
        _one_line_exit_2(cli(command, str(corrupted)), "is not a readable matsearch run database")


def test_version_is_the_installed_package_version(cli) -> None:
    from importlib.metadata import version

    done = cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"matsearch {version('matsearch')}\n"


def test_run_on_an_existing_name_says_what_to_do_and_overwrite_replaces_it(run_dir: Path, cli) -> None:
    spec = run_dir / "spec.yaml"  # the resolved spec names this very run folder
    again = cli("run", str(spec))
    _one_line_exit_2(again, f"run folder '{run_dir}' already holds a run; resume it")
    assert "choose another name, or replace it (`matsearch run --overwrite`" in again.stderr
    (run_dir / "stale.txt").write_text("from the earlier run")
    done = cli("run", str(spec), "--overwrite")
    assert done.returncode == 0, done.stderr
    assert not (run_dir / "stale.txt").exists()  # the folder was replaced, not reused
    assert json.loads(cli("status", str(run_dir), "--json").stdout)["last_generation"] == 0


def test_report_and_status_of_a_copied_run_whose_hull_file_is_not_here(
    bulk_modulus_run: Path, tmp_path: Path, cli
) -> None:
    """A finished run folder copied to another machine: its spec names a user hull file (given
    relative to the spec file, stored resolved) that the copy cannot reach. The report is still
    written, with a note in place of the phase diagram, and status still works."""
    copy = tmp_path / "elsewhere" / bulk_modulus_run.name
    shutil.copytree(bulk_modulus_run, copy)
    shutil.rmtree(copy / "report", ignore_errors=True)
    spec_file = copy / "spec.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    hull = Path(spec["reference"]["hull"])
    assert hull.name == "my_hull.csv" and hull.is_file()
    # where the file sat on the machine the run came from; there is nothing there on this one
    gone = tmp_path / "origin" / hull.name
    spec_file.write_text(yaml.safe_dump({**spec, "reference": {**spec["reference"], "hull": str(gone)}}))

    done = cli("report", str(copy))
    assert done.returncode == 0, done.stderr
    text = (copy / "report" / "report.html").read_text()
    assert f"Not drawn: the run&#x27;s hull reference &#x27;{gone}&#x27; is not available here" in text
    assert 'id="figure-pareto"' in text and "bulk_modulus (GPa)" in text
    status = cli("status", str(copy), "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["name"] == "bulk"
