"""HTML tables of the report, from the status summary (matsearch.summary.run_summary)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from matsearch.display import known_label, score_header, space_group_text


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape("—" if value is None else str(value))


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """An HTML table inside a horizontally scrolling wrapper, so that it never widens the page."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def candidates_table(summary: dict[str, Any]) -> str:
    """The listed candidates: lineage, space group, each score column with its unit, known or new."""
    columns = summary["scores"]
    header = ["id", "formula", "gen", "origin/operator", "parents", "space group"]
    header += [score_header(c["name"]) for c in columns] + ["converged", "known as / new", "missing scores"]
    header += ["|Δe_hull| 2 models (eV/atom)", "DFT e_hull (eV/atom)"]
    rows = []
    for c in summary["candidates"]:
        missing = "; ".join(f"{k}: {v}" for k, v in c["missing_scores"].items()) or None
        rows.append(
            [
                c["id"],
                c["formula"],
                c["generation"],
                f"{c['origin']}/{c['operator']}",
                ", ".join(f"#{p}" for p in c["parents"]) or None,
                space_group_text(c["space_group"]),
                *(c["scores"].get(col["name"]) for col in columns),
                c["converged"],
                known_label(c["known_id"], c["novelty"], c["flags"], c["hull_entry"]),
                missing,
                c["uncertainty"] and abs(c["uncertainty"]["delta_e_hull_ev_per_atom"]),
                c["dft"] and c["dft"]["e_above_hull_ev_per_atom"],
            ]
        )
    return table(rows, header)


def dft_sentence(dft: dict[str, Any]) -> str:
    """One sentence: how many DFT results, stability calls confirmed, MAE (eV/atom)."""
    mae = dft["energy_mae_ev_per_atom"]
    return html.escape(
        f"{dft['results']} DFT results for {dft['candidates']} candidates, {dft['comparable']} on the "
        f"hull; DFT confirms {dft['stability_confirmed']} of {dft['stability_calls']} MLIP stability "
        f"calls; energy MAE {'—' if mae is None else f'{mae:.3f}'} eV/atom."
    )


def dft_table(summary: dict[str, Any]) -> str:
    """The listed candidates with a DFT result: verdict and MLIP − DFT errors (eV/atom)."""
    header = ["id", "formula", "run type", "comparable", "MLIP e_hull", "DFT e_hull", "DFT says",
              "confirms MLIP", "MLIP − DFT e_hull", "MLIP − DFT E", "matched by"]  # fmt: skip
    rows = [
        [
            c["id"],
            c["formula"],
            d["run_type"],
            d["comparable"],
            c["scores"].get("e_above_hull"),
            d["e_above_hull_ev_per_atom"],
            d["stability"],
            d["confirmed"],
            d["mlip_minus_dft_e_hull_ev_per_atom"],
            d["mlip_minus_dft_energy_ev_per_atom"],
            d["matched_by"],
        ]  # fmt: skip
        for c in summary["candidates"]
        if (d := c["dft"]) is not None
    ]
    return table(rows, header)


def generations_table(summary: dict[str, Any]) -> str:
    """Counts per generation and, per objective, the best value this generation and so far."""
    objectives = [c for c in summary["scores"] if c["objective"]]
    counts = ["proposed", "valid", "unique", "relaxed", "failed", "metastable", "new", "sun"]
    header = ["gen", *counts[:-1], "S.U.N."]
    for o in objectives:
        header += [f"best {score_header(o['name'])} this gen", f"best {score_header(o['name'])} so far"]
    header.append("hypervolume")
    rows = []
    for g in summary["generations"]:
        row = [g["generation"] if g["completed"] else f"{g['generation']} (running)"]
        row += [g["counts"][k] for k in counts]
        for o in objectives:
            row += [g["best_this_generation"][o["name"]], g["best_so_far"][o["name"]]]
        rows.append([*row, g["hypervolume"]])
    return table(rows, header)


def csp_table(csp: dict[str, Any]) -> str:
    """Lowest energy this generation and so far, and the known-structure match, per generation."""
    header = ["gen", "lowest E this gen (eV/atom)", "lowest E so far (eV/atom)", "match id", "match RMSD"]
    rows = [
        [
            g["generation"],
            g["lowest_this_generation_ev_per_atom"],
            g["lowest_so_far_ev_per_atom"],
            None if g["match_id"] is None else f"#{g['match_id']}",
            g["match_rmsd"],
        ]
        for g in csp["per_generation"]
    ]
    return table(rows, header)


def csp_sentence(csp: dict[str, Any]) -> str:
    """One sentence: lowest structure so far and whether the known structure was found."""
    lowest, match = csp["lowest"], csp["match"]
    text = f"Target {csp['target']}. "
    if lowest is not None:
        group = space_group_text(lowest["space_group"]) or "space group not found"
        text += (
            f"Lowest energy so far: #{lowest['id']} {lowest['formula']}, {group}, "
            f"{lowest['energy_per_atom_ev']:.4f} eV/atom (generation {lowest['generation']}). "
        )
    seeds = csp["templates"]
    if seeds:
        template = lowest and lowest["template"]
        ids = ", ".join(f"#{seed['id']}" for seed in seeds)
        text += (
            f"{len(seeds)} candidates came from templates (known structures of the target's "
            f"stoichiometry type, decorated with its elements): {ids}. "
        )
        if lowest is not None:
            text += (
                "The lowest structure descends from no template. "
                if template is None
                else f"The lowest structure comes from template {template['template_id']} "
                f"({template['template_formula']}) via #{template['seed_id']}. "
            )
    if match is None:
        text += "No known structure was given (task.known_structure), so no match is reported."
    elif match["found"]:
        lowest_note = "it is the lowest-energy structure" if match["lowest_is_match"] else "not the lowest"
        text += (
            f"Known structure found: #{match['id']} in generation {match['generation']}, RMSD "
            f"{match['rmsd']:.3f} (normalised by (V/n)^1/3); {lowest_note}."
        )
    else:
        text += "The known structure has not been found."
    return html.escape(text)


def yields_table(stats: dict[str, dict[str, float]], label: str) -> str:
    """Per proposer or operator: proposed, valid, unique, relaxed, metastable-new, screened out."""
    header = [label, "proposed", "valid", "unique", "relaxed", "metastable-new", "screened out"]
    rows = [
        [
            name,
            int(row["proposed"]),
            *(
                f"{int(row[k])} ({row[k + '_rate']:.0%})"
                for k in ("valid", "unique", "relaxed", "metastable_new")
            ),
            int(row["screened"]),
        ]
        for name, row in stats.items()
    ]
    return table(rows, header)
