"""Spec fuzzer: whatever a spec file holds, loading it either succeeds or stops with one sentence
(SpecError, which the CLI prints on one line with exit code 2); never a traceback."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matsearch.errors import SpecError
from matsearch.spec import RunSpec, load_spec

VALID = {
    "name": "fuzz",
    "seed": 1,
    "chemistry": {"elements": ["Na", "Cl"], "max_atoms": 8, "max_elements": 2},
    "task": {"kind": "generate"},
    "population_size": 4,
    "children_per_generation": 4,
    "generations": 1,
    "proposers": [{"kind": "builtin", "fraction": 1.0, "weights": {"strain": 1.0}}],
    "mlip": {"backend": "matsearch", "model": "default", "fmax": 0.05, "steps": 10},
    "executor": {"kind": "local"},
    "objectives": [{"name": "e_above_hull", "direction": "min", "bounds": [None, 1.0]}],
    "selection": "pareto",
    "custom": {},
    "validity": {"charge_neutrality": True, "volume_ratio": [0.25, 3.0]},
    "reference": {"hull": "mp20-subset", "elemental": "dft"},
    "metrics": {"stable_threshold": 0.0},
}


def _paths(value: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path in the valid spec (list items by index)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


PATHS = _paths(VALID)
KEYS = sorted({p[-1] for p in PATHS if isinstance(p[-1], str)})

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            0,
            -1,
            1e9,
            2**64,
            "",
            "~nobody/x.pt",
            "NaCl2",
            "Na1e400Cl",
            "x" * 300,
            "a\x00b",
            "Na-Cl",
            "csp",
            "chgnet",
            "a:b",
        ]
    ),
    st.text(max_size=12),
    st.sampled_from(KEYS),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=4),
    ),
    max_leaves=12,
)
mutations = st.lists(
    st.tuples(st.sampled_from(PATHS), st.sampled_from(["set", "delete"]), values), min_size=1, max_size=4
)


def _mutated(changes: list[tuple]) -> object:
    spec = copy.deepcopy(VALID)
    for path, action, value in changes:
        parent: object = spec
        for key in path[:-1]:
            try:
                parent = parent[key]  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                break
        else:
            try:
                if action == "delete":
                    del parent[path[-1]]  # type: ignore[union-attr, arg-type]
                else:
                    parent[path[-1]] = value  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                pass
    return spec


def _check_one_sentence(path: Path) -> None:
    try:
        spec = load_spec(path)
    except SpecError as exc:
        message = str(exc)
        assert message and "\n" not in message and "Traceback" not in message
    else:
        assert isinstance(spec, RunSpec)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=mutations)
def test_mutated_specs_load_or_fail_with_one_sentence(tmp_path: Path, changes: list[tuple]) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(_mutated(changes), allow_unicode=True))
    _check_one_sentence(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_arbitrary_files_load_or_fail_with_one_sentence(tmp_path: Path, text: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(text, errors="surrogateescape")
    _check_one_sentence(path)


def test_the_fuzzer_starts_from_a_valid_spec(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(VALID))
    assert load_spec(path).population_size == 4
    assert not math.isnan(load_spec(path).mlip.fmax)
