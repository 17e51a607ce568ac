"""Edge cases of the stream: one event, nothing, all bad, all late, idle input, accounting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from engine_testing import (
    BASE_FIELDS,
    big_integers_case,
    huge_moments_case,
    int64_bounds_case,
    large_mean_moments_case,
    make_config,
    nan_min_max_case,
    nan_where_case,
    random_events,
    run_engine,
    timestamp_bounds_case,
    timestamp_extremes_case,
    window_frame,
)

from gpu_engine.engine import Engine
from gpu_engine.errors import ConfigError, EngineError, InputError
from gpu_engine.io.sinks import CallbackSink, MemorySink
from kernels.aggregate import OP_CODES, AggState, finalize_column, update_events


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


SLIDING = {"type": "sliding", "size": 3000, "slide": 1000, "keys": ["k"]}


def test_one_event_lands_in_each_of_its_windows() -> None:
    frame = pd.DataFrame({"t": [1_002_500], "k": [7], "s": ["a"], "e": [1], "x": [2.0], "u": [1]})
    sink, summary = run_engine(make_config(SLIDING), frame)
    out = window_frame(sink)
    assert out["window_start"].tolist() == [1_000_000, 1_001_000, 1_002_000]
    assert out["n"].tolist() == [1, 1, 1]
    assert out["x_std"].isna().all()  # sample std of one value is null
    assert out["x_mean"].tolist() == [2.0, 2.0, 2.0]
    assert summary["windows_emitted"] == 3


def test_empty_input_emits_nothing() -> None:
    frame = random_events(np.random.default_rng(0), 0)
    sink, summary = run_engine(make_config(SLIDING), frame)
    assert window_frame(sink).empty
    assert summary["events"]["in"] == 0 and summary["accounted"]


def test_all_rows_bad() -> None:
    frame = random_events(np.random.default_rng(1), 50)
    frame["e"] = np.int8(9)
    sink, summary = run_engine(make_config(SLIDING), frame)
    assert summary["events"]["quarantined"] == 50
    assert summary["events"]["valid"] == 0
    assert window_frame(sink).empty


def test_all_late_after_windows_closed() -> None:
    config = make_config(SLIDING)
    sink = MemorySink()
    engine = Engine(config, sinks=[sink])
    engine.push(random_events(np.random.default_rng(2), 100, span_ms=1000).assign(t=2_000_000))
    engine.flush()
    before = engine.counts.valid
    old = random_events(np.random.default_rng(3), 40, span_ms=1000)  # all < 1_002_000
    engine.push(old)
    summary = engine.close()
    assert summary["events"]["late"] == 40
    assert summary["events"]["valid"] == before
    late = sink.result("late/w")
    assert late is not None and late.num_rows == 40


def test_accounting_with_bad_and_late_rows(rng) -> None:
    frame = random_events(rng, 5000, span_ms=60_000, disorder_ms=6000)
    frame.loc[rng.random(len(frame)) < 0.03, "e"] = 11
    config = make_config({**SLIDING, "allowed_lateness": 1000}, batching={"max_rows": 250})
    sink, summary = run_engine(config, frame, chunk=250)
    events = summary["events"]
    assert events["late"] > 0 and events["quarantined"] > 0
    assert (
        events["in"]
        == events["valid"] + events["quarantined"] + events["late"] + events["dead_lettered"]
    )
    assert sink.result("quarantine").num_rows == events["quarantined"]
    assert sink.result("late/w").num_rows == events["late"]
    windowed = window_frame(sink)
    # A valid event is in 1 to size/slide windows (fewer when some had closed already).
    assert events["valid"] <= windowed["n"].sum() <= events["valid"] * 3


def test_idle_input_closes_windows_by_processing_time() -> None:
    clock = FakeClock()
    config = make_config({**SLIDING, "idle_timeout": 1000, "allowed_lateness": 2000})
    sink = MemorySink()
    engine = Engine(config, sinks=[sink], clock=clock)
    engine.push(pd.DataFrame({"t": [1_000_100], "k": [1], "s": ["a"], "e": [0], "x": [1.0],
                              "u": [1]}))  # fmt: skip
    engine.flush()
    assert sink.result("windows/w") is None
    clock.now += 0.5
    engine.poll()
    assert sink.result("windows/w") is None  # not idle long enough
    clock.now += 4.6  # watermark = 1_000_100 - 2000 + 5100 ms > last window end 1_003_000
    engine.poll()
    out = sink.result("windows/w")
    assert out is not None and out.num_rows == 3
    engine.close()
    assert sink.result("windows/w").num_rows == 3  # emitted exactly once


@pytest.mark.parametrize("max_delay", [500, 50])
def test_rows_waiting_for_a_batch_are_not_idle_input(max_delay: int) -> None:
    """A row pushed and waiting for its batch (fewer than ``max_rows``) is input: the
    idle watermark moved past it anyway, so it came out late once its batch was cut."""
    window = {"type": "tumbling", "size": 100, "idle_timeout": 200,
              "aggregations": [{"name": "n", "op": "count"}]}  # fmt: skip
    clock = FakeClock()
    sink = MemorySink()
    config = make_config(window, batching={"max_rows": 2, "max_delay": max_delay})
    engine = Engine(config, sinks=[sink], clock=clock)
    row = {"k": [1], "s": ["a"], "e": [0], "x": [1.0], "u": [1]}
    engine.push(pd.DataFrame({"t": [10_000, 10_000], **{k: v * 2 for k, v in row.items()}}))
    start = clock.now
    clock.now = start + 0.19
    engine.push(pd.DataFrame({"t": [10_050], **row}))  # waits: one row of two
    assert engine.batcher.buffered_rows == 1
    clock.now = start + (0.21 if max_delay < 200 else 0.3)  # 200 ms since the first batch
    engine.poll()
    clock.now = start + 0.8
    engine.poll()  # max_delay has passed: the row's batch is cut
    summary = engine.close()
    assert summary["events"]["late"] == 0
    assert sink.result("windows/w").to_pylist() == [
        {"window_start": 10_000, "window_end": 10_100, "n": 3}
    ]


def test_a_slow_sink_does_not_count_as_idle_input() -> None:
    """Idle time counts from the end of a batch's work: a sink that takes 1.5 s per write
    (on the engine's clock) leaves lateness as it is with a fast one."""
    window = {"type": "tumbling", "size": 1000, "keys": ["k"], "idle_timeout": 1000,
              "allowed_lateness": 2000}  # fmt: skip
    events = []
    for slow in (False, True):
        clock = FakeClock()

        def write(name: str, table: object, slow: bool = slow, clock: FakeClock = clock) -> None:
            clock.now += 1.5 if slow else 0.0

        config = make_config(window, batching={"max_rows": 100})
        engine = Engine(config, sinks=[MemorySink(), CallbackSink(write)], clock=clock)
        for i in range(6):  # a second of event time per push, up to 1.5 s out of order
            frame = random_events(np.random.default_rng(i), 100)
            frame["t"] = 1_000_000 + i * 1000 + np.linspace(-1500, 999, 100).astype(np.int64)
            engine.push(frame)
            engine.poll()
        events.append(engine.close()["events"])
    assert events[0]["late"] == 0
    assert events[1] == events[0]


@pytest.mark.parametrize("window", [{"type": "tumbling", "size": 1000, "keys": ["k"]}, SLIDING])
def test_events_decades_apart_in_one_emission(window) -> None:
    """One clock 126 years off (both times valid) closes every window up to it at once;
    the windows' span is far too wide for a histogram of panes (it ran out of memory)."""
    frame = random_events(np.random.default_rng(13), 300, n_keys=4, span_ms=9000)
    frame.loc[::7, "t"] += 4_000_000_000_000
    sink, summary = run_engine(make_config(window), frame)
    assert summary["events"]["valid"] == 300 and summary["events"]["late"] == 0
    out = window_frame(sink)
    size, slide = window["size"], window.get("slide", window["size"])
    rows = [(start, k) for t, k in zip(frame["t"], frame["k"], strict=True)
            for start in range((t // slide) * slide - size + slide, t + 1, slide)]  # fmt: skip
    expected = pd.DataFrame(rows, columns=["window_start", "k"]).value_counts().sort_index()
    got = out.set_index(["window_start", "k"])["n"].sort_index()
    assert got.index.equals(expected.index)
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())


@pytest.mark.parametrize("workers", [1, 2])
def test_a_null_in_a_nullable_bool_key_is_a_group_of_its_own(workers) -> None:
    fields = {**BASE_FIELDS, "flag": {"type": "bool", "nullable": True}}
    config = make_config({"type": "tumbling", "size": 1000, "keys": ["flag"]},
                         schema={"time": "t", "fields": fields}, workers=workers)  # fmt: skip
    frame = random_events(np.random.default_rng(2), 60, span_ms=900)
    frame["flag"] = pd.array([True, None, False] * 20, dtype="boolean")
    sink, summary = run_engine(config, frame)
    assert summary["events"]["valid"] == 60
    out = window_frame(sink)
    assert sorted(out["n"].tolist()) == [20, 20, 20] and out["flag"].isna().sum() == 1


def test_where_zero_on_a_float_column_matches_negative_zero() -> None:
    """-0.0 == 0 (numpy, pandas, DuckDB); Arrow's is_in compares bits."""
    aggs = [{"name": "n", "op": "count"},
            {"name": "zeros", "op": "count", "where": {"x": 0.0}},
            {"name": "neg", "op": "count", "where": {"x": [-0.0, 2.5]}}]  # fmt: skip
    frame = random_events(np.random.default_rng(4), 6, n_keys=1, span_ms=900, null_share=0.0)
    frame["x"] = pd.array([0.0, -0.0, -0.0, 2.5, 1.0, 0.0], dtype="Float64")
    sink, _ = run_engine(make_config({"type": "tumbling", "size": 1000, "aggregations": aggs}),
                         frame)  # fmt: skip
    out = window_frame(sink)
    assert out[["n", "zeros", "neg"]].values.tolist() == [[6, 4, 5]]


def test_max_delay_cuts_a_batch() -> None:
    clock = FakeClock()
    config = make_config(SLIDING, batching={"max_rows": 1000, "max_delay": "50ms"})
    engine = Engine(config, sinks=[MemorySink()], clock=clock)
    engine.push(random_events(np.random.default_rng(4), 10))
    assert engine.batcher.buffered_rows == 10
    clock.now += 0.049
    engine.poll()
    assert engine.batcher.buffered_rows == 10
    clock.now += 0.002
    engine.poll()
    assert engine.batcher.buffered_rows == 0
    assert engine.counts.valid == 10


def test_max_rows_cuts_exact_batches() -> None:
    config = make_config(SLIDING, batching={"max_rows": 64})
    engine = Engine(config, sinks=[MemorySink()])
    engine.push(random_events(np.random.default_rng(5), 200))
    assert engine.batcher.buffered_rows == 200 - 3 * 64
    assert engine.close()["batches"] == 4


def test_closed_engine_refuses_input() -> None:
    engine = Engine(make_config(SLIDING), sinks=[MemorySink()])
    engine.close()
    with pytest.raises(EngineError, match="closed"):
        engine.push(random_events(np.random.default_rng(6), 1))


@pytest.mark.parametrize(
    "window",
    [
        {**SLIDING, "top_k": {"by": "n", "k": 2}},
        {"type": "session", "gap": 400, "keys": ["s", "k"]},
        {"type": "tumbling", "size": 2000, "keys": []},
    ],
)
@pytest.mark.parametrize("parallel_rows", [1, 10_000], ids=["on_the_pool", "one_by_one"])
def test_workers_agree_with_one_worker(window, parallel_rows, rng, monkeypatch) -> None:
    """Key-partitioned shards give the same rows and the same late events as one worker,
    whether the shards of a batch run on the pool's threads or one after the other."""
    import gpu_engine.windows.sharded as sharded

    monkeypatch.setattr(sharded, "PARALLEL_ROWS", parallel_rows)
    frame = random_events(rng, 4000, n_keys=9, span_ms=40_000, disorder_ms=6000)
    results = []
    for workers in (1, 3):
        config = make_config(
            {**window, "allowed_lateness": 1000}, workers=workers, batching={"max_rows": 300}
        )
        sink, summary = run_engine(config, frame, chunk=300)
        out = window_frame(sink)
        keys = ["window_start", *window["keys"]]
        results.append((out.sort_values(keys).reset_index(drop=True), summary["events"]))
        assert summary["workers"] == workers
    (one, events_one), (three, events_three) = results
    assert events_one == events_three and events_one["late"] > 0
    pd.testing.assert_frame_equal(one, three)


def test_adaptive_key_balancing_moves_keys_with_their_state() -> None:
    """Skewed keys that a fixed hash piles onto one shard get moved, state and all,
    and the results stay equal to one worker's."""
    from gpu_engine.windows.sharded import atom_hashes

    rng = np.random.default_rng(11)
    # hot keys that all hash to shard 0 of 2, plus a cold tail
    candidates = np.arange(1, 5000)
    shard = atom_hashes(candidates.reshape(-1, 1), [False]) % np.uint64(2)
    hot = candidates[shard == 0][:6]
    n = 6000
    keys = np.where(rng.random(n) < 0.8, rng.choice(hot, n), rng.integers(5000, 9000, n))
    frame = random_events(rng, n, span_ms=60_000, disorder_ms=500)
    frame["k"] = keys
    window = {"type": "sliding", "size": 3000, "slide": 1000, "keys": ["k"],
              "allowed_lateness": 500}  # fmt: skip
    results, loads = [], []
    for workers, balancing in ((1, "hash"), (2, "hash"), (2, "adaptive")):
        config = make_config(window, workers=workers, key_balancing=balancing,
                             batching={"max_rows": 500})  # fmt: skip
        sink = MemorySink()
        engine = Engine(config, sinks=[sink])
        rows_per_shard = np.zeros(workers)
        for start in range(0, n, 500):
            engine.push(frame.iloc[start : start + 500])
            if workers > 1:
                rows_per_shard += engine.operators[0].last_shard_rows
        summary = engine.close()
        out = window_frame(sink).sort_values(["window_start", "k"]).reset_index(drop=True)
        results.append((out, summary))
        loads.append(rows_per_shard)
    (one, _), (hashed, _), (adaptive, summary) = results
    assert summary["windows"]["w"]["keys_moved"] > 0
    pd.testing.assert_frame_equal(one, hashed)
    pd.testing.assert_frame_equal(one, adaptive)
    # the fixed hash leaves one shard with most of the load; adaptive placement evens it out
    assert loads[1].max() / loads[1].mean() > 1.6
    assert loads[2].max() / loads[2].mean() < 1.25


def test_adaptive_key_balancing_with_string_keys() -> None:
    """Shards share one key encoder, so string keys move between shards like integers."""
    from gpu_engine.windows.sharded import atom_hashes

    rng = np.random.default_rng(12)
    n = 4000
    frame = random_events(rng, n, span_ms=40_000, disorder_ms=300)
    # The first rows name "k0".."k49" in order, so they get string codes 0..49; the hot
    # keys are those whose codes a fixed hash puts on shard 0 of 2.
    codes = np.arange(50)
    on_zero = codes[atom_hashes(codes.reshape(-1, 1), [False]) % np.uint64(2) == 0]
    hot = np.array([f"k{c}" for c in on_zero[:4]], dtype=object)
    cold = np.char.add("c", rng.integers(0, 3000, n).astype(str)).astype(object)
    keys = np.where(rng.random(n) < 0.8, rng.choice(hot, n), cold)
    keys[:50] = [f"k{c}" for c in codes]
    frame["s"] = keys
    window = {"type": "sliding", "size": 3000, "slide": 1000, "keys": ["s"],
              "allowed_lateness": 300}  # fmt: skip
    results = []
    for workers, balancing in ((1, "hash"), (2, "adaptive")):
        config = make_config(window, workers=workers, key_balancing=balancing,
                             batching={"max_rows": 400})  # fmt: skip
        sink, summary = run_engine(config, frame, chunk=400)
        out = window_frame(sink).sort_values(["window_start", "s"], na_position="last")
        results.append((out.reset_index(drop=True), summary))
    (one, _), (adaptive, summary) = results
    assert summary["windows"]["w"]["keys_moved"] > 0
    pd.testing.assert_frame_equal(one, adaptive)


def test_default_workers_keep_shards_large() -> None:
    from gpu_engine.engine import ROWS_PER_WORKER, default_workers

    assert default_workers(65_536, cores=16) == 65_536 // ROWS_PER_WORKER == 4
    assert default_workers(65_536, cores=2) == 2
    assert default_workers(1_000, cores=16) == 1
    assert default_workers(1 << 20, cores=16) == 16
    config = make_config(SLIDING, batching={"max_rows": 2 * ROWS_PER_WORKER})
    engine = Engine(config)
    assert engine.workers == default_workers(2 * ROWS_PER_WORKER)
    engine.close()


def test_summary_splits_busy_time_by_stage(rng) -> None:
    frame = random_events(rng, 2000, span_ms=20_000)
    _, summary = run_engine(make_config(SLIDING, batching={"max_rows": 500}), frame, chunk=500)
    assert set(summary["stage_s"]) == {"validate", "aggregate", "emit"}
    assert all(seconds > 0 for seconds in summary["stage_s"].values())
    assert sum(summary["stage_s"].values()) == pytest.approx(summary["busy_s"])


def test_where_nan_matches_every_nan() -> None:
    got, expected = nan_where_case("cpu")
    assert got == [expected] == [[8, 4, 5]]


WINDOW_TYPES = [{"type": "tumbling", "size": 1000}, {"type": "sliding", "size": 2000, "slide": 500},
                {"type": "session", "gap": 300}]  # fmt: skip


@pytest.mark.parametrize("window", WINDOW_TYPES, ids=lambda w: w["type"])
def test_integers_past_2_to_the_53_keep_exact_extremes_and_means(window) -> None:
    """A float64 holds integers up to 2^53: min and max of ±2^62 came out rounded, and the
    mean of three such values divided a wrapped sum (a negative mean of positive values)."""
    got, expected = big_integers_case(window, "cpu")
    assert expected["wrapped"].any() and not expected["wrapped"].all()  # both kinds of mean
    assert got.dtypes.tolist()[:3] == [np.dtype(np.int64)] * 3
    exact = ["u_min", "u_max", "u_sum"]  # the sum as int64 arithmetic gives it, as Polars'
    pd.testing.assert_frame_equal(got[exact], expected[exact], check_dtype=False)
    np.testing.assert_allclose(got["u_mean"], expected["u_mean"], rtol=1e-11)


def test_min_and_max_of_a_timestamp_field_are_timestamps() -> None:
    got, expected = timestamp_extremes_case("cpu")
    assert str(got["first_seen"].dtype) == str(got["last_seen"].dtype) == "datetime64[ms]"
    pd.testing.assert_frame_equal(got, expected)


def test_variance_of_huge_values_is_numpys_not_nan() -> None:
    got, expected = huge_moments_case("cpu")
    assert got == expected == [[0.0, 0.0], [np.inf, np.inf], [0.0, 0.0], [0.5, np.sqrt(0.5)]]


def test_a_float_column_beside_an_integer_extreme_is_not_cast_to_int64() -> None:
    """Integer ``min``/``max`` read the batch's int64 copy of their column; the float
    columns were copied too, and a NaN in one warned at every batch (an invalid cast)."""
    import warnings

    fields = {**BASE_FIELDS, "x": {"type": "float64", "nullable": True, "allow_nan": True}}
    aggs = [{"name": "u_min", "op": "min", "column": "u"},
            {"name": "x_max", "op": "max", "column": "x"}]  # fmt: skip
    frame = random_events(np.random.default_rng(2), 20, n_keys=1, span_ms=900, null_share=0.0)
    x = np.where(np.arange(20) % 3 == 0, np.nan, frame["x"].to_numpy(dtype=float))
    table = pa.Table.from_pandas(frame.drop(columns="x"), preserve_index=False)
    table = table.append_column("x", pa.array(x))  # NaN, not null
    config = make_config({"type": "tumbling", "size": 1000, "aggregations": aggs},
                         schema={"time": "t", "fields": fields})  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sink, _ = run_engine(config, table)
    out = window_frame(sink)
    assert out["u_min"].tolist() == [int(frame["u"].min())]
    assert out["x_max"].tolist() == [np.nanmax(x)]


def test_min_and_max_skip_nan_and_give_null_for_nan_only() -> None:
    got, expected = nan_min_max_case({"type": "tumbling", "size": 1000}, "cpu")
    assert (got["x_min"].isna() == expected["x_min"].isna()).all()
    assert expected["x_min"].isna().any() and np.isinf(expected["x_min"]).any()
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_float32_where_allowed_and_bounds_compare_as_float32() -> None:
    """``allowed: [0.1]`` quarantined a float32 0.1 (compared as float64) and ``max: 0.1``
    too, while ``where: {w: 0.1}`` matched it; ``where`` values an exact Arrow cast
    refuses (2^24 + 1 on float32, 2^53 + 1 on float64) crashed the first batch. Now all
    compare as the column's type, as numpy does (``w == np.float32(value)``)."""
    fields = {**BASE_FIELDS, "w": {"type": "float32", "allowed": [0.1, 0.5, 16777216.0]},
              "v": {"type": "float32", "min": 0.1, "max": 0.3},
              "x": {"type": "float64", "nullable": True}}  # fmt: skip
    aggs = [{"name": "n", "op": "count"},
            {"name": "tenth", "op": "count", "where": {"w": 0.1}},
            {"name": "big32", "op": "count", "where": {"w": 16777217}},
            {"name": "big64", "op": "count", "where": {"x": 2**53 + 1}}]  # fmt: skip
    frame = random_events(np.random.default_rng(2), 6, n_keys=1, span_ms=900, null_share=0.0)
    w = np.array([0.1, 0.1, 0.5, 16777216.0, 0.5, 0.1], dtype=np.float32)
    v = np.array([0.1, 0.3, 0.2, 0.1, 0.3, 0.2], dtype=np.float32)
    frame["w"], frame["v"] = w, v
    frame["x"] = [2.0**53, 1.0, 2.0**53, 0.0, 1.0, 1.0]
    config = make_config({"type": "tumbling", "size": 1000, "aggregations": aggs},
                         schema={"time": "t", "fields": fields})  # fmt: skip
    sink, summary = run_engine(config, frame)
    assert summary["events"]["quarantined"] == 0
    out = window_frame(sink)
    expected = [6, int((w == np.float32(0.1)).sum()), int((w == np.float32(16777217)).sum()),
                int((frame["x"].to_numpy() == np.float64(2**53 + 1)).sum())]  # fmt: skip
    assert out[["n", "tenth", "big32", "big64"]].values.tolist() == [expected] == [[6, 3, 1, 2]]


def test_a_where_value_that_float32_makes_zero_is_refused_at_load() -> None:
    fields = {**BASE_FIELDS, "w": {"type": "float32"}}
    aggs = [{"name": "tiny", "op": "count", "where": {"w": 1e-50}}]
    with pytest.raises(ConfigError, match=r"where\.w: 1e-50 is 0\.0 as a float32"):
        make_config({"type": "tumbling", "size": 1000, "aggregations": aggs},
                    schema={"time": "t", "fields": fields})  # fmt: skip


def test_a_frame_naming_a_column_twice_is_refused_before_it_is_counted() -> None:
    """It was buffered, then broke every later flush and close (Arrow cannot join it)."""
    engine = Engine(make_config(SLIDING), sinks=[MemorySink()])
    frame = random_events(np.random.default_rng(1), 4)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    doubled = table.append_column("x", table.column("x"))
    for pushed in (doubled, doubled.to_batches()[0], frame.rename(columns={"u": "x"})):
        with pytest.raises(InputError, match=r"names column\(s\) \['x'\] more than once"):
            engine.push(pushed)
    assert engine.summary()["events"]["in"] == 0
    engine.push(frame)
    assert engine.close()["events"]["in"] == 4


def test_an_arrow_stream_naming_a_column_twice_is_refused_too() -> None:
    engine = Engine(make_config(SLIDING), sinks=[MemorySink()])
    table = pa.Table.from_pandas(random_events(np.random.default_rng(1), 4), preserve_index=False)
    doubled = table.append_column("x", table.column("x"))
    reader = pa.RecordBatchReader.from_batches(doubled.schema, doubled.to_batches())
    with pytest.raises(InputError, match=r"names column\(s\) \['x'\] more than once"):
        engine.push(reader)
    assert engine.close()["events"]["in"] == 0


@pytest.mark.parametrize(("bound", "message"), [
    ({"min": 1e-50}, r"min 1e-50 is 0\.0 as a float32"),
    ({"max": 1e39}, r"max 1e\+39 does not fit float32"),
])  # fmt: skip
def test_float32_bounds_that_float32_cannot_hold_are_refused(bound, message) -> None:
    fields = {**BASE_FIELDS, "w": {"type": "float32", "allow_nan": True, **bound}}
    with pytest.raises(ConfigError, match=message):
        make_config(SLIDING, schema={"time": "t", "fields": fields})


@pytest.mark.parametrize("values", [[1.7e308, -1.7e308], [1e308, 1e308, -1e308]])
def test_a_variance_whose_deviations_overflow_is_inf_not_zero(values) -> None:
    """Welford's ``x - mean`` overflowed to -inf and the clamp at 0 made the variance 0."""
    aggs = [{"name": "x_var", "op": "var", "column": "x"},
            {"name": "x_std", "op": "std", "column": "x"}]  # fmt: skip
    frame = random_events(np.random.default_rng(1), len(values), n_keys=1, span_ms=900)
    frame["x"] = values
    sink, _ = run_engine(make_config({"type": "tumbling", "size": 1000, "aggregations": aggs}),
                         frame)  # fmt: skip
    out = window_frame(sink)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = float(np.var(values, ddof=1))
    assert expected == np.inf
    assert out[["x_var", "x_std"]].values.tolist() == [[np.inf, np.inf]]


@pytest.mark.parametrize(
    ("window", "chunk"),
    [
        ({"type": "tumbling", "size": 3000}, 3),
        ({"type": "tumbling", "size": 3000}, 1),
        ({"type": "sliding", "size": 3000, "slide": 1000}, 3),  # three panes combined
        ({"type": "session", "gap": 5000}, 3),
        ({"type": "session", "gap": 5000}, 1),  # sessions merged across batches
    ],
)
@pytest.mark.parametrize(
    "values", [[1.7e308, -1.7e308, 1.7e308], [-1e308, 1.5e308, -1.6e308, 1.7e308, 2.0]]
)
def test_a_variance_past_float64_is_inf_however_events_fall_into_batches_and_panes(
    window, chunk, values
) -> None:
    """Numpy's variance of these is inf. The mean's update ``mean + (x - mean) / k``
    overflowed to ±inf, and the next value's ``x - mean`` was then ``inf - inf``: NaN in
    one batch, inf in one-row batches or three panes (a review's case)."""
    aggs = [{"name": "x_var", "op": "var", "column": "x"},
            {"name": "x_std", "op": "std", "column": "x"}]  # fmt: skip
    frame = random_events(np.random.default_rng(2), len(values), n_keys=1, span_ms=10)
    frame["t"] = 1_000_000 + 1000 * np.arange(len(values)) // len(values) * 2
    frame["x"] = values
    config = make_config({**window, "aggregations": aggs}, batching={"max_rows": chunk})
    sink, _ = run_engine(config, frame, chunk=chunk)
    out = window_frame(sink)
    whole = out[out["window_start"] == out["window_start"].min()]
    with np.errstate(over="ignore", invalid="ignore"):
        expected = float(np.var(values, ddof=1))
    assert expected == np.inf
    assert whole[["x_var", "x_std"]].values.tolist() == [[np.inf, np.inf]]


@pytest.mark.parametrize("max_rows", [None, 47, 5, 1])
@pytest.mark.parametrize(
    "window",
    [{"type": "tumbling", "size": 1000}, {"type": "sliding", "size": 1000, "slide": 500}],
    ids=["tumbling", "sliding"],
)
def test_variance_of_values_far_from_zero(window, max_rows) -> None:
    """The CPU's moments against the exact variance of values near 1e15, whose float64
    spacing is 0.125, however the events fall into batches. The per-event (Welford)
    update was off by up to 4 %; moments merged by batch with float64 means, 2 % in
    batches of 5: a row's mean keeps the low part that float64 rounds away."""
    got = large_mean_moments_case(window, "cpu", max_rows)
    assert got[0] == (0.0, 0.0)
    for value, exact in got[1:]:
        assert value == pytest.approx(exact, rel=1e-12)


def test_a_variance_whose_merged_mean_step_passes_float64_is_inf_not_nan() -> None:
    """Batches [-7.5e307], [7.5e307, 7.5e307], [0], [0] into one row: Chan's step
    ``delta * n_b / total`` passed float64 (delta 1.5e308 times 2), the mean became inf,
    and the next merge inf - inf: NaN where numpy (and one batch) give inf."""
    batches = [[-7.5e307], [7.5e307, 7.5e307], [0.0], [0.0]]
    ops = np.array([OP_CODES["var"]], dtype=np.int64)
    state = AggState(ops, 16)
    for values in batches:
        x = np.array(values, dtype=np.float64)
        n = len(x)
        update_events(
            np.zeros(n, np.int64), ops, np.zeros(1, np.int64), np.full(1, -1, np.int64),
            np.zeros(1, np.bool_), x[None, :], np.zeros((0, 0), np.int64),
            np.zeros((0, n), np.uint8),
            state.rows, state.ist, state.isum, state.f0, state.f1, state.moments,
        )  # fmt: skip
        assert np.isfinite(state.f0[0, 0])  # the row's mean stays between the means
    out, valid = np.empty(1), np.empty(1, np.bool_)
    finalize_column(ops[0], False, 1, state.ist, state.isum, state.f0, state.f1, 0, out, valid)
    with np.errstate(over="ignore", invalid="ignore"):
        assert np.var(np.concatenate(batches), ddof=1) == np.inf
    assert valid[0] and out[0] == np.inf


def test_int64_rules_past_two_to_the_53_are_exact() -> None:
    got, expected = int64_bounds_case("cpu")
    assert got == expected


def test_timestamp_bounds_past_two_to_the_53_ms_are_exact() -> None:
    got, expected = timestamp_bounds_case("cpu")
    assert got == expected == [2, 3, 5]
