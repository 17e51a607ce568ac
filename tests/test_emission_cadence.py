"""A backlog pushed at once gives the results of the same events pushed batch by batch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from engine_testing import make_config, random_events, run_engine, window_frame


@pytest.mark.parametrize(
    "window",
    [
        {"type": "sliding", "size": 3000, "slide": 1000, "keys": ["k"], "allowed_lateness": 300},
        {"type": "tumbling", "size": 2000, "keys": ["k", "s"], "allowed_lateness": 0},
        {"type": "session", "gap": 700, "keys": ["k"], "allowed_lateness": 200},
    ],
)
@pytest.mark.parametrize("workers", [1, 2])
def test_backlog_equals_batch_by_batch(window, workers) -> None:
    frame = random_events(np.random.default_rng(4), 3000, n_keys=6, span_ms=40_000,
                          disorder_ms=5000)  # fmt: skip
    config = make_config(window, workers=workers, batching={"max_rows": 100})
    results = []
    # one push of everything (a backlog of 30 batches) against one push per batch and
    # pushes that straddle batches; lateness and window contents must not change
    for chunk in (len(frame), 100, 37):
        sink, summary = run_engine(config, frame, chunk=chunk)
        out = window_frame(sink)
        keys = ["window_start", *window["keys"]]
        results.append((out.sort_values(keys).reset_index(drop=True), summary["events"]))
    (first, events), *others = results
    assert events["late"] > 0 and len(first) > 0
    for out, other_events in others:
        assert other_events == events
        pd.testing.assert_frame_equal(out, first)
