"""Session lateness is judged on the merged session, as Flink does, not on an event's own gap.

An event whose own session ``[t, t + gap)`` ended by the watermark is still on
time when it falls into (or, through other events of its batch, reaches) a
session that is open. A plain Python model of those rules is the oracle.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from engine_testing import make_config, random_events, run_engine, window_frame

GAP, LATENESS = 400, 300
AGGS = [{"name": "n", "op": "count"}, {"name": "u_sum", "op": "sum", "column": "u"}]
T0 = 1_700_000_000_000


def _merge(intervals: list[list[int]]) -> list[list[int]]:
    """Overlapping or touching ``[start, end, n, u_sum, has_new]`` intervals, merged."""
    out: list[list[int]] = []
    for item in sorted(intervals):
        if out and item[0] <= out[-1][1]:
            last = out[-1]
            out[-1] = [last[0], max(last[1], item[1]), last[2] + item[2], last[3] + item[3],
                       last[4] or item[4]]  # fmt: skip
        else:
            out.append(list(item))
    return out


def _model(frame: pd.DataFrame, chunk: int) -> tuple[pd.DataFrame, int]:
    """Sessions (``window_start``, ``window_end``, k, n, u_sum) and the late count.

    Per batch: the watermark is the one at the batch's start; each key's events
    are merged with its open sessions; a merged session that ends by the
    watermark holds only late events (open sessions end after it). Then the
    watermark advances and the sessions it passed are emitted.
    """
    watermark, max_time = -(2**62), -(2**62)
    open_by_key: dict[int, list[list[int]]] = {}
    emitted, late = [], 0
    for lo in range(0, len(frame), chunk):
        batch = frame.iloc[lo : lo + chunk]
        for k, events in batch.groupby("k"):
            fresh = [[int(t), int(t) + GAP, 1, int(u), 1]
                     for t, u in zip(events["t"], events["u"], strict=True)]  # fmt: skip
            sessions = []
            for merged in _merge(open_by_key.get(int(k), []) + fresh):
                if merged[1] <= watermark:  # only this batch's events: all late
                    late += merged[2]
                else:
                    sessions.append(merged)
            open_by_key[int(k)] = sessions
        max_time = max(max_time, int(batch["t"].max()))
        watermark = max(watermark, max_time - LATENESS)
        for k, sessions in open_by_key.items():
            emitted += [(s[0], s[1], k, s[2], s[3]) for s in sessions if s[1] <= watermark]
            open_by_key[k] = [s for s in sessions if s[1] > watermark]
    emitted += [(s[0], s[1], k, s[2], s[3]) for k, ss in open_by_key.items() for s in ss]
    columns = ["window_start", "window_end", "k", "n", "u_sum"]
    return pd.DataFrame(emitted, columns=columns), late


def _engine(frame: pd.DataFrame, chunk: int, workers: int = 1) -> tuple[pd.DataFrame, dict]:
    window = {"type": "session", "gap": GAP, "keys": ["k"], "allowed_lateness": LATENESS,
              "aggregations": AGGS}  # fmt: skip
    config = make_config(window, workers=workers, batching={"max_rows": chunk})
    sink, summary = run_engine(config, frame, chunk=chunk)
    return window_frame(sink), summary


def _events(times: np.ndarray, k: int) -> pd.DataFrame:
    """Events of key ``k`` at ``times`` with every column of the test schema."""
    return pd.DataFrame({"t": times, "k": k, "s": "a", "e": np.int8(0), "x": 1.0, "u": 1})


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[["window_start", "window_end", "k", "n", "u_sum"]].astype("int64")
    return frame.sort_values(["k", "window_start"]).reset_index(drop=True)


def test_an_event_inside_an_open_session_is_not_late() -> None:
    """One session 0..20 s is open (watermark 18 s) when an event at 5 s arrives alone."""
    frame = _events(T0 + np.r_[np.arange(0, 20_001, 500), 5_000], 1)
    window = {"type": "session", "gap": 1000, "keys": ["k"], "allowed_lateness": 2000,
              "aggregations": [{"name": "n", "op": "count"}]}  # fmt: skip
    results = []
    for rows in (41, 1000):  # the last event alone in its batch, or with the others
        sink, summary = run_engine(make_config(window, batching={"max_rows": rows}), frame,
                                   chunk=rows)  # fmt: skip
        assert summary["events"]["late"] == 0
        results.append(window_frame(sink))
    for out in results:
        assert out[["window_start", "window_end", "n"]].values.tolist() == [[T0, T0 + 21_000, 42]]


def test_late_events_that_reach_an_open_session_through_their_batch() -> None:
    """An event that only touches another late event of its batch, which touches the open
    session, joins it; one that touches nothing open, or only an emitted session, is late."""
    first = T0 + np.r_[0, 300, 5_000, 5_300, 5_600, 5_900]  # sessions [0, 700) and [5000, 6300)
    # watermark 5_600: [0, 700) was emitted. Then: 6_000 (inside the open one), 4_700 and
    # 4_350 (a chain down from it), 200 (touches only the emitted session), 2_000 (alone).
    second = T0 + np.r_[6_000, 4_700, 4_350, 200, 2_000]
    frame = _events(np.r_[first, second], 3)
    out, summary = _engine(frame, chunk=6)
    assert summary["events"]["late"] == 2
    got = _sorted(out)[["window_start", "window_end", "n"]] - [T0, T0, 0]
    assert got.values.tolist() == [[0, 700, 2], [4_350, 6_400, 7]]


@pytest.mark.parametrize("seed", range(6))
def test_random_disordered_sessions_match_the_model(seed) -> None:
    rng = np.random.default_rng(seed)
    frame = random_events(rng, 3000, n_keys=6, span_ms=60_000, disorder_ms=2500, null_share=0)
    chunk = int(rng.choice([7, 60, 250]))
    expected, late = _model(frame, chunk)
    assert late > 0  # the streams do test lateness
    for workers in (1, 2):
        out, summary = _engine(frame, chunk, workers)
        assert summary["events"]["late"] == late
        pd.testing.assert_frame_equal(_sorted(out), _sorted(expected))
