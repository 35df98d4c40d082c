"""Splits and curvature targets of the default-model recipe (training/recipe_data.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from training import recipe_data as rd  # noqa: E402


@pytest.fixture(scope="module")
def elastic(mirror_dir):
    """The elastic binaries of the data mirror (a mirror-only dataset)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MATSEARCH_DATA_DIR", str(mirror_dir))
        return rd.elastic_records()


def test_elastic_split_is_seeded_disjoint_and_holds_out_a_fifth(elastic):
    split = rd.elastic_split(elastic)
    again = rd.elastic_split(elastic)
    ids = {k: {r["mp_id"] for r in v} for k, v in split.items()}
    assert ids == {k: {r["mp_id"] for r in v} for k, v in again.items()}
    assert not ids["holdout"] & ids["train"] and not ids["holdout"] & ids["validation"]
    assert not ids["train"] & ids["validation"]
    assert sum(map(len, ids.values())) == len(elastic)
    assert len(ids["holdout"]) == round(0.2 * len(elastic))


def test_eos_examples_are_groups_of_strained_copies_with_bm_energies(elastic):
    cubic = [r for r in elastic if rd.usable_elastic(r, max_atoms=2)][:3]
    examples = rd.eos_examples(cubic, weight=1.0)
    groups = {e.group for e in examples}
    assert groups
    assert len(examples) == len(groups) * len(rd.RECIPE_VOLUME_STRAINS)
    for example in examples:
        assert example.coordinate in rd.RECIPE_VOLUME_STRAINS
        if example.coordinate == 0.0:
            assert example.energy == pytest.approx(0.0, abs=1e-12)
        else:
            assert example.energy > 0
