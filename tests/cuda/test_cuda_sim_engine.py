"""The whole engine on ``backend: cuda`` (pane state on the device) equals the CPU backend.

Runs under the Numba CUDA simulator in CI (tiny inputs) and on a real device
in ``benchmarks/gpu_check.sh``.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from cuda_target import CUDA_WARNINGS, require_cuda_target

require_cuda_target()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the core suite's helpers

from engine_testing import (  # noqa: E402
    ALL_AGGS,
    big_integers_case,
    dictionary_chunks_case,
    huge_moments_case,
    int64_bounds_case,
    large_mean_moments_case,
    late_rows_case,
    make_config,
    nan_min_max_case,
    nan_where_case,
    random_events,
    run_engine,
    time_zone_case,
    timestamp_bounds_case,
    timestamp_extremes_case,
    window_frame,
)

pytestmark = [pytest.mark.cudasim, *CUDA_WARNINGS]

# Sketches beyond ALL_AGGS' u_distinct: several per window, on float and string columns.
SKETCHES = [
    {"name": "x_p90", "op": "quantile", "column": "x", "q": 0.9},
    {"name": "x_p10", "op": "quantile", "column": "x", "q": 0.1},
    {"name": "x_distinct", "op": "count_distinct", "column": "x"},
    {"name": "s_distinct", "op": "count_distinct", "column": "s"},
]


@pytest.mark.parametrize(
    "window",
    [
        {"type": "tumbling", "size": 1000, "keys": ["k"]},
        {"type": "sliding", "size": 2000, "slide": 500, "keys": ["k", "s"]},
        {"type": "tumbling", "size": 3000, "keys": [], "top_k": None},
    ],
)
def test_cuda_backend_matches_cpu(window) -> None:
    frame = random_events(np.random.default_rng(7), 160, n_keys=4, span_ms=6000, disorder_ms=400)
    results = {}
    for backend in ("cpu", "cuda"):
        config = make_config(
            {**window, "allowed_lateness": 400},
            backend=backend,
            workers=1,
            batching={"max_rows": 40},
        )
        spec = config.windows[0].aggregations[0]
        config = config.model_copy(
            update={
                "windows": [
                    config.windows[0].model_copy(
                        update={"aggregations": [*config.windows[0].aggregations,
                                                 *map(spec.model_validate, SKETCHES)]}
                    )
                ]
            }
        )  # fmt: skip
        sink, summary = run_engine(config, frame, chunk=40)
        assert summary["backend"] == backend
        keys = ["window_start", *window["keys"]]
        results[backend] = window_frame(sink).sort_values(keys).reset_index(drop=True)
    cpu, gpu = results["cpu"], results["cuda"]
    assert len(cpu) > 0
    names = [a["name"] for a in [*ALL_AGGS, *SKETCHES]]
    pd.testing.assert_frame_equal(cpu.drop(columns=names), gpu.drop(columns=names))
    for name in names:
        np.testing.assert_allclose(
            cpu[name].to_numpy(dtype=float, na_value=np.nan),
            gpu[name].to_numpy(dtype=float, na_value=np.nan),
            rtol=1e-9,
            err_msg=name,
        )


@pytest.mark.parametrize(
    "window",
    [{"type": "tumbling", "size": 1000, "keys": ["k"]},
     {"type": "sliding", "size": 3000, "slide": 1000, "keys": ["k"]}],
)  # fmt: skip
def test_events_decades_apart_close_their_windows_at_once_as_on_the_cpu(window) -> None:
    """A clock a century off closes every window up to it in one emission: a span of
    windows too wide for the counting sort's histogram (a radix sort on the device)."""
    frame = random_events(np.random.default_rng(3), 40, n_keys=3, span_ms=4000)
    frame.loc[::9, "t"] += 4_000_000_000_000  # about 2096
    results = []
    for backend in ("cpu", "cuda"):
        config = make_config(window, backend=backend, workers=1, batching={"max_rows": 40})
        sink, summary = run_engine(config, frame, chunk=40)
        assert summary["events"]["valid"] == 40 and summary["events"]["late"] == 0
        results.append(window_frame(sink).sort_values(["window_start", "k"]))
    assert results[0]["window_start"].max() > 4_000_000_000_000
    pd.testing.assert_frame_equal(results[0].reset_index(drop=True),
                                  results[1].reset_index(drop=True))  # fmt: skip


@pytest.mark.parametrize(
    "window",
    [{"type": "sliding", "size": 2000, "slide": 500}, {"type": "session", "gap": 300}],
    ids=["sliding", "session"],
)
@pytest.mark.filterwarnings("ignore:.*overflow encountered in scalar add:RuntimeWarning")
def test_integers_past_2_to_the_53_on_the_device_as_on_the_cpu(window) -> None:
    """The simulator's atomics add numpy scalars, which warn where an int64 sum wraps (as
    the sum of the case does on purpose)."""
    got, expected = big_integers_case(window, "cuda")
    cpu, _ = big_integers_case(window, "cpu")
    assert expected["wrapped"].any() and not expected["wrapped"].all()
    pd.testing.assert_frame_equal(got.drop(columns="u_mean"), cpu.drop(columns="u_mean"))
    np.testing.assert_allclose(got["u_mean"], cpu["u_mean"], rtol=1e-12)
    exact = ["u_min", "u_max", "u_sum"]
    pd.testing.assert_frame_equal(got[exact], expected[exact], check_dtype=False)
    np.testing.assert_allclose(got["u_mean"], expected["u_mean"], rtol=1e-11)


def test_min_and_max_of_a_timestamp_field_are_timestamps_on_the_device() -> None:
    got, expected = timestamp_extremes_case("cuda")
    pd.testing.assert_frame_equal(got, expected)


@pytest.mark.parametrize(
    "window",
    [{"type": "sliding", "size": 2000, "slide": 500}, {"type": "session", "gap": 300}],
    ids=["sliding", "session"],
)
def test_a_fields_time_zone_on_the_device(window: dict) -> None:
    """Window bounds, timestamp min/max and late rows in the field's ``tz``, as on the CPU."""
    device, _ = time_zone_case(window, "cuda")
    cpu, _ = time_zone_case(window, "cpu")
    order = [("window_start", "ascending"), ("k", "ascending")]
    got, expected = (sink.result("windows/w").sort_by(order) for sink in (device, cpu))
    assert got.schema == expected.schema
    assert got.drop_columns(["x_sum"]).equals(expected.drop_columns(["x_sum"]))
    np.testing.assert_allclose(got.column("x_sum"), expected.column("x_sum"), rtol=1e-12)
    assert device.result("late/w").equals(cpu.result("late/w"))


def test_late_rows_name_their_input_row_on_the_device() -> None:
    """Late rows keep the ``_source`` and ``_row`` of their input row, as on the CPU (where
    ``tests/test_late_rows_traced.py`` checks them against the rows pushed)."""
    (device, _), (cpu, _) = late_rows_case("cuda"), late_rows_case("cpu")
    assert device.result("late/w").num_rows > 20
    assert device.result("late/w").equals(cpu.result("late/w"))
    assert device.result("quarantine").equals(cpu.result("quarantine"))


@pytest.mark.filterwarnings("ignore:.*overflow encountered:RuntimeWarning")
def test_variance_of_huge_values_on_the_device() -> None:
    """(The simulator warns where the squares overflow to inf, as the case means them to.)"""
    got, expected = huge_moments_case("cuda")
    assert got == expected


def test_sketches_of_columns_cast_on_the_host_match_the_cpu() -> None:
    """Text columns (every CSV and JSON input) are cast on the host; their sketch keys were
    string hashes on the device, so a quantile came out as ±1.8e308 and a value counted
    twice across a text batch and a numeric one."""
    from gpu_engine.engine import Engine
    from gpu_engine.io.sinks import MemorySink

    aggs = [{"name": "p50", "op": "quantile", "column": "x", "q": 0.5},
            {"name": "x_distinct", "op": "count_distinct", "column": "x"},
            {"name": "s_distinct", "op": "count_distinct", "column": "s"}]  # fmt: skip
    frame = random_events(np.random.default_rng(9), 60, n_keys=2, span_ms=2000)
    frame["x"] = frame["x"].round(0)  # repeated values
    text = pa.Table.from_pandas(frame.iloc[:30].astype({"x": str, "t": str}), preserve_index=False)
    numeric = pa.Table.from_pandas(frame.iloc[30:], preserve_index=False)
    results = []
    for backend in ("cpu", "cuda"):
        window = {"type": "tumbling", "size": 1000, "keys": ["k"], "aggregations": aggs}
        config = make_config(window, backend=backend, batching={"max_rows": 30})
        sink = MemorySink()
        with Engine(config, sinks=[sink]) as engine:
            engine.push(text)
            engine.push(numeric)
        results.append(window_frame(sink).sort_values(["window_start", "k"]))
    cpu, gpu = results
    assert cpu["p50"].abs().max() < 1000 and cpu["x_distinct"].sum() > 0
    pd.testing.assert_frame_equal(cpu.reset_index(drop=True), gpu.reset_index(drop=True))


def test_where_nan_matches_every_nan_on_the_device() -> None:
    got, expected = nan_where_case("cuda")
    assert got == [expected] == [[8, 4, 5]]


def test_min_and_max_skip_nan_on_the_device() -> None:
    """A window of NaN only gives null, not the kernels' starting +inf / -inf."""
    got, expected = nan_min_max_case({"type": "tumbling", "size": 1000}, "cuda", n=300)
    assert expected["x_min"].isna().any()
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    session = {"type": "session", "gap": 300}
    cpu, _ = nan_min_max_case(session, "cpu", n=300)
    gpu, _ = nan_min_max_case(session, "cuda", n=300)
    assert cpu["x_min"].isna().any()
    pd.testing.assert_frame_equal(gpu, cpu)


def test_cuda_top_k_matches_cpu() -> None:
    """Top-k ranked on the device, through the whole engine (one worker: the simulator
    cannot launch kernels from worker threads)."""
    frame = random_events(np.random.default_rng(9), 200, n_keys=6, span_ms=5000, disorder_ms=200)
    window = {"type": "sliding", "size": 2000, "slide": 1000, "keys": ["k", "s"],
              "allowed_lateness": 200, "top_k": {"by": "likes", "k": 2}}  # fmt: skip
    results = []
    for backend in ("cpu", "cuda"):
        config = make_config(window, backend=backend, workers=1, batching={"max_rows": 50})
        sink, _ = run_engine(config, frame, chunk=50)
        out = window_frame(sink)
        results.append(out.sort_values(["window_start", "likes", "k", "s"]).reset_index(drop=True))
    assert len(results[0]) > 0
    pd.testing.assert_frame_equal(results[0][["window_start", "k", "s", "likes"]],
                                  results[1][["window_start", "k", "s", "likes"]])  # fmt: skip


def test_device_memory_limit_is_a_clear_error() -> None:
    from gpu_engine.errors import DeviceMemoryError

    frame = random_events(np.random.default_rng(8), 300, n_keys=200, span_ms=3000)
    window = {"type": "tumbling", "size": 1000, "keys": ["k"]}
    config = make_config(window, backend="cuda", workers=1, device_memory_limit="4KiB")
    assert config.device_memory_limit == 4096
    with pytest.raises(DeviceMemoryError, match=r"window 'w': its pane state needs about .* MiB"):
        run_engine(config, frame, chunk=300)


def test_host_frames_are_uploaded_once_and_prepared_on_the_device() -> None:
    """``cuda_host_frames: device`` (the default) gives the CPU's results with one upload
    per numeric column and null mask, and none by the pane state; ``host`` gives them too."""
    from gpu_engine.engine import Engine
    from gpu_engine.io.sinks import MemorySink

    frame = random_events(np.random.default_rng(5), 120, n_keys=4, span_ms=4000, disorder_ms=300)
    window = {"type": "sliding", "size": 2000, "slide": 1000, "keys": ["k", "s"],
              "allowed_lateness": 300}  # fmt: skip
    results = {}
    for backend, mode in (("cpu", "device"), ("cuda", "device"), ("cuda", "host")):
        config = make_config(window, backend=backend, workers=1, batching={"max_rows": 60},
                             cuda_host_frames=mode)  # fmt: skip
        sink = MemorySink()
        engine = Engine(config, sinks=[sink])
        engine.push(frame)
        summary = engine.close()
        results[backend, mode] = window_frame(sink).sort_values(["window_start", "k", "s"])
        if (backend, mode) == ("cuda", "device"):
            assert "ingest" in summary["stage_s"]
            # t, k, e, x (+ nulls), u (+ nulls): 7 arrays per batch, two batches; s stays host.
            assert engine._stage.stager.copies == 2 * 7
            assert engine.operators[0].panes.uploader.copies == 0
        elif backend == "cuda":
            assert "ingest" not in summary["stage_s"]
            assert engine.operators[0].panes.uploader.copies > 0
    want = results["cpu", "device"].reset_index(drop=True)
    assert len(want) > 0
    for key in (("cuda", "device"), ("cuda", "host")):
        pd.testing.assert_frame_equal(results[key].reset_index(drop=True), want,
                                      check_exact=False, rtol=1e-9)  # fmt: skip


def test_one_worker_by_default_on_a_device() -> None:
    from gpu_engine.engine import Engine

    window = {"type": "tumbling", "size": 1000, "keys": ["k"]}
    batching = {"max_rows": 1 << 20}  # the CPU default would be one worker per core
    assert Engine(make_config(window, backend="cuda", batching=batching)).workers == 1
    assert Engine(make_config(window, backend="cuda", batching=batching, workers=3)).workers == 3


@pytest.mark.parametrize(
    "window",
    [{"type": "tumbling", "size": 1000}, {"type": "session", "gap": 300}],
    ids=["tumbling", "session"],
)
def test_churning_string_keys_are_forgotten_on_the_device(
    window: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The string dictionary forgets keys no device state holds (it kept every key of the
    stream on the device backend), and the windows still equal the CPU backend's. (It
    prunes here once it holds 16 more strings than twice those kept, not 256: the
    simulator is slow.)"""
    from gpu_engine.engine import Engine
    from gpu_engine.io.sinks import MemorySink
    from gpu_engine.windows import keys

    monkeypatch.setattr(keys._StringCodes, "crowded", lambda self: len(self) > 2 * self.kept + 16)

    aggs = [{"name": "n", "op": "count"}, {"name": "u_sum", "op": "sum", "column": "u"}]
    rng = np.random.default_rng(4)
    frames = []
    for b in range(12):  # 10 new ids a batch, 120 in all
        frame = random_events(rng, 10, n_keys=1, span_ms=300, null_share=0.0)
        frame["t"] = frame["t"] + b * 300
        frame["s"] = [f"id-{b * 10 + i}" for i in range(10)]
        frames.append(frame)
    results, held = {}, {}
    for backend in ("cuda", "cpu"):
        config = make_config({**window, "keys": ["s"], "aggregations": aggs},
                             backend=backend, batching={"max_rows": 10})  # fmt: skip
        sink = MemorySink()
        engine = Engine(config, sinks=[sink])
        for frame in frames:
            engine.push(frame)
        held[backend] = engine.operators[0].encoder.n_strings  # type: ignore[union-attr]
        engine.close()
        results[backend] = window_frame(sink).sort_values(["window_start", "s"])
    assert held["cuda"] < 120 / 2 and held["cpu"] < 120 / 2, held
    pd.testing.assert_frame_equal(
        results["cuda"].reset_index(drop=True), results["cpu"].reset_index(drop=True)
    )


def test_a_dictionary_column_whose_chunks_have_their_own_dictionaries_on_the_device() -> None:
    """Host frames staged on the device: a batch over two chunks whose dictionaries do not
    combine in int8 gives the CPU backend's windows."""
    _, table = dictionary_chunks_case(200, 100)
    window = {"type": "tumbling", "size": 1000, "keys": ["k", "s"], "aggregations": ALL_AGGS}
    results = []
    for backend in ("cpu", "cuda"):
        sink, summary = run_engine(make_config(window, backend=backend, batching={"max_rows": 64}),
                                   table)  # fmt: skip
        assert summary["accounted"] and summary["events"]["valid"] == 200
        results.append(window_frame(sink).sort_values(["window_start", "k", "s"]))
    pd.testing.assert_frame_equal(results[1].reset_index(drop=True),
                                  results[0].reset_index(drop=True),
                                  check_exact=False, rtol=1e-9)  # fmt: skip


@pytest.mark.parametrize("max_rows", [None, 47])
@pytest.mark.parametrize(
    "window",
    [{"type": "tumbling", "size": 1000}, {"type": "sliding", "size": 1000, "slide": 500}],
    ids=["tumbling", "sliding"],
)
def test_variance_of_values_far_from_zero_on_the_device(window, max_rows) -> None:
    """The device's moments take out the rounding of the mean they square deviations
    around (pass 2 of a batch, and merged panes), and a row's mean keeps the low part
    float64 rounds away: a constant column's variance is 0, the others exact, as the
    CPU's, which takes the same steps (its Welford update was 4 % off here)."""
    got = large_mean_moments_case(window, "cuda", max_rows)
    assert got[0] == (0.0, 0.0)  # was a std of 0.13
    for value, exact in got[1:]:
        assert value == pytest.approx(exact, rel=1e-12)  # was 56 % too large
    cpu = [value for value, _ in large_mean_moments_case(window, "cpu", max_rows)]
    assert [value for value, _ in got] == pytest.approx(cpu, rel=1e-12)


def test_int64_rules_past_two_to_the_53_are_exact_on_the_device() -> None:
    got, expected = int64_bounds_case("cuda")
    assert got == expected


def test_timestamp_bounds_past_two_to_the_53_ms_are_exact_on_the_device() -> None:
    got, expected = timestamp_bounds_case("cuda")
    assert got == expected == [2, 3, 5]


@pytest.mark.filterwarnings("ignore:.*(overflow|invalid value) encountered:RuntimeWarning")
@pytest.mark.parametrize("chunk", [1, 2, 5])
@pytest.mark.parametrize(
    "window",
    [{"type": "tumbling", "size": 1000}, {"type": "sliding", "size": 2000, "slide": 1000}],
    ids=["tumbling", "sliding"],
)
def test_variance_of_finite_values_whose_sum_overflows_is_never_nan(window, chunk) -> None:
    """Where finite values' sum passes float64 (the moments start from it), var is inf,
    as numpy's is; the device's was NaN (inf - inf), and batches after it kept it NaN, as
    did merged panes of +-float64's largest means (sliding). Deviations whose square
    passes float64 while their squares' sum does not gave 0 (2^563 apart by 2^511:
    3e307). The CPU takes the same passes, and gives the same values (its per-event
    update gave 0 for equal values whose sum overflowed, and 2x for 2^563's)."""
    big, step = 2.0**563, 2.0**511
    windows = [[1e308, 1e308], [-1e308, -1e308], [9e307, 9e307, 1.0], [1e308, -1e308, 5.0],
               [big, big, big + step, big + step], [1.0, 3.0]]  # fmt: skip
    t = np.concatenate([1_000_000 + 1000 * w + np.arange(len(x)) for w, x in enumerate(windows)])
    frame = random_events(np.random.default_rng(2), len(t), n_keys=1, null_share=0.0)
    frame["t"] = t
    frame["x"] = np.concatenate(windows)
    aggs = [{"name": "x_var", "op": "var", "column": "x"}]
    got = {}
    for backend in ("cpu", "cuda"):
        config = make_config({**window, "aggregations": aggs}, backend=backend)
        sink, _ = run_engine(config, frame, chunk=chunk)
        out = window_frame(sink)
        got[backend] = dict(zip(out["window_start"], out["x_var"], strict=True))
    assert got["cuda"].keys() == got["cpu"].keys()
    for start, device in got["cuda"].items():
        inside = (frame["t"] >= start) & (frame["t"] < start + window["size"])
        exact = _exact_variance(frame.loc[inside, "x"])
        # inf where the sum overflowed, else the exact variance: 2^563 apart by 2^511
        # gave 0, and numpy 2x it
        assert device == np.inf or device == pytest.approx(exact, rel=1e-9), (start, got)
        assert got["cpu"][start] == pytest.approx(device, rel=1e-12), (start, got)
    assert got["cuda"][1_005_000] == 2.0


def _exact_variance(values: pd.Series) -> float:
    """The sample variance of ``values`` in exact fractions, as float64 (inf past it)."""
    parts = [Fraction(float(v)) for v in values]
    mean = sum(parts) / len(parts)
    exact = sum((v - mean) ** 2 for v in parts) / (len(parts) - 1)
    try:
        return float(exact)
    except OverflowError:
        return np.inf
