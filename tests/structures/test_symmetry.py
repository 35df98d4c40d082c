"""Space groups, and spglib's C-level chatter kept off the terminal and sent to the log."""

from __future__ import annotations

import logging
import os

import pytest
from pymatgen.core import Lattice, Structure

from matsearch.structures.symmetry import SpaceGroup, space_group, spglib_output_logged


def test_rock_salt_is_fm3m() -> None:
    rocksalt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.69), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3])
    assert space_group(rocksalt) == SpaceGroup("Fm-3m", 225)


def test_spglib_lines_written_to_fd_2_go_to_the_log_and_other_lines_stay_on_stderr(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """As spglib's C code writes them: straight to file descriptor 2, not through sys.stderr."""
    with caplog.at_level(logging.INFO, logger="matsearch.structures.symmetry"), spglib_output_logged():
        os.write(2, b"spglib: ssm_get_exact_positions failed.\n")
        os.write(2, b"a library's own warning\n")
    err = capfd.readouterr().err
    assert err == "a library's own warning\n"
    assert [r.getMessage() for r in caplog.records] == ["spglib: ssm_get_exact_positions failed."]
    os.write(2, b"after the block\n")
    assert capfd.readouterr().err == "after the block\n"
