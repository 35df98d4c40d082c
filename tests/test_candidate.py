"""A candidate's status moves only forward, through Candidate's methods, and each move says why."""

from __future__ import annotations

import pytest

from matsearch.candidate import NEXT_STATUS, Candidate, Status


def _new() -> Candidate:
    return Candidate(id=5, generation=1, origin="builtin", operator="strain")


def test_a_candidate_goes_from_proposed_to_scored_and_may_turn_out_a_duplicate() -> None:
    candidate = _new()
    candidate.accept()
    assert (candidate.status, candidate.reason) == (Status.VALID, None)
    candidate.score()
    assert candidate.status == Status.SCORED
    candidate.relaxed_into(3)
    assert candidate.status == Status.DUPLICATE and candidate.duplicate_of == 3
    assert candidate.reason == "relaxed into the structure of candidate 3"


def test_rejections_and_failures_keep_their_reason() -> None:
    rejected, duplicate, failed = _new(), _new(), _new()
    rejected.reject("min_distance: Na-Cl 0.90 Å")
    duplicate.reject_duplicate(2)
    failed.accept()
    failed.fail("timeout after 300 s")
    assert (rejected.status, rejected.reason) == (Status.INVALID, "min_distance: Na-Cl 0.90 Å")
    assert (duplicate.status, duplicate.reason) == (Status.DUPLICATE, "duplicate of candidate 2")
    assert duplicate.duplicate_of is None  # a duplicate before relaxation is not counted as one after
    assert (failed.status, failed.reason) == (Status.FAILED, "timeout after 300 s")


@pytest.mark.parametrize(
    ("start", "move"),
    [
        (Status.PROPOSED, "score"),
        (Status.INVALID, "accept"),
        (Status.SCORED, "accept"),
        (Status.FAILED, "score"),
        (Status.DUPLICATE, "accept"),
    ],
)
def test_a_move_the_lifecycle_does_not_allow_is_refused(start: Status, move: str) -> None:
    candidate = _new()
    candidate.status = start
    with pytest.raises(ValueError, match=f"candidate 5: status {start} cannot become"):
        getattr(candidate, move)()
    assert candidate.status == start


def test_the_end_states_have_no_moves() -> None:
    assert not set(NEXT_STATUS) & {Status.INVALID, Status.FAILED, Status.DUPLICATE}
