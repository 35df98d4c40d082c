"""Shared fixtures. Every test runs as on a fresh machine: no data mirror, an empty download cache
and downloads off (MATSEARCH_OFFLINE=1), so the defaults must work from the data shipped in the
package. Tests that need mirror-only files (large or test-only datasets from ../shared/data) ask
for `mirror_dir` (its path) or `use_mirror` (MATSEARCH_DATA_DIR set to it for one test).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("MATSEARCH_TEST_MIRROR", REPO.parent / "shared" / "data"))

os.environ.pop("MATSEARCH_DATA_DIR", None)
os.environ["MATSEARCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="matsearch-test-cache-")
os.environ["MATSEARCH_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def mirror_dir() -> Path:
    """The local dataset mirror; tests that need it are skipped with a reason where it is absent."""
    if not MIRROR.is_dir():
        pytest.skip(f"data mirror {MIRROR} not found; set MATSEARCH_TEST_MIRROR")
    return MIRROR


@pytest.fixture
def use_mirror(monkeypatch: pytest.MonkeyPatch, mirror_dir: Path) -> Path:
    """MATSEARCH_DATA_DIR points at the mirror for this test only."""
    monkeypatch.setenv("MATSEARCH_DATA_DIR", str(mirror_dir))
    return mirror_dir
