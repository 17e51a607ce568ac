"""A pushed column that happens to be called ``_line_error`` is data, not the file
readers' marker of an unreadable row: its rows were quarantined with its text as their
reason, and the column dropped."""

from __future__ import annotations

import pandas as pd
from engine_testing import make_config

from gpu_engine.engine import Engine
from gpu_engine.io.sinks import MemorySink


def test_a_column_named_like_the_readers_marker_is_kept_as_data() -> None:
    sink = MemorySink()
    engine = Engine(make_config({"type": "tumbling", "size": 1000}), sinks=[sink])
    frame = pd.DataFrame({"t": [1_000_000, 1_000_001, 1_000_002], "k": [1, 1, 1],
                          "e": [1, 9, 1], "_line_error": ["mine", "also mine", None]})  # fmt: skip
    engine.push(frame)
    events = engine.close()["events"]
    assert (events["valid"], events["quarantined"]) == (2, 1)
    quarantine = sink.result("quarantine").to_pylist()
    assert [(r["_row"], r["_line_error"], r["_field"]) for r in quarantine] == [
        (1, "also mine", "e")
    ]
