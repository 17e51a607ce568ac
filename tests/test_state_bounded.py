"""Window state stays bounded on an unbounded stream, as in Flink: once the watermark
passes a window (plus allowed lateness) its panes, keys, sketch entries and sessions
are freed, so state grows with the keys of the open windows, not with the stream.

Each stream's event time advances steadily and its keys churn (ids live a few
windows, then never come back). The plateau check (state after 2N batches within a
margin of state after N) is shown to fail when the freeing is switched off.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from gpu_engine.config import parse_config
from gpu_engine.engine import Engine
from gpu_engine.io.sinks import CallbackSink, MemorySink
from gpu_engine.optimizer.balance import KeyBalancer
from gpu_engine.windows.keys import KeyEncoder
from gpu_engine.windows.panes import PaneState
from gpu_engine.windows.sessions import SessionState

T0 = 1_700_000_000_000
DT = 200  # event time per batch, ms
ROWS = 500  # rows per batch
KEYS = 150  # content ids of a 2 s epoch (the next epoch has new ones)
N = 60  # batches of the first half of a stream (warm: past the first peaks)
MARGIN = 1.3  # state after 2N batches may be at most this times state after N

AGGS = [
    {"name": "n", "op": "count"},
    {"name": "x_sum", "op": "sum", "column": "x"},
    {"name": "x_std", "op": "std", "column": "x"},
    {"name": "x_p90", "op": "quantile", "column": "x", "q": 0.9},
    {"name": "users", "op": "count_distinct", "column": "u"},
]
WINDOWS: dict[str, dict[str, Any]] = {
    "tumbling": {"type": "tumbling", "size": 1000, "keys": ["k"]},
    "sliding_top_k": {
        "type": "sliding",
        "size": 2000,
        "slide": 500,
        "keys": ["k"],
        "top_k": {"by": "n", "k": 5},
    },
    # every user has events in one batch only: its session never sees another event
    "session": {"type": "session", "gap": 500, "keys": ["u"]},
    "string_keys": {"type": "tumbling", "size": 1000, "keys": ["s"]},
    "adaptive": {"type": "tumbling", "size": 1000, "keys": ["k"]},  # key_balancing: adaptive
}


def _config(window: dict[str, Any], workers: int) -> Any:
    fields = {
        "t": {"type": "int64", "required": True},
        "k": {"type": "int64", "required": True},
        "u": {"type": "int64", "required": True},
        "s": {"type": "string", "required": True},
        "x": {"type": "float64", "nullable": True},
    }
    return parse_config(
        {
            "schema": {"time": "t", "fields": fields},
            "windows": [{"name": "w", "allowed_lateness": 300, "aggregations": AGGS, **window}],
            "batching": {"max_rows": ROWS, "max_delay": "1h"},  # one push, one batch
            "backend": "cpu",
            "workers": workers,
            "key_balancing": "adaptive" if window is WINDOWS["adaptive"] else "hash",
        }
    )


def _batch(rng: np.random.Generator, b: int) -> pd.DataFrame:
    """Batch ``b``: DT ms of events, KEYS content ids a 2 s epoch, 200 new users a batch."""
    t = T0 + b * DT + np.sort(rng.integers(0, DT, ROWS)) - rng.integers(0, 150, ROWS)
    k = (t - T0 + 150) // 2000 * KEYS + rng.integers(0, KEYS, ROWS)
    return pd.DataFrame(
        {
            "t": t,
            "k": k,
            "u": b * 200 + rng.integers(0, 200, ROWS),
            "s": np.char.add("id-", k.astype(str)).astype(object),
            "x": pd.array(np.where(rng.random(ROWS) < 0.1, np.nan, rng.gamma(2, 50, ROWS))),
        }
    )


class Soak(NamedTuple):
    states: list[int]  # the window's state_bytes after each batch
    strings: list[int]  # strings its key encoder holds (not in state_bytes) after each batch
    balanced: list[int]  # keys the adaptive balancer holds loads for after each batch


@functools.cache
def _stream() -> list[pa.Table]:
    """The 2N batches every soak pushes (made once)."""
    rng = np.random.default_rng(0)
    return [pa.Table.from_pandas(_batch(rng, b), preserve_index=False) for b in range(2 * N)]


def _soak(window: str, workers: int = 1) -> Soak:
    """Run the stream through ``window``."""
    engine = Engine(_config(WINDOWS[window], workers), sinks=[CallbackSink(lambda n, t: None)])
    soak = Soak([], [], [])
    balancer = getattr(engine.operators[0], "balancer", None)
    for table in _stream():
        engine.push(table)
        soak.states.append(engine.summary()["windows"]["w"]["state_bytes"])
        soak.strings.append(_encoder(engine).n_strings)
        soak.balanced.append(0 if balancer is None else balancer.n_keys)
    return soak


def _encoder(engine: Engine) -> KeyEncoder:
    op = engine.operators[0]
    return op.shards[0].encoder if hasattr(op, "shards") else op.encoder


def _growth(sizes: list[int]) -> float:
    """Peak over the second half's last half over the peak over the first half's last half
    (capacities double, so peaks are compared, not single samples)."""
    return max(sizes[3 * N // 2 : 2 * N]) / max(1, *sizes[N // 2 : N])


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("window", list(WINDOWS))
def test_state_plateaus_on_a_long_stream(window: str, workers: int) -> None:
    soak = _soak(window, workers)
    assert _growth(soak.states) <= MARGIN, soak.states[N // 2 :: 10]
    assert _growth(soak.strings) <= MARGIN, soak.strings[N // 2 :: 10]
    assert _growth(soak.balanced) <= MARGIN, soak.balanced[N // 2 :: 10]
    if window == "adaptive" and workers > 1:
        assert max(soak.balanced) > 0


@pytest.mark.parametrize(
    ("window", "owner", "freeing"),
    [
        ("tumbling", PaneState, "drop_panes_before"),
        ("sliding_top_k", PaneState, "drop_panes_before"),
        ("session", SessionState, "_compact"),
        ("string_keys", KeyEncoder, "forget_unused"),
        ("adaptive", KeyBalancer, "keep_only"),
    ],
)
def test_the_plateau_check_fails_without_freeing(
    window: str, owner: type, freeing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above has teeth: with the freeing switched off, state grows with the stream."""
    keep_all = {
        "drop_panes_before": lambda self, first_live: self,
        "_compact": lambda self: None,
        "forget_unused": lambda self, live_atoms: None,
        "keep_only": lambda self, keys: None,
    }[freeing]
    monkeypatch.setattr(owner, freeing, keep_all)
    soak = _soak(window, workers=2 if window == "adaptive" else 1)
    grown = {"string_keys": soak.strings, "adaptive": soak.balanced}.get(window, soak.states)
    assert _growth(grown) > MARGIN


def test_string_dictionary_holds_the_open_windows_keys_only() -> None:
    """String keys churn: the dictionary keeps the live keys, not every key ever seen."""
    seen = KEYS * (2 * N * DT // 2000 + 1)  # distinct ids over the stream
    assert max(_soak("string_keys").strings) < seen / 2


@pytest.mark.parametrize(("window", "key"), [("string_keys", "s"), ("adaptive", "k")])
def test_forgotten_keys_that_come_back_are_aggregated_afresh(window: str, key: str) -> None:
    """A string forgotten after its windows closed gets a new code when it comes back, and
    a key the adaptive balancer forgot is placed afresh; every window still equals a
    group-by over its events."""
    config = _config(WINDOWS[window], workers=2)
    sink = MemorySink()
    engine = Engine(config, sinks=[sink])
    rng = np.random.default_rng(1)
    frames = []
    for b in range(2 * N):
        frame = _batch(rng, b)
        # ids of epoch e come back in epoch e + 8 (their strings long forgotten)
        frame["k"] = frame["k"] % (8 * KEYS)
        frame["s"] = np.char.add("id-", frame["k"].to_numpy().astype(str)).astype(object)
        frames.append(frame)
        engine.push(frame)
    summary = engine.close()
    balancer = engine.operators[0].balancer  # type: ignore[union-attr]
    forgotten = _encoder(engine).n_strings if key == "s" else balancer.n_keys
    assert forgotten < 8 * KEYS  # some were forgotten on the way
    events = pd.concat(frames, ignore_index=True)
    events["window_start"] = events["t"] // 1000 * 1000
    late = sink.result("late/w")
    assert summary["events"]["late"] == (late.num_rows if late is not None else 0)
    if late is not None:  # late events are in no window
        gone = late.to_pandas()[["t", "k", "u"]].assign(late=True)
        events = events.merge(gone, on=["t", "k", "u"], how="left")
        events = events[events["late"].isna()]
    groups = events.groupby(["window_start", key])
    expected = groups.agg(n=("t", "size"), users=("u", "nunique"))
    expected["x_sum"] = groups["x"].sum(min_count=1)  # null where every x is
    got = sink.result("windows/w").to_pandas().set_index(["window_start", key])
    got = got.loc[expected.index]
    assert len(got) == len(expected) == sink.result("windows/w").num_rows
    np.testing.assert_array_equal(got["n"], expected["n"])
    np.testing.assert_array_equal(got["users"], expected["users"])
    np.testing.assert_allclose(got["x_sum"], expected["x_sum"], rtol=1e-9)


def test_the_engines_batch_timings_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each batch added four timing rows and a latency for ever (an embedded engine runs
    for days); the last ``KEPT_BATCHES`` are kept, and the summary's counts and stage
    totals still cover every batch."""
    import gpu_engine.accounting as accounting

    monkeypatch.setattr(accounting, "KEPT_BATCHES", 5)
    config = parse_config({"schema": {"time": "t", "fields": {"t": {"type": "int64"}}},
                           "windows": [{"name": "w", "type": "tumbling", "size": 1000,
                                        "aggregations": [{"name": "n", "op": "count"}]}],
                           "batching": {"max_rows": 1}, "backend": "cpu"})  # fmt: skip
    engine = Engine(config, sinks=[MemorySink()])
    for t in range(20):
        engine.push(pd.DataFrame({"t": [T0 + t]}))
    metrics = engine.batch_metrics().to_pandas()
    summary = engine.close()
    assert summary["batches"] == 20
    assert len(engine._timings.latencies) == 5
    assert len(metrics) == 5 * 3 and metrics["time_s"].is_monotonic_increasing  # 3 stages
    kept = metrics.groupby("stage")["seconds"].sum()
    for stage, seconds in summary["stage_s"].items():
        assert seconds >= kept[stage] > 0


def test_a_forgotten_code_is_an_error_unless_its_row_is_null() -> None:
    """Decoding must never turn a code that state still holds, but the dictionary forgot,
    into a wrong key (it came out as "")."""
    from gpu_engine.windows.keys import _StringCodes

    codes = _StringCodes()
    codes.encode(pa.array(["a", "b", "c"]))
    codes.keep_only(np.array([0, 2]))  # "b" (code 1) forgotten
    assert codes.decode(np.array([2, 0, 2])).to_pylist() == ["c", "a", "c"]
    null = np.array([False, True])
    assert codes.decode(np.array([0, 1]), null).to_pylist() == ["a", None]
    with pytest.raises(AssertionError, match="forgotten"):
        codes.decode(np.array([0, 1]))
