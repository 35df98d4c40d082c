"""The model shipped inside the package (``chgnet-les-ft1``) loads by name and behaves."""

from __future__ import annotations

import pytest
import torch
from pymatgen.core import Lattice, Structure

from matsearch.errors import ModelError
from matsearch.mlip import load_model, model_names
from matsearch.mlip.heads.les import LatentEwaldHead
from matsearch.mlip.heads.pair import PairCorrection
from matsearch.mlip.registry import SHIPPED, shipped_model_path
from matsearch.mlip.state import BatchedState
from matsearch.mlip.testing import validate_model

NAME = "chgnet-les-ft1"


@pytest.fixture(scope="module")
def shipped():
    return load_model(NAME, device="cpu", dtype=torch.float64)


def small_structures() -> list[Structure]:
    nacl = Structure(
        Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    ).get_primitive_structure()
    nacl.translate_sites([1], [0.05, -0.03, 0.02], frac_coords=False)
    mgo = Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.52, 0.47, 0.5]])
    return [nacl, mgo]


def test_the_shipped_model_is_listed_and_its_file_is_in_the_package():
    assert NAME in model_names()
    assert NAME in SHIPPED
    path = shipped_model_path(NAME)
    assert path.stat().st_size < 10 * 2**20  # a few MB


def test_the_shipped_model_loads_by_name_with_trained_heads(shipped):
    assert shipped.info.name == NAME
    assert isinstance(shipped.long_range, LatentEwaldHead)
    assert not shipped.long_range.charge_net.output_is_zero()
    assert isinstance(shipped.pair_correction, PairCorrection)
    assert not shipped.pair_correction.output_is_zero()


def test_the_shipped_long_range_head_contributes_energy_and_charges(shipped):
    state = BatchedState.from_structures(small_structures(), dtype=torch.float64)
    full = shipped.compute(state)
    head = shipped.long_range
    shipped.long_range = None
    try:
        short = shipped.compute(state)
    finally:
        shipped.long_range = head
    assert (full["energy"] - short["energy"]).abs().max() > 1e-6
    assert full["charges"].abs().max() > 1e-4


def test_the_shipped_model_passes_the_conformance_checks(shipped):
    validate_model(shipped, small_structures())


def test_the_chgnet_reference_stays_selectable():
    assert "default" in model_names() and "chgnet-0.3.0" in model_names()
    with pytest.raises(ModelError, match="unknown model"):
        load_model("chgnet-les-ft0")


def test_a_model_file_holding_the_dropped_angle_block_still_loads(shipped):
    """Files written before the unused last angle update was dropped (the shipped one among them)
    hold its weights; they load, and the model never uses them."""
    saved = torch.load(shipped_model_path(NAME), map_location="cpu", weights_only=True)
    dropped = [key for key in saved["state_dict"] if key.startswith("angle_updates.2.")]
    assert dropped
    assert not any(name.startswith("angle_updates.2.") for name, _ in shipped.named_parameters())
    assert len(shipped.angle_updates) == shipped.config.n_conv - 2
