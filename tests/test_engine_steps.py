"""The loop's steps as a user relies on them: every child passes the validity rules exactly once,
whether the builtin proposer's screen ran them or the engine's check did."""

from __future__ import annotations

from pathlib import Path

from pymatgen.core import Structure

from matsearch import Search
from matsearch.candidate import Status


def _key(structure: Structure) -> tuple:
    return (
        tuple(structure.lattice.matrix.round(6).ravel()),
        tuple(str(site.specie) for site in structure),
        tuple(structure.frac_coords.round(6).ravel()),
    )


def test_validity_runs_once_per_child(tmp_path: Path) -> None:
    spec = {
        "name": "once",
        "seed": 5,
        "output": str(tmp_path),
        "chemistry": {"systems": ["Na-Cl"], "max_atoms": 6},
        "population_size": 4,
        "children_per_generation": 6,
        "generations": 2,
        "mlip": {"steps": 1, "prerelax": None},
    }
    search = Search(spec)
    checked: list[Structure] = []  # every structure the rules were run on (kept alive: ids stay unique)
    rules = search.validity_reason

    def counted(structure: Structure) -> str | None:
        checked.append(structure)
        return rules(structure)

    search.validity_reason = counted
    run = search.run()
    assert len({id(s) for s in checked}) == len(checked), "a structure was checked twice"
    children = [c for c in run.candidates() if c.structure is not None]
    assert {c.generation for c in children} == {0, 1, 2}
    assert {_key(c.structure) for c in children} <= {_key(s) for s in checked}
    assert all(c.status != Status.PROPOSED for c in children)
