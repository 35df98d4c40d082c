"""Progress events of a run: one generation's counts, sent to the caller's callback as they change."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from matsearch.candidate import Candidate
from matsearch.generation_record import generation_counts


@dataclass
class Progress:
    """Counts for one generation, sent to the `on_progress` callback after every change."""

    generation: int
    stage: str  # "proposing", "checking", "relaxing", "selecting", "done"
    total: int = 0  # children proposed this generation
    counts: dict[str, int] = field(default_factory=dict)  # proposed/valid/unique/relaxed/metastable


ProgressCallback = Callable[[Progress], None]


class ProgressReporter:
    """Sends a generation's counts to `callback` (nothing without one)."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self.callback = callback
        self._last = 0.0  # time.monotonic() of the last event sent

    def __call__(
        self, children: list[Candidate], generation: int, stage: str, throttle_s: float = 0.0
    ) -> None:
        """Report `stage`; with `throttle_s`, at most once per that many seconds (counting costs
        O(children))."""
        if self.callback is None:
            return
        now = time.monotonic()
        if throttle_s and now - self._last < throttle_s:
            return
        self._last = now
        self.callback(Progress(generation, stage, len(children), generation_counts(children)))
