"""Run report on a real SQLite run store holding real MP-20 structures of the Li-Mg-O system.

Energies: DFT formation energy + elemental references (so that the hull module puts them back on
the MP hull), plus a seeded offset per child standing in for MLIP error.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Structure

from matsearch.candidate import Candidate, Status
from matsearch.report import (
    REPORT_DIR,
    load_snapshot,
    make_report,
    objectives_figure,
    pareto_figure,
    phase_diagram_figure,
)
from matsearch.scoring.hull import HullReference
from matsearch.spec import dump_spec, parse_spec
from matsearch.store import RunStore
from matsearch.structures.known import KnownMaterials

# (material_id, generation, operator, parent indices into this list)
LINEAGE = [
    ("mp-1960", 0, "seed", []),  # Li2O
    ("mp-841", 0, "seed", []),  # Li2O2
    ("mp-1265", 0, "seed", []),  # MgO
    ("mp-2589", 0, "seed", []),  # MgO2
    ("mp-1235708", 1, "substitution", [1]),  # LiO8
    ("mp-549706", 1, "strain", [2]),  # MgO, another polymorph
    ("mp-1960", 1, "swap", [0]),  # Li2O again
    ("mp-1235877", 2, "crossover", [4, 1]),  # LiO8
    ("mp-1960", 2, "strain", [6]),  # Li2O: the best, below the hull
    ("mp-51", 2, "random", []),  # Li
]
BELOW_HULL = 8  # this child gets 0.02 eV/atom below the DFT energy


@pytest.fixture(scope="module")
def hull() -> HullReference:
    return HullReference.from_registry("mp20-subset")


def _structures() -> dict[str, Structure]:
    known = KnownMaterials.load()
    wanted = {mid for mid, *_ in LINEAGE}
    rows = known.table[known.table["material_id"].isin(wanted)]
    return {mid: known.structure(int(row)) for row, mid in rows["material_id"].items()}


def _spec(tmp_path: Path, name: str):
    return parse_spec(
        {
            "name": name,
            "chemistry": {"systems": ["Li-Mg-O"], "max_atoms": 20},
            "population_size": 4,
            "generations": 2,
            "objectives": [
                {"name": "e_above_hull", "direction": "min"},
                {"name": "deformation_energy", "direction": "min"},
            ],
            "output": str(tmp_path),
        }
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, hull: HullReference) -> Path:
    """A three-generation run written through RunStore, with invalid and duplicate children."""
    spec = _spec(tmp_path_factory.mktemp("runs"), "li-mg-o")
    structures = _structures()
    rng = np.random.default_rng(5)
    store = RunStore.create(spec.run_dir, dump_spec(spec), {"hull_reference": hull.describe()})
    ids: list[int] = []
    with store:
        for generation in range(3):
            children = []
            for k, (mid, gen, operator, parents) in enumerate(LINEAGE):
                if gen != generation:
                    continue
                structure = structures[mid]
                candidate = Candidate(
                    id=None,
                    generation=gen,
                    origin="mp20" if operator == "seed" else "builtin",
                    operator=operator,
                    parents=[ids[p] for p in parents],
                    structure=structure,
                    relaxed=structure,
                    status=Status.SCORED,
                    extra={"material_id": mid} if operator == "seed" else {},
                )
                formation = hull.evaluate(structure.composition, 0.0).formation_energy_per_atom
                dft = _dft_formation(mid)
                offset = -0.02 if k == BELOW_HULL else (0.0 if gen == 0 else rng.uniform(0.0, 0.15))
                energy = dft + offset - formation  # E/atom = E_f + Σ x_i μ_i
                candidate.energy_per_atom = energy
                candidate.initial_energy_per_atom = energy + rng.uniform(0.0, 0.3)
                candidate.e_above_hull = hull.e_above_hull(structure.composition, energy)
                candidate.scores = {
                    "e_above_hull": candidate.e_above_hull,
                    "formation_energy": dft + offset,
                    "deformation_energy": candidate.initial_energy_per_atom - energy,
                }
                children.append(candidate)
            if generation == 1:
                children.append(
                    Candidate(
                        None,
                        1,
                        "builtin",
                        "strain",
                        status=Status.INVALID,
                        reason="min_distance: Li-O 0.4 Å",
                    )
                )
                children.append(
                    Candidate(
                        None,
                        1,
                        "builtin",
                        "swap",
                        structure=structures["mp-1960"],
                        status=Status.DUPLICATE,
                        reason="duplicate of 1",
                    )
                )
            store.add(children, proposed_generation=generation)
            ids.extend(c.id for c in children if c.status == Status.SCORED)
            pool = [c for c in store.candidates(status=Status.SCORED)]
            pool.sort(key=lambda c: (c.e_above_hull, c.id))
            store.complete_generation(generation, [c.id for c in pool[:4]], {"proposed": len(children)})
    return spec.run_dir


def _dft_formation(material_id: str) -> float:
    table = KnownMaterials.load().table
    return float(table.loc[table["material_id"] == material_id, "formation_energy_per_atom"].iloc[0])


def test_report_writes_pngs_and_self_contained_html(run_dir: Path, hull: HullReference) -> None:
    path = make_report(run_dir, hull=hull)
    assert path == run_dir / REPORT_DIR / "report.html"
    names = ["pareto", "objectives", "e_hull", "phase_diagram", "lineage"]
    for name in names:
        png = run_dir / REPORT_DIR / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert png.stat().st_size > 10_000, name
    text = path.read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == len(names)
    assert base64.b64decode(images[0]) == (run_dir / REPORT_DIR / "pareto.png").read_bytes()
    assert not re.search(r'(src|href)="(https?:|file:|/)', text)  # nothing outside the file
    assert "Not drawn" not in text


def test_report_best_table_and_counts(run_dir: Path, hull: HullReference) -> None:
    text = make_report(run_dir, hull=hull).read_text()
    snapshot = load_snapshot(run_dir)
    best = snapshot.best()
    assert best.formula == "Li2O" and best.e_above_hull < 0
    first_row = re.search(r"<tbody><tr><td>(\d+)</td><td>([^<]+)</td>", text)
    assert first_row.groups() == (str(best.id), "Li2O")
    assert "invalid 1" in text and "duplicate 1" in text and "scored 10" in text
    assert "Generations completed:\n3 of 3" in text


def test_pareto_marks_the_last_survivors(run_dir: Path) -> None:
    snapshot = load_snapshot(run_dir)
    fig = pareto_figure(snapshot.scored, snapshot.last_population, snapshot.spec.objectives)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "survivors, last generation (4)" in labels and "Pareto front" in labels


def test_objectives_per_generation_follow_the_store(run_dir: Path) -> None:
    snapshot = load_snapshot(run_dir)
    fig = objectives_figure(snapshot, snapshot.spec.objectives)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    by_id = {c.id: c for c in snapshot.candidates}
    expected = [min(by_id[i].e_above_hull for i in snapshot.populations[g]) for g in range(3)]
    np.testing.assert_allclose(lines["survivors: best"].get_ydata(), expected)
    children_median = [
        np.median([c.e_above_hull for c in snapshot.scored if c.generation == g]) for g in range(3)
    ]
    np.testing.assert_allclose(lines["children: median"].get_ydata(), children_median)


def test_phase_diagram_places_the_candidate_at_its_formation_energy(
    run_dir: Path, hull: HullReference
) -> None:
    best = load_snapshot(run_dir).best()
    fig = phase_diagram_figure(best, hull)
    ax = fig.axes[0]
    star = [line for line in ax.get_lines() if line.get_marker() == "*" and line.get_label()[0] == "#"]
    assert len(star) == 1
    assert star[0].get_label() == (
        f"#{best.id} Li2O: e_above_hull {best.e_above_hull:+.3f} eV/atom vs 'mp20-subset'"
    )
    # a binary diagram: x = fraction of O, y = formation energy (eV/atom)
    assert star[0].get_xdata()[0] == pytest.approx(1 / 3, abs=1e-6)
    assert star[0].get_ydata()[0] == pytest.approx(best.scores["formation_energy"], abs=1e-6)


def test_lineage_shows_every_ancestor_and_operator(run_dir: Path, hull: HullReference) -> None:
    from matsearch.report import lineage_figure

    snapshot = load_snapshot(run_dir)
    by_id = {c.id: c for c in snapshot.candidates}
    fig = lineage_figure(snapshot.best(), by_id)
    texts = [t.get_text() for t in fig.axes[0].texts]
    # best (gen 2, strain) ← Li2O (gen 1, swap) ← Li2O seed mp-1960
    assert sum(t.startswith("#") for t in texts) == 3
    assert {"strain", "swap"} <= set(texts)
    assert any("seed (mp-1960)" in t for t in texts)


def test_report_of_a_run_with_nothing_scored(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "empty")
    with RunStore.create(spec.run_dir, dump_spec(spec), {}) as store:
        store.add(
            [Candidate(None, 0, "builtin", "random", status=Status.INVALID, reason="x")],
            proposed_generation=0,
        )
    text = make_report(spec.run_dir).read_text()
    assert text.count("Not drawn: no candidate has been scored yet.") == 5
    assert not list((spec.run_dir / REPORT_DIR).glob("*.png"))
