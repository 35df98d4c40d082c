"""Structure <-> compact JSON text for the run store.

The text keeps the lattice matrix (Å, rows are lattice vectors), the species of every site and the
fractional coordinates exactly (floats are written with Python's round-trip repr). Site properties,
charge and other metadata are not stored.
"""

from __future__ import annotations

import json
from typing import Any

from pymatgen.core import Structure

from matsearch.errors import DataError


def structure_to_json(structure: Structure) -> str:
    """Encode `structure` as a compact JSON object with keys lattice, species, frac_coords.

    An ordered site's species is a string ("Na", "Fe2+"); a disordered site's is an object
    mapping species to occupancy.
    """
    species: list[str | dict[str, float]] = []
    for site in structure:
        if site.is_ordered:
            species.append(str(site.specie))
        else:
            species.append({str(sp): float(occ) for sp, occ in site.species.items()})
    payload = {
        "lattice": structure.lattice.matrix.tolist(),
        "species": species,
        "frac_coords": structure.frac_coords.tolist(),
    }
    return json.dumps(payload, separators=(",", ":"))


def structure_from_json(text: str) -> Structure:
    """Decode text written by `structure_to_json`; raises DataError if it is not such text."""
    try:
        payload: dict[str, Any] = json.loads(text)
        return Structure(
            payload["lattice"],
            payload["species"],
            payload["frac_coords"],
            coords_are_cartesian=False,
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"stored structure text is not a structure JSON object ({exc}); "
            "expected keys lattice, species, frac_coords"
        ) from exc
