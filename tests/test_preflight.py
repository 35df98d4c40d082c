"""Problems of the environment a spec needs are found before the run folder is created."""

from __future__ import annotations

from pathlib import Path

import pytest

from matsearch import Search
from matsearch.errors import MatsearchError


def _spec(tmp_path: Path, proposer: dict) -> dict:
    return {
        "name": "preflight",
        "output": str(tmp_path / "runs"),
        "chemistry": {"elements": ["Na", "Cl"], "max_atoms": 8},
        "population_size": 2,
        "generations": 0,
        "proposers": [{"kind": "builtin", "fraction": 0.5}, {**proposer, "fraction": 0.5}],
    }


def _fails_before_the_folder(tmp_path: Path, proposer: dict, message: str) -> None:
    with pytest.raises(MatsearchError) as info:
        Search(_spec(tmp_path, proposer)).run()
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "runs").exists()


def test_openai_without_a_key_fails_before_the_run_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    _fails_before_the_folder(
        tmp_path,
        {"kind": "openai", "model": "gpt-4o-mini"},
        "proposers[1] (openai, model 'gpt-4o-mini') has no API key: set the OPENAI_API_KEY",
    )


def test_hf_model_that_is_neither_local_nor_cached_offline_fails_before_the_run_folder(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))  # conftest: downloads off
    _fails_before_the_folder(
        tmp_path,
        {"kind": "hf", "model": "someone/not-downloaded"},
        "proposers[1] (hf, model 'someone/not-downloaded'): the hf model 'someone/not-downloaded' is not "
        "in the local Hugging Face cache and downloads are off",
    )
    _fails_before_the_folder(
        tmp_path,
        {"kind": "hf", "model": str(tmp_path / "no" / "model")},
        "does not exist; give a local model folder or a Hugging Face hub id",
    )


def test_missing_prompt_templates_fail_before_the_run_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    _fails_before_the_folder(
        tmp_path,
        {"kind": "openai", "model": "gpt-4o-mini", "templates": str(tmp_path / "mine")},
        "prompt template directory",
    )


BASE = {"name": "t", "chemistry": {"elements": ["Na", "Cl"]}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            {**BASE, "reference": {"hull": "no/such/hull.csv"}},
            "hull.csv' is neither a known reference (mp20-subset, mp-2023-01-10) nor an existing CSV/JSON",
            id="missing-reference-data",
        ),
        pytest.param(
            {**BASE, "chemistry": {"elements": ["Na", "F"]}, "task": {"kind": "csp", "target": "NaF2"}},
            "task.target 'NaF2' has no charge-balanced oxidation states",
            id="csp-target-not-charge-balanced",
        ),
        pytest.param(
            {**BASE, "mlip": {"model": "no/such/model.pt"}},
            "'mlip': model 'no/such/model.pt' is neither a model name (default, chgnet-0.3.0",
            id="missing-model-file",
        ),
        pytest.param(
            {**BASE, "mlip": {"prerelax": "no-such-model"}},
            "'mlip': prerelax 'no-such-model' is neither a model name (default, chgnet-0.3.0",
            id="missing-prerelax-model",
        ),
    ],
)
def test_what_a_spec_names_is_checked_before_the_run_not_when_reading_it(data: dict, message: str) -> None:
    """spec.py checks shapes only (reading a stored run's spec needs none of these); preflight
    refuses the files, models and chemistry a run could not use, in one sentence."""
    from matsearch.errors import SpecError
    from matsearch.preflight import check_inputs
    from matsearch.spec import parse_spec

    spec = parse_spec(data)
    with pytest.raises(SpecError) as info:
        check_inputs(spec)
    assert message in str(info.value) and "\n" not in str(info.value)
