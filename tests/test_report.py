"""Run report on a real SQLite run store holding real MP-20 structures of the Li-Mg-O system.

Energies: DFT formation energy + elemental references (so that the hull module puts them back on
the MP hull), plus a seeded offset per child standing in for MLIP error.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from plotly.offline import get_plotlyjs
from pymatgen.core import Structure

from matsearch.candidate import Candidate, Status
from matsearch.report import REPORT_DIR, figure_sections, load_snapshot, make_report
from matsearch.report.generations import objectives_figure
from matsearch.report.lineage import lineage_figure, lineage_roots
from matsearch.report.pareto import pareto_figure
from matsearch.report.phase_diagram import phase_diagram_figure
from matsearch.run import Run
from matsearch.scoring.hull import HullReference
from matsearch.spec import Objective, dump_spec, parse_spec
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
                }
                if operator != "seed":  # as the engine does: seeds are not proposals
                    candidate.scores["deformation_energy"] = candidate.initial_energy_per_atom - energy
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


def test_report_is_one_self_contained_html_with_every_figure(run_dir: Path, hull: HullReference) -> None:
    path = make_report(run_dir, hull=hull)
    assert path == run_dir / REPORT_DIR / "report.html"
    text = path.read_text()
    assert get_plotlyjs() in text  # the library is inline; what remains must not reach outside
    text = text.replace(get_plotlyjs(), "")
    for name in ("pareto", "objectives", "e_hull", "phase_diagram", "lineage"):
        assert f'id="figure-{name}"' in text, name
    assert not re.search(r'(src|href)="(https?:|file:|/)', text)  # nothing outside the file
    assert "<script src=" not in text and "Not drawn" not in text


def test_report_best_table_and_counts(run_dir: Path, hull: HullReference) -> None:
    text = make_report(run_dir, hull=hull).read_text()
    best = Run(run_dir).best(1)[0]
    assert best.formula == "Li2O" and best.e_above_hull < 0
    first_row = re.search(r"<tbody><tr><td>(\d+)</td><td>([^<]+)</td>", text)
    assert first_row.groups() == (str(best.id), "Li2O")
    assert "invalid 1" in text and "duplicate 1" in text and "scored 10" in text
    assert "Generations completed: 3 of 3" in text
    assert "<th>e_above_hull (eV/atom)</th>" in text and "<th>deformation_energy (eV/atom)</th>" in text


def test_pareto_labels_the_front_by_formula_and_marks_missing_scores(run_dir: Path) -> None:
    snapshot = load_snapshot(run_dir)
    fig = pareto_figure(snapshot.scored, snapshot.last_population, snapshot.spec.objectives)
    traces = {t.name.split(" (")[0]: t for t in fig.data}
    assert fig.layout.xaxis.title.text == "e_above_hull (eV/atom) — minimise"
    assert fig.layout.yaxis.title.text == "deformation_energy (eV/atom) — minimise"
    assert traces["survivors, last generation"].name == "survivors, last generation (4)"
    by_id = snapshot.by_id()
    assert all(
        label.split()[1] == by_id[int(label.split()[0][1:])].formula for label in traces["Pareto front"].text
    )
    # seeds have no deformation energy: drawn in the 'missing' band, not dropped, with the reason,
    # on the worse side of a minimised objective (above every present value)
    seeds = [c for c in snapshot.scored if c.operator == "seed"]
    missing = traces["missing deformation_energy"]
    assert len(missing.x) == len(seeds) == 4
    present = [c.scores["deformation_energy"] for c in snapshot.scored if c.parents]
    assert all(y > max(present) for y in missing.y)
    assert all("a seed is a known DFT-relaxed crystal" in h for h in missing.hovertext)
    assert sum(len(t.x) for t in fig.data if t.name.startswith(("relaxed", "missing"))) == len(
        snapshot.scored
    )


@pytest.mark.parametrize("goal", [{"direction": "max"}, {"target": 0.05}])
def test_missing_scores_are_drawn_on_the_worse_side_of_each_objective(run_dir: Path, goal: dict) -> None:
    snapshot = load_snapshot(run_dir)
    objectives = [Objective(name="e_above_hull"), Objective(name="deformation_energy", **goal)]
    fig = pareto_figure(snapshot.scored, snapshot.last_population, objectives)
    missing = next(t for t in fig.data if t.name.startswith("missing deformation_energy"))
    present = [c.scores["deformation_energy"] for c in snapshot.scored if c.parents]
    if "target" in goal:  # farther from the target than any present value
        assert all(abs(y - 0.05) > max(abs(v - 0.05) for v in present) for y in missing.y)
    else:  # maximised: below every present value
        assert all(y < min(present) for y in missing.y)
    assert len(missing.y) == 4 and all("deformation_energy missing" in h for h in missing.hovertext)


def test_objectives_per_generation_follow_the_store(run_dir: Path) -> None:
    snapshot = load_snapshot(run_dir)
    fig = objectives_figure(snapshot)
    lines = {t.name: t for t in fig.data}
    scored = snapshot.scored
    so_far = [min(c.e_above_hull for c in scored if c.generation <= g) for g in range(3)]
    this = [min(c.e_above_hull for c in scored if c.generation == g) for g in range(3)]
    np.testing.assert_allclose(lines["e_above_hull: best so far"].y, so_far)
    np.testing.assert_allclose(lines["e_above_hull: best this generation"].y, this)
    assert fig.layout.yaxis.title.text == "e_above_hull (eV/atom) — minimise"


def test_phase_diagram_places_the_candidate_at_its_formation_energy(
    run_dir: Path, hull: HullReference
) -> None:
    best = Run(run_dir).best(1)[0]
    fig = phase_diagram_figure(best, hull)
    star = [t for t in fig.data if (t.name or "").startswith("#")]
    assert len(star) == 1
    assert star[0].name == f"#{best.id} Li2O: e_above_hull {best.e_above_hull:+.3f} eV/atom vs 'mp20-subset'"
    # a binary diagram: x = fraction of O, y = formation energy (eV/atom)
    assert star[0].x[0] == pytest.approx(1 / 3, abs=1e-6)
    assert star[0].y[0] == pytest.approx(best.scores["formation_energy"], abs=1e-6)
    assert fig.layout.yaxis.title.text == "Formation energy (eV/atom)"


def test_lineage_shows_every_ancestor_and_operator(run_dir: Path) -> None:
    snapshot = load_snapshot(run_dir)
    by_id = snapshot.by_id()
    best = Run(run_dir).best(1)[0]
    fig = lineage_figure([best], by_id)
    texts = [a.text for a in fig.layout.annotations]
    # best (gen 2, strain) ← Li2O (gen 1, swap) ← Li2O seed mp-1960
    assert sum(t.startswith("#") for t in texts) == 3
    assert {"strain", "swap"} <= set(texts)
    assert any("seed mp-1960" in t for t in texts)
    roots = lineage_roots(snapshot.scored)
    assert len(roots) == 3 and all(c.parents for c in roots)


def test_report_of_a_run_with_nothing_scored(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "empty")
    with RunStore.create(spec.run_dir, dump_spec(spec), {}) as store:
        store.add(
            [Candidate(None, 0, "builtin", "random", status=Status.INVALID, reason="x")],
            proposed_generation=0,
        )
    text = make_report(spec.run_dir).read_text()
    assert text.count("Not drawn: no candidate has been scored yet.") == 5
    assert [s.note for s in figure_sections(load_snapshot(spec.run_dir))] == [
        "no candidate has been scored yet"
    ] * 5


def test_report_draws_the_phase_diagram_of_a_user_hull_file(bulk_modulus_run: Path) -> None:
    """The run's own `reference.hull: my_hull.csv` (given relative to its spec file), not the default."""
    sections = {s.name: s for s in figure_sections(load_snapshot(bulk_modulus_run))}
    diagram = sections["phase_diagram"].figure
    assert diagram is not None, sections["phase_diagram"].note
    assert "my_hull.csv" in diagram.layout.title.text and "mp20-subset" not in diagram.layout.title.text
    hover = " ".join(str(t.hovertext) + str(t.text) for t in diagram.data)
    assert "Formation energy: -3.05 eV/atom" in hover  # MgO as the user file gives it
    assert sections["pareto"].figure.layout.yaxis.title.text == "bulk_modulus (GPa) — maximise"
    text = make_report(bulk_modulus_run).read_text()
    assert 'id="figure-phase_diagram"' in text
    section = text.split('id="section-phase_diagram"', 1)[1].split("</section>", 1)[0]
    assert "Not drawn" not in section  # other figures (lineage) may lack data in so small a run
