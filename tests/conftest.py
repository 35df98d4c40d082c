"""Shared fixtures: the local data mirror (../shared/data) is used unless MATSEARCH_DATA_DIR is set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("MATSEARCH_DATA_DIR", str(REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The local dataset mirror; tests that need it are skipped with a reason if it is absent."""
    path = Path(os.environ["MATSEARCH_DATA_DIR"])
    if not path.is_dir():
        pytest.skip(f"data mirror {path} not found; set MATSEARCH_DATA_DIR")
    return path
