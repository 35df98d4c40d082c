"""Text shared by `status`, the report and the export manifest: score units, "name (unit)" column
headers, space groups and the known-or-new label."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matsearch.objectives import unit_of

CUSTOM_UNIT = "own unit"  # a custom score is in whatever unit its function's docstring states


def score_unit(name: str) -> str | None:
    """Unit of a score: eV/atom, GPa, ... (objectives.OBJECTIVES), or None for a custom score (its
    function's docstring says)."""
    return unit_of(name)


def score_header(name: str, label: str | None = None) -> str:
    """Column header with the unit, e.g. 'bulk_modulus (GPa)', or with `label` in place of the name
    ('B (GPa)'); a custom score says 'own unit'."""
    return f"{label or name} ({score_unit(name) or CUSTOM_UNIT})"


def space_group_text(group: Mapping[str, Any] | None) -> str | None:
    """'Fm-3m (225)' from a {"symbol", "number"} dict; None where spglib found no space group."""
    return None if group is None else f"{group['symbol']} ({group['number']})"


def known_label(
    known_id: str | None, novelty: str | None, flags: Sequence[str], hull_entry: str | None = None
) -> str:
    """'mp-22862', 'new structure' or 'new composition' ('—' when not matched yet), plus any
    artefact flags, e.g. 'new composition (elemental)'; a new structure of a composition that only
    the hull lists says so: 'new structure (hull lists mp-463; not in the known index)'."""
    label = known_id or (str(novelty) if novelty else "—").replace("_", " ")
    notes = [str(f) for f in flags]
    if hull_entry and not known_id:
        notes.insert(0, f"hull lists {hull_entry}; not in the known index")
    return f"{label} ({', '.join(notes)})" if notes else label
