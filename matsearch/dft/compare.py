"""MLIP against DFT for the ingested candidates: per-candidate view and the run's summary (eV/atom).

Per candidate the latest comparable result counts (else the latest): its DFT e_hull and stability
class (``dft.scores.stability``), whether it confirms the MLIP's class, and MLIP − DFT errors of
e_hull and of the MP2020-corrected energy per atom (each at its own relaxed structure).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matsearch.candidate import Candidate
from matsearch.dft.scores import stability


def mlip_corrected_energy(candidate: Candidate) -> float | None:
    """The candidate's MLIP energy per atom on the MP2020 scale (eV/atom)."""
    if candidate.energy_per_atom is None:
        return None
    return candidate.energy_per_atom + float(candidate.extra.get("mp2020_correction_ev_per_atom", 0.0))


def latest_results(results: Sequence[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """candidate id → the result that counts for it (latest comparable, else latest)."""
    chosen: dict[int, dict[str, Any]] = {}
    for row in results:  # ingestion order
        previous = chosen.get(row["candidate_id"])
        if previous is None or row["comparable"] or not previous["comparable"]:
            chosen[row["candidate_id"]] = row
    return chosen


def candidate_dft(candidate: Candidate, row: dict[str, Any], n_results: int) -> dict[str, Any]:
    """The DFT view of one candidate (schema: status.schema.json, candidates[].dft)."""
    dft_hull = row["e_above_hull_ev_per_atom"]
    dft_class, mlip_class = stability(dft_hull), stability(candidate.e_above_hull)
    mlip_energy = mlip_corrected_energy(candidate)
    dft_energy = row["corrected_energy_per_atom_ev"]
    return {
        "run_type": row["run_type"],
        "comparable": row["comparable"],
        "note": row["note"],
        "energy_per_atom_ev": row["energy_per_atom_ev"],
        "corrected_energy_per_atom_ev": dft_energy,
        "e_above_hull_ev_per_atom": dft_hull,
        "stability": dft_class,
        "mlip_stability": mlip_class,
        "confirmed": None if dft_class is None or mlip_class is None else dft_class == mlip_class,
        "mlip_minus_dft_e_hull_ev_per_atom": None
        if dft_hull is None or candidate.e_above_hull is None
        else candidate.e_above_hull - dft_hull,
        "mlip_minus_dft_energy_ev_per_atom": None
        if dft_energy is None or mlip_energy is None
        else mlip_energy - dft_energy,
        "matched_by": row["matched_by"],
        "source": row["source"],
        "n_results": n_results,
    }


def dft_views(
    candidates: Sequence[Candidate], results: Sequence[dict[str, Any]]
) -> dict[int, dict[str, Any]]:
    """candidate id → `candidate_dft`, for the candidates with an ingested result."""
    by_id = {c.id: c for c in candidates}
    counts: dict[int, int] = {}
    for row in results:
        counts[row["candidate_id"]] = counts.get(row["candidate_id"], 0) + 1
    return {
        cid: candidate_dft(by_id[cid], row, counts[cid])
        for cid, row in latest_results(results).items()
        if cid in by_id
    }


def dft_summary(views: dict[int, dict[str, Any]], n_results: int) -> dict[str, Any]:
    """How many results and candidates, how many MLIP stability calls DFT confirms, MAE of energy
    and e_hull (eV/atom) over the comparable ones."""
    comparable = [v for v in views.values() if v["comparable"]]
    called = [v for v in comparable if v["confirmed"] is not None]
    energy = [
        abs(v["mlip_minus_dft_energy_ev_per_atom"])
        for v in comparable
        if v["mlip_minus_dft_energy_ev_per_atom"] is not None
    ]
    hull = [
        abs(v["mlip_minus_dft_e_hull_ev_per_atom"])
        for v in comparable
        if v["mlip_minus_dft_e_hull_ev_per_atom"] is not None
    ]
    return {
        "results": n_results,
        "candidates": len(views),
        "comparable": len(comparable),
        "stability_calls": len(called),
        "stability_confirmed": sum(v["confirmed"] for v in called),
        "energy_mae_ev_per_atom": sum(energy) / len(energy) if energy else None,
        "e_hull_mae_ev_per_atom": sum(hull) / len(hull) if hull else None,
    }
