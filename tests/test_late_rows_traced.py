"""Late rows name the input row each came from, as quarantined and dead-lettered ones do.

Every event is accounted for; a late one should be traceable to where it entered
without the schema needing an id field. The oracle is the frame that was pushed:
row ``_row`` of ``_source`` must hold the late row's values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from engine_testing import late_rows_case, make_config, random_events

from gpu_engine.engine import Engine
from gpu_engine.io.sinks import MemorySink


def check_late_rows_traced(backend: str) -> None:
    sink, frame = late_rows_case(backend)
    late = sink.result("late/w")
    quarantine = sink.result("quarantine")
    assert late is not None and late.num_rows > 20 and quarantine is not None
    assert late.column_names[-2:] == ["_source", "_row"]
    assert late.schema.field("_row").type == "int64"
    late_frame = late.to_pandas()
    by_source = {f"src-{j}": frame[frame["src"] == j].reset_index(drop=True) for j in (0, 1)}
    for source, rows in late_frame.groupby("_source"):
        pushed = by_source[str(source)].iloc[rows["_row"].to_numpy()]
        for column in ("t", "k", "e", "u"):
            np.testing.assert_array_equal(
                rows[column].to_numpy(dtype=float, na_value=np.nan),
                pushed[column].to_numpy(dtype=float, na_value=np.nan),
            )
        assert (pushed["e"] != 9).all()  # a quarantined row is never late too
    assert set(late_frame["_source"]) == {"src-0", "src-1"}
    traced = pd.concat([late_frame[["_source", "_row"]],
                        quarantine.to_pandas()[["_source", "_row"]]])  # fmt: skip
    assert not traced.duplicated().any()


def test_late_rows_name_their_input_row() -> None:
    check_late_rows_traced("cpu")


@pytest.mark.parametrize(
    "source, name",
    [(Path("in/a.csv"), "in/a.csv"), (7, "7"), ("caf\udce9.csv", "caf\\udce9.csv")],
    ids=["path", "int", "lone-surrogate"],
)
def test_a_source_that_is_not_plain_text_is_named_as_text(source: object, name: str) -> None:
    """A ``Path``, a number, or a file name that ``os.fsdecode`` left with a lone surrogate
    ended the run at the first late row (Arrow could not store it), the batch half done."""
    config = make_config({"type": "tumbling", "size": 1000, "allowed_lateness": 0},
                         batching={"max_rows": 2})  # fmt: skip
    sink = MemorySink()
    engine = Engine(config, sinks=[sink])
    frame = random_events(np.random.default_rng(3), 4, span_ms=10)
    frame["t"] = [5_000, 6_500, 1_000, 1_200]  # the second batch is late
    frame.loc[3, "e"] = 9  # and quarantined
    engine.push(frame, source=source)  # type: ignore[arg-type]
    summary = engine.close()
    assert summary["events"]["late"] == 1 and summary["events"]["quarantined"] == 1
    assert sink.result("late/w").column("_source").to_pylist() == [name]
    assert sink.result("quarantine").column("_source").to_pylist() == [name]
