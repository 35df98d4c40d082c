"""JSON schema of an answer: `{"structures": [{"formula", "lattice", "species", "coords"}]}`.

Sent as `response_format` to servers that constrain decoding to a schema (OpenAI, vLLM, SGLang,
llama.cpp, Ollama). It fits the strict subset of JSON Schema (every property required, no
additional properties) and limits species to the run's elements and atoms to `max_atoms`.
"""

from __future__ import annotations

from typing import Any

from matsearch.structures.limits import ChemistryLimits

SCHEMA_NAME = "crystal_structures"


def _vectors(description: str, min_items: int, max_items: int) -> dict[str, Any]:
    return {
        "type": "array",
        "description": description,
        "minItems": min_items,
        "maxItems": max_items,
        "items": {"type": "array", "minItems": 3, "maxItems": 3, "items": {"type": "number"}},
    }


def structures_schema(limits: ChemistryLimits) -> dict[str, Any]:
    """The schema of an answer holding crystal structures within `limits`."""
    structure = {
        "type": "object",
        "additionalProperties": False,
        "required": ["formula", "lattice", "species", "coords"],
        "properties": {
            "formula": {"type": "string", "description": "reduced formula, e.g. NaCl"},
            "lattice": _vectors("the three lattice vectors, Å", 3, 3),
            "species": {
                "type": "array",
                "description": "element symbol of each atom",
                "minItems": 1,
                "maxItems": limits.max_atoms,
                "items": {"type": "string", "enum": list(limits.elements)},
            },
            "coords": _vectors(
                "fractional coordinates of each atom, in the order of species", 1, limits.max_atoms
            ),
        },
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["structures"],
        "properties": {"structures": {"type": "array", "items": structure}},
    }
