"""Whether a fine-tuning set can refit AtomRef (the per-element reference energies, eV).

A least-squares shift per element is only as good as the structures that contain the element: with
a handful of structures and many elements it absorbs noise and moves whole chemistries against
the hull. AtomRef is therefore refitted only when every element of the set appears in at least
`ATOM_REF_MIN_STRUCTURES` structures; otherwise the base model's AtomRef is kept and an
`AtomRefKeptWarning` names the elements that are short, with their counts.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Sequence

from pymatgen.core import Element, Structure

from matsearch.finetune_settings import ATOM_REF_MIN_STRUCTURES

logger = logging.getLogger(__name__)


class AtomRefKeptWarning(UserWarning):
    """AtomRef was not refitted because some elements appear in too few training structures."""


def structures_per_element(structures: Sequence[Structure]) -> dict[str, int]:
    """How many of `structures` contain each element, in order of atomic number."""
    counts = Counter(z for s in structures for z in set(s.atomic_numbers))
    return {Element.from_Z(z).symbol: counts[z] for z in sorted(counts)}


def may_refit_atom_ref(
    structures: Sequence[Structure], min_structures: int = ATOM_REF_MIN_STRUCTURES
) -> bool:
    """True when every element is in at least `min_structures` of `structures`; otherwise warns
    (AtomRefKeptWarning, and the log) naming the short elements and returns False."""
    short = {el: n for el, n in structures_per_element(structures).items() if n < min_structures}
    if not short:
        return True
    listed = ", ".join(f"{el} in {n}" for el, n in short.items())
    message = (
        f"AtomRef kept from the base model: refitting it needs every element in at least "
        f"{min_structures} training structures, but {len(short)} element(s) are in fewer ({listed})"
    )
    logger.warning(message)
    warnings.warn(message, AtomRefKeptWarning, stacklevel=3)
    return False
