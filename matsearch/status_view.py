"""`matsearch status` as rich tables, drawn from the dict of matsearch.summary.run_summary."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from matsearch.display import known_label, score_header, space_group_text
from matsearch.objectives import OBJECTIVES


def _header(column: dict[str, Any]) -> str:
    """Short column name with its unit, e.g. 'B (GPa)'."""
    builtin = OBJECTIVES.get(column["name"])
    return score_header(column["name"], None if builtin is None else builtin.short)


def _number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def print_status(console: Console, data: dict[str, Any]) -> None:
    """Generations, CSP answer, yields and the best candidates, each a table."""
    console.print(generations_table(data))
    if data["csp"] is not None:
        console.print(csp_table(data["csp"]))
        console.print(template_line(data["csp"]), soft_wrap=True)
    console.print(proposers_table(data["proposers"]))
    console.print(operators_table(data["operators"]))
    console.print(candidates_table(data))
    if data["dft"]["results"]:
        console.print(dft_table(data))


def generations_table(data: dict[str, Any]) -> Table:
    """Counts per generation, and per objective its best value this generation and so far."""
    objectives = [c for c in data["scores"] if c["objective"]]
    table = Table(title=f"{data['run_dir']} — generations (best: this generation / best so far)")
    counts = ("proposed", "valid", "unique", "relaxed", "failed", "metastable", "new", "sun")
    for column in ("gen", *counts[:-1], "S.U.N."):
        table.add_column(column, justify="right")
    for objective in objectives:
        table.add_column(f"best {_header(objective)}\nthis gen / so far", justify="right")
    table.add_column("hypervolume", justify="right")
    for row in data["generations"]:
        gen = str(row["generation"]) + ("" if row["completed"] else " (running)")
        cells = ["—" if row["counts"][k] is None else str(row["counts"][k]) for k in counts]
        bests = []
        for o in objectives:
            digits = 1 if o["unit"] == "GPa" else 3
            this, so_far = row["best_this_generation"][o["name"]], row["best_so_far"][o["name"]]
            bests.append(f"{_number(this, digits)} / {_number(so_far, digits)}")
        volume = row["hypervolume"]
        table.add_row(gen, *cells, *bests, "—" if volume is None else f"{volume:.4g}")
    return table


def csp_table(csp: dict[str, Any]) -> Table:
    """Lowest energy per generation and whether the known structure has been found."""
    lowest, match = csp["lowest"], csp["match"]
    if match is None:
        found = "no known structure given (task.known_structure)"
    elif match["found"]:
        found = (
            f"found: #{match['id']} (gen {match['generation']}), RMSD {match['rmsd']:.3f}"
            f"{'; it is the lowest-energy structure' if match['lowest_is_match'] else ''}"
        )
    else:
        found = "not found yet"
    best = (
        "—"
        if lowest is None
        else f"#{lowest['id']} {lowest['formula']} {_number(lowest['energy_per_atom_ev'])} eV/atom"
    )
    group = lowest and space_group_text(lowest["space_group"])
    if group:
        best += f", {group}"
    table = Table(
        title=f"CSP of {csp['target']}: lowest so far {best}; known structure {found}",
        title_justify="left",
    )
    for column in ("gen", "lowest E this gen (eV/atom)", "lowest E so far (eV/atom)", "match (RMSD)"):
        table.add_column(column, justify="right")
    for row in csp["per_generation"]:
        matched = "—" if row["match_id"] is None else f"#{row['match_id']} ({row['match_rmsd']:.3f})"
        table.add_row(
            str(row["generation"]),
            _number(row["lowest_this_generation_ev_per_atom"]),
            _number(row["lowest_so_far_ev_per_atom"]),
            matched,
        )
    return table


def template_line(csp: dict[str, Any]) -> str:
    """Which seeds came from templates and which template the lowest structure came from, e.g.
    'templates: 8 seeds (#1, ...); lowest structure from template mp-1234 (HoAgSn) via seed #3'."""
    seeds = csp["templates"]
    if not seeds:
        return "templates: none (random starts only)"
    template = csp["lowest"] and csp["lowest"]["template"]
    origin = (
        "lowest structure not from a template"
        if template is None
        else f"lowest structure from template {template['template_id']} ({template['template_formula']}) "
        f"via seed #{template['seed_id']}"
    )
    ids = ", ".join(f"#{seed['id']}" for seed in seeds)
    return f"templates: {len(seeds)} seeds ({ids}); {origin}"


def proposers_table(proposers: dict[str, dict]) -> Table:
    table = Table(title="per proposer (rates of proposed)")
    columns = ("origin", "proposed", "parsed", "valid", "unique", "relaxed", "metastable", "repaired (valid)")
    for column in columns:
        table.add_column(column, justify="right" if column != "origin" else "left")
    for origin, row in proposers.items():
        table.add_row(
            origin,
            str(row["proposed"]),
            *(f"{row[k + '_rate']:.0%}" for k in ("parsed", "valid", "unique", "relaxed", "metastable")),
            f"{row['repaired']} ({row['repaired_valid']})",
        )
    return table


def operators_table(operators: dict[str, dict]) -> Table:
    table = Table(
        title="per operator: proposed → valid → unique → metastable-new (screened out before counting)"
    )
    for column in ("proposer/operator", "proposed", "valid", "unique", "metastable-new", "screened out"):
        table.add_column(column, justify="right" if column != "proposer/operator" else "left")
    for name, row in operators.items():
        table.add_row(
            name,
            str(row["proposed"]),
            *(f"{row[k]} ({row[k + '_rate']:.0%})" for k in ("valid", "unique", "metastable_new")),
            str(row["screened"]),
        )
    return table


def candidates_table(data: dict[str, Any]) -> Table:
    """The listed candidates with space group, every score column (units in the header), known/new."""
    columns = data["scores"]
    table = Table(title=f"best {len(data['candidates'])} relaxed candidates (lowest e_hull first)")
    for name in ("id", "formula", "gen", "origin/operator", "space group"):
        table.add_column(name, justify="right" if name in ("id", "gen") else "left")
    for column in columns:
        table.add_column(_header(column), justify="right")
    table.add_column("conv", justify="right")
    table.add_column("known as / new", justify="left")
    uncertain = any(c["uncertainty"] for c in data["candidates"])
    if uncertain:
        table.add_column("|Δe_hull| 2 models", justify="right")
    for c in data["candidates"]:
        spread = c["uncertainty"] and abs(c["uncertainty"]["delta_e_hull_ev_per_atom"])
        scores = [_number(c["scores"].get(col["name"]), 1 if col["unit"] == "GPa" else 3) for col in columns]
        table.add_row(
            str(c["id"]),
            c["formula"],
            str(c["generation"]),
            f"{c['origin']}/{c['operator']}",
            space_group_text(c["space_group"]) or "—",
            *scores,
            "yes" if c["converged"] else "no",
            known_label(c["known_id"], c["novelty"], c["flags"], c["hull_entry"]),
            *([_number(spread)] if uncertain else []),
        )
    return table


def dft_table(data: dict[str, Any]) -> Table:
    """The listed candidates with an ingested DFT result: DFT e_hull, its verdict, MLIP − DFT errors."""
    summary = data["dft"]
    mae = summary["energy_mae_ev_per_atom"]
    title = (
        f"DFT: {summary['results']} results for {summary['candidates']} candidates "
        f"({summary['comparable']} on the hull); MLIP stability calls confirmed "
        f"{summary['stability_confirmed']} of {summary['stability_calls']}; energy MAE "
        f"{_number(mae)} eV/atom"
    )
    table = Table(title=title)
    columns = ("id", "formula", "run type", "MLIP e_hull", "DFT e_hull", "DFT says", "confirmed",
               "MLIP − DFT e_hull", "MLIP − DFT E")  # fmt: skip
    for name in columns:
        table.add_column(name, justify="left" if name in ("formula", "run type", "DFT says") else "right")
    for c in data["candidates"]:
        dft = c["dft"]
        if dft is None:
            continue
        confirmed = {True: "yes", False: "no", None: "—"}[dft["confirmed"]]
        table.add_row(
            str(c["id"]),
            c["formula"],
            dft["run_type"] + ("" if dft["comparable"] else " (not comparable)"),
            _number(c["scores"].get("e_above_hull")),
            _number(dft["e_above_hull_ev_per_atom"]),
            dft["stability"] or "—",
            confirmed,
            _number(dft["mlip_minus_dft_e_hull_ev_per_atom"]),
            _number(dft["mlip_minus_dft_energy_ev_per_atom"]),
        )
    return table
