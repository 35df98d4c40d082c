"""`matsearch status` on tiny real runs: one JSON schema, unique keys, objective and CSP columns."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from matsearch.run import Run
from matsearch.summary import SCHEMA_PATH


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    duplicates = {k for k in keys if keys.count(k) > 1}
    assert not duplicates, f"duplicate JSON keys {duplicates}"
    return dict(pairs)


def _status_json(cli, run_dir: Path) -> dict:
    done = cli("status", str(run_dir), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout, object_pairs_hook=_unique_keys)
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(data, schema, cls=jsonschema.Draft202012Validator)
    return data


def test_status_json_of_a_bulk_modulus_run_lists_each_bulk_modulus(bulk_modulus_run: Path, cli) -> None:
    data = _status_json(cli, bulk_modulus_run)
    columns = {c["name"]: c for c in data["scores"]}
    assert columns["bulk_modulus"] == {
        "name": "bulk_modulus",
        "unit": "GPa",
        "objective": True,
        "direction": "max",
        "target": None,
        "bounds": None,
    }
    assert columns["e_above_hull"]["unit"] == "eV/atom"
    stored = {c.id: c for c in Run(bulk_modulus_run).best()}
    assert len(data["candidates"]) == len(stored) >= 3
    for c in data["candidates"]:
        if "bulk_modulus" in stored[c["id"]].scores:
            assert c["scores"]["bulk_modulus"] == pytest.approx(stored[c["id"]].scores["bulk_modulus"])
        else:  # a failed equation-of-state fit says why
            assert c["missing_scores"]["bulk_modulus"]
        assert c["space_group"]["number"] in range(1, 231)
        assert (c["known_id"] is None) == (c["novelty"] != "known")
    assert sum("bulk_modulus" in c["scores"] for c in data["candidates"]) >= 2
    assert "my_hull.csv" in data["hull_reference"]


def test_status_keeps_best_so_far_apart_from_best_this_generation(bulk_modulus_run: Path, cli) -> None:
    data = _status_json(cli, bulk_modulus_run)
    run = Run(bulk_modulus_run)
    scored = [c for c in run.best() if "bulk_modulus" in c.scores]
    for row in data["generations"]:
        g = row["generation"]
        assert row["best_so_far"]["bulk_modulus"] == max(
            c.scores["bulk_modulus"] for c in scored if c.generation <= g
        )
        this = [c.scores["bulk_modulus"] for c in scored if c.generation == g]
        assert row["best_this_generation"]["bulk_modulus"] == (max(this) if this else None)
        assert row["best_so_far"]["e_above_hull"] <= row["best_this_generation"]["e_above_hull"]
    assert data["csp"] is None


def test_status_table_has_unit_columns_space_groups_and_known_marks(bulk_modulus_run: Path, cli) -> None:
    done = cli("status", str(bulk_modulus_run))
    assert done.returncode == 0, done.stderr
    for text in ("B (GPa)", "e_hull (eV/atom)", "this gen / so far", "space group", "known as / new"):
        assert text in done.stdout, text


def test_status_of_a_csp_run_reports_the_match(csp_run: Path, cli) -> None:
    data = _status_json(cli, csp_run)
    csp = data["csp"]
    assert data["task"] == {"kind": "csp", "target": "NaCl"}
    assert csp["match"]["found"] and csp["match"]["rmsd"] < 0.05
    match = next(c for c in Run(csp_run).best() if c.id == csp["match"]["id"])
    assert match.formula == "NaCl" and csp["match"]["generation"] == match.generation
    assert csp["lowest"]["energy_per_atom_ev"] == min(c.energy_per_atom for c in Run(csp_run).best())
    assert [g["generation"] for g in csp["per_generation"]] == [0, 1]
    table = cli("status", str(csp_run)).stdout
    assert "CSP of NaCl" in table and f"found: #{match.id}" in table
    assert csp["templates"] == [] and csp["lowest"]["template"] is None
    assert "templates: none (random starts only)" in table
