"""RelaxSettings: each bad value refused in one sentence, and a spec's `mlip` section arriving
unchanged in the relaxer that the executor builds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pymatgen.core import Lattice, Structure

from matsearch.evaluation.executors import build_executor
from matsearch.mlip import relax
from matsearch.relax_defaults import RelaxSettings
from matsearch.spec import load_spec


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"fmax": 0.0}, "fmax must be a positive number of eV/Å, got 0.0", id="fmax-zero"),
        pytest.param(
            {"fmax": float("nan")}, "fmax must be a positive number of eV/Å, got nan", id="fmax-nan"
        ),
        pytest.param({"steps": -1}, "steps must be a whole number, zero or more, got -1", id="steps"),
        pytest.param({"steps": 2.5}, "steps must be a whole number, zero or more, got 2.5", id="steps-float"),
        pytest.param(
            {"timeout_s": -3.0},
            "timeout_s must be a positive number of seconds or None, got -3.0",
            id="timeout",
        ),
        pytest.param({"batch_atoms": 0}, "batch_atoms must be a whole number, at least 1, got 0", id="atoms"),
        pytest.param(
            {"max_batch_memory_gb": float("inf")},
            "max_batch_memory_gb must be a positive number of GB, got inf",
            id="memory",
        ),
        pytest.param(
            {"prerelax_model": ""},
            "prerelax_model must be a model name or file, or None, got ''",
            id="prerelax",
        ),
        pytest.param(
            {"prerelax_fmax": -0.1},
            "prerelax_fmax must be a positive number of eV/Å, got -0.1",
            id="handover",
        ),
    ],
)
def test_each_bad_value_is_refused_in_one_sentence(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        RelaxSettings(**values)


def test_no_timeout_and_zero_steps_are_allowed() -> None:
    settings = RelaxSettings(timeout_s=None, steps=0, prerelax_model=None)
    assert (settings.timeout_s, settings.steps, settings.prerelax_model) == (None, 0, None)


def test_relax_refuses_a_bare_number_where_the_settings_go() -> None:
    """The third positional argument of `relax` was `fmax` before the record; an old call says so."""
    nacl = Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(TypeError, match="^settings must be a RelaxSettings, got float$"):
        relax([nacl], object(), 0.05)  # type: ignore[arg-type]


def _executor_relaxer(tmp_path: Path, mlip: dict):
    """The relaxer inside the local executor built from a spec file with this `mlip` section."""
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "chemistry": {"elements": ["Na", "Cl"]}, "mlip": mlip}))
    spec = load_spec(path)
    executor = build_executor(spec.executor, spec.mlip, spec.scoring)
    return executor.evaluator.relaxer


def test_the_spec_mlip_section_arrives_unchanged_in_the_executors_relaxer(tmp_path: Path) -> None:
    relaxer = _executor_relaxer(
        tmp_path,
        {
            "model": "sevennet-0",
            "device": "cpu",
            "fmax": 0.02,
            "steps": 57,
            "timeout_s": 42.5,
            "batch_atoms": 333,
            "max_batch_memory_gb": 1.5,
            "prerelax": "chgnet-0.3.0",
            "prerelax_fmax": 0.25,
        },
    )
    assert (relaxer.name, relaxer.model_name, relaxer.device) == ("matsearch", "sevennet-0", "cpu")
    assert relaxer.settings == RelaxSettings(
        fmax=0.02,
        steps=57,
        timeout_s=42.5,
        batch_atoms=333,
        max_batch_memory_gb=1.5,
        prerelax_model="chgnet-0.3.0",
        prerelax_fmax=0.25,
    )


def test_a_null_prerelax_in_the_spec_is_no_prerelax_model(tmp_path: Path) -> None:
    relaxer = _executor_relaxer(tmp_path, {"prerelax": None, "fmax": 0.03})
    assert relaxer.settings == RelaxSettings(fmax=0.03, prerelax_model=None)


def test_the_chgnet_backend_gets_the_spec_fmax_steps_and_timeout(tmp_path: Path) -> None:
    relaxer = _executor_relaxer(tmp_path, {"backend": "chgnet", "fmax": 0.04, "steps": 90, "timeout_s": 12})
    assert relaxer.name == "chgnet"
    settings = relaxer.settings
    assert (settings.fmax, settings.steps, settings.timeout_s) == (0.04, 90, 12)
