"""Columns pushed on the device stay there (backend ``cuda``) and give the CPU's results.

The CPU engine reads the same values as a host Arrow table. Covered: casts on the
device (int32 and float keys widened, float values cast to int16 with failures),
nulls (as ``DeviceColumn`` flags), NaN and range failures, an allowed set, a
host string column in the same push, ``where`` filters, sketches, late events,
the quarantine (same rows, reasons and messages), tumbling, sliding and session
windows, one and two workers; and that the pane state was fed without an upload.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from cuda_target import CUDA_WARNINGS, real_device, require_cuda_target

require_cuda_target()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the core suite's helpers

from engine_testing import window_frame  # noqa: E402
from numba import cuda  # noqa: E402

from gpu_engine.backend.device_frame import DeviceColumn  # noqa: E402
from gpu_engine.config import parse_config  # noqa: E402
from gpu_engine.engine import Engine  # noqa: E402
from gpu_engine.errors import SchemaError  # noqa: E402
from gpu_engine.io.sinks import MemorySink  # noqa: E402

pytestmark = [pytest.mark.cudasim, *CUDA_WARNINGS]

FIELDS = {
    "t": {"type": "int64", "required": True},
    "k": {"type": "int64", "required": True},
    "s": {"type": "string", "nullable": True},
    "e": {"type": "int8", "allowed": [0, 1, 2, 3]},
    "x": {"type": "float64", "nullable": True, "max": 180.0},
    "u": {"type": "int64", "nullable": True},
    "c": {"type": "int16"},
    "ok": {"type": "bool"},
    "seen": {"type": "timestamp", "nullable": True},  # only some tests push it
}
AGGS = [
    {"name": "n", "op": "count"},
    {"name": "likes", "op": "count", "where": {"e": 1}},
    {"name": "oks", "op": "count", "where": {"ok": True}},
    {"name": "x_sum", "op": "sum", "column": "x"},
    {"name": "x_mean", "op": "mean", "column": "x", "where": {"e": [0, 2]}},
    {"name": "x_std", "op": "std", "column": "x"},
    {"name": "x_min", "op": "min", "column": "x"},
    {"name": "x_max", "op": "max", "column": "x"},
    {"name": "x_p50", "op": "quantile", "column": "x", "q": 0.5},
    {"name": "u_sum", "op": "sum", "column": "u"},
    {"name": "u_distinct", "op": "count_distinct", "column": "u"},
    {"name": "s_distinct", "op": "count_distinct", "column": "s"},
    {"name": "c_sum", "op": "sum", "column": "c"},
]


def _columns(n: int, seed: int = 3) -> dict[str, Any]:
    """Host columns (values, null flags) with every kind of bad row sprinkled in."""
    rng = np.random.default_rng(seed)
    arrival = np.sort(rng.integers(0, 6000, n)) + 1_000_000
    x = rng.normal(100.0, 30.0, n)
    x[rng.random(n) < 0.04] = np.nan  # NaN: quarantined
    x[rng.random(n) < 0.03] = 500.0  # above max: quarantined
    c = rng.integers(-50, 50, n).astype(np.float64)
    c[rng.random(n) < 0.03] = 2.5  # not a whole number: fails the cast to int16
    c[rng.random(n) < 0.02] = 1e6  # out of int16's range
    s = rng.choice(np.array(["a", "b", "c"], dtype=object), n)
    s[rng.random(n) < 0.1] = None
    return {
        "t": (arrival - rng.integers(0, 700, n) - 3000 * (rng.random(n) < 0.05)).astype(np.int64),
        "k": rng.integers(0, 4, n).astype(np.int32),
        "s": s,
        "e": rng.integers(0, 5, n).astype(np.int64),  # 4 is not allowed
        "x": (x, rng.random(n) < 0.1),
        "u": (rng.integers(0, 30, n).astype(np.int64), rng.random(n) < 0.1),
        "c": c,
        "ok": rng.random(n) < 0.5,
    }


def _host(columns: dict[str, Any]) -> pa.Table:
    return pa.table({
        name: pa.array(v[0], mask=v[1]) if isinstance(v, tuple) else pa.array(v, from_pandas=True)
        for name, v in columns.items()
    })  # fmt: skip


def _device(columns: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, v in columns.items():
        if isinstance(v, tuple):
            out[name] = DeviceColumn(cuda.to_device(v[0]), cuda.to_device(v[1].view(np.uint8)))
        elif v.dtype == object:
            out[name] = v  # strings stay a host column in the same push
        else:
            out[name] = cuda.to_device(v)
    return out


def _config(window: dict[str, Any], backend: str, workers: int, on_error: str = "quarantine"):
    return parse_config({
        "schema": {"time": "t", "fields": FIELDS},
        "windows": [{"name": "w", "aggregations": AGGS, "allowed_lateness": 300, **window}],
        "validation": {"on_error": on_error},
        "backend": backend,
        "workers": workers,
        "batching": {"max_rows": 64},
    })  # fmt: skip


def _run(config, parts: list[Any]) -> tuple[MemorySink, dict[str, Any], Engine]:
    sink = MemorySink()
    engine = Engine(config, sinks=[sink])
    for part in parts:
        engine.push(part)
    return sink, engine.close(), engine


def _parts(columns: dict[str, Any], size: int, convert) -> list[Any]:
    n = len(columns["t"])
    parts = []
    for lo in range(0, n, size):
        part = {
            k: (v[0][lo : lo + size], v[1][lo : lo + size]) if isinstance(v, tuple)
            else v[lo : lo + size]
            for k, v in columns.items()
        }  # fmt: skip
        parts.append(convert(part))
    return parts


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if frame.empty:
        return frame
    return frame.sort_values(keys).reset_index(drop=True)


@pytest.mark.parametrize(
    ("window", "workers"),
    [
        ({"type": "tumbling", "size": 1000, "keys": ["k"]}, 1),
        ({"type": "sliding", "size": 2000, "slide": 500, "keys": ["k", "s"]}, 1),
        # Two workers launch kernels from two threads, which the simulator cannot run.
        pytest.param(
            {"type": "sliding", "size": 2000, "slide": 500, "keys": ["k", "s"]},
            2,
            marks=[pytest.mark.gpu, pytest.mark.skipif(not real_device(), reason="needs a GPU")],
        ),
        ({"type": "session", "gap": 300, "keys": ["k"]}, 1),
    ],
)
def test_device_push_matches_cpu(window: dict[str, Any], workers: int) -> None:
    # Pushes of 90 rows into batches of 64: device pushes are buffered, cut and merged
    # like host ones (batch boundaries move the watermark, and so lateness).
    columns = _columns(240)
    want_sink, want, _ = _run(_config(window, "cpu", 1), _parts(columns, 90, _host))
    got_sink, got, engine = _run(_config(window, "cuda", workers), _parts(columns, 90, _device))
    assert got["backend"] == "cuda"
    assert got["events"] == want["events"] and got["accounted"]
    assert want["events"]["quarantined"] > 10 and want["events"]["late"] > 0
    keys = ["window_start", *window["keys"]]
    expected = _sorted(window_frame(want_sink), keys)
    assert len(expected) > 0
    pd.testing.assert_frame_equal(_sorted(window_frame(got_sink), keys), expected,
                                  check_exact=False, rtol=1e-9)  # fmt: skip
    quarantine = ["_row", "_reason_code", "_field", "_reason"]
    pd.testing.assert_frame_equal(
        got_sink.result("quarantine").select(quarantine).to_pandas(),
        want_sink.result("quarantine").select(quarantine).to_pandas(),
    )
    late = got_sink.result("late/w").to_pandas()
    pd.testing.assert_frame_equal(late, want_sink.result("late/w").to_pandas())
    if window["type"] != "session":  # pane state took the device columns as they were
        for op in getattr(engine.operators[0], "shards", [engine.operators[0]]):
            assert op.panes.uploader.copies == 0


def test_quarantine_keeps_the_pushed_values() -> None:
    columns = _columns(120, seed=5)
    columns["seen"] = (np.arange(120) * 7).astype("datetime64[ms]")  # a Numba datetime array
    sink, _, _ = _run(_config({"type": "tumbling", "size": 1000, "keys": ["k"]}, "cuda", 1),
                            [_device(columns)])  # fmt: skip
    table = sink.result("quarantine")
    rows = table.column("_row").to_numpy()
    np.testing.assert_array_equal(table.column("c").to_numpy(), columns["c"][rows])
    assert table.schema.field("c").type == pa.float64()  # as pushed, not as cast
    np.testing.assert_array_equal(table.column("seen").to_numpy(), columns["seen"][rows])
    reasons = set(table.column("_reason").to_pylist())
    assert any("is not an integer that fits int16" in r for r in reasons)
    assert any("x is NaN" in r for r in reasons)


@pytest.mark.parametrize("zone", [None, "Asia/Tokyo"])
def test_host_frames_on_the_device_path_match_cpu_tables(zone: str | None) -> None:
    """Host frames staged on the device: windows, and quarantine and late tables (their
    columns and types too, a timestamp's zone included) equal the CPU engine's."""
    columns = _columns(192, seed=9)
    seen = (np.arange(192) * 1001).astype("datetime64[us]")  # cast to ms on upload
    columns["seen"] = pa.array(seen, pa.timestamp("us", tz=zone))
    window = {"type": "tumbling", "size": 1000, "keys": ["k", "s"]}
    want_sink, want, _ = _run(_config(window, "cpu", 1), _parts(columns, 64, _host))
    got_sink, got, engine = _run(_config(window, "cuda", 1), _parts(columns, 64, _host))
    assert engine._stage is not None and got["stage_s"]["ingest"] > 0
    assert got["events"] == want["events"]
    assert want["events"]["quarantined"] > 0 and want["events"]["late"] > 0
    keys = ["window_start", "k", "s"]
    pd.testing.assert_frame_equal(_sorted(window_frame(got_sink), keys),
                                  _sorted(window_frame(want_sink), keys),
                                  check_exact=False, rtol=1e-9)  # fmt: skip
    for kind in ("quarantine", "late/w"):  # (NaN rows: compared as frames, schemas apart)
        got_table, want_table = got_sink.result(kind), want_sink.result(kind)
        assert got_table.schema.equals(want_table.schema), kind
        pd.testing.assert_frame_equal(got_table.to_pandas(), want_table.to_pandas())


@pytest.mark.parametrize("background", [False, True])
def test_buffered_device_rows_survive_the_caller_reusing_its_buffers(background: bool) -> None:
    """Rows waiting for a full batch (or, with ``background=True``, queued) are the
    engine's copy: overwriting the pushed device arrays after ``push`` returns changes
    nothing. (In the background, the engine's thread launches the kernels.)"""
    columns = _columns(100, seed=11)
    window = {"type": "tumbling", "size": 1000, "keys": ["k"]}
    want_sink, want, _ = _run(_config(window, "cpu", 1), _parts(columns, 50, _host))
    sink = MemorySink()
    engine = Engine(_config(window, "cuda", 1), sinks=[sink], background=background)
    for part in _parts(columns, 50, _device):  # 50 rows wait for the next 14 each time
        engine.push(part)
        for value in part.values():
            arrays = [value.values, value.is_null] if isinstance(value, DeviceColumn) else [value]
            for array in arrays:
                if hasattr(array, "copy_to_device"):  # scribble over the caller's buffer
                    array.copy_to_device(np.zeros(array.shape, array.dtype))
    got = engine.close()
    assert got["events"] == want["events"]
    keys = ["window_start", "k"]
    pd.testing.assert_frame_equal(_sorted(window_frame(sink), keys),
                                  _sorted(window_frame(want_sink), keys),
                                  check_exact=False, rtol=1e-9)  # fmt: skip


def test_fail_mode_raises_the_cpu_error() -> None:
    columns = _columns(50, seed=6)
    window = {"type": "tumbling", "size": 1000, "keys": ["k"]}
    with pytest.raises(SchemaError) as want:
        _run(_config(window, "cpu", 1, "fail"), [_host(columns)])
    assert "push, row " in str(want.value)
    with pytest.raises(SchemaError) as got:
        _run(_config(window, "cuda", 1, "fail"), [_device(columns)])
    assert str(got.value) == str(want.value)


def test_ragged_columns_are_refused() -> None:
    config = _config({"type": "tumbling", "size": 1000, "keys": ["k"]}, "cuda", 1)
    engine = Engine(config, sinks=[MemorySink()])
    with pytest.raises(Exception, match="one length"):
        engine.push({"t": cuda.to_device(np.arange(3)), "k": cuda.to_device(np.arange(2))})


GPU_ONLY = [pytest.mark.gpu, pytest.mark.skipif(not real_device(), reason="needs a GPU")]


@pytest.mark.parametrize("library", ["cupy", "torch", "cudf"])
@pytest.mark.parametrize("_", [pytest.param(None, marks=GPU_ONLY)])
def test_device_libraries_push_like_numpy(library: str, _: None) -> None:
    """CuPy arrays, torch CUDA tensors and cuDF frames take the device path (real GPU)."""
    module = pytest.importorskip(library)
    columns = _columns(192, seed=8)
    host = _host(columns)
    if library == "cudf":
        pushed: Any = module.DataFrame.from_arrow(host)
    else:
        pushed = _device(columns)
        for name, value in list(pushed.items()):
            if isinstance(value, DeviceColumn):
                value = value.values
                array = columns[name][0]  # nulls: covered by the Numba and cuDF cases
            elif name == "s":
                continue
            else:
                array = columns[name]
            pushed[name] = module.asarray(array) if library == "cupy" else module.as_tensor(
                array, device="cuda")  # fmt: skip
        host = (
            host.drop_columns(["x", "u"])
            .append_column("x", pa.array(columns["x"][0]))
            .append_column("u", pa.array(columns["u"][0]))
        )
    window = {"type": "tumbling", "size": 1000, "keys": ["k"]}
    want_sink, want, _ = _run(_config(window, "cpu", 1), [host])
    got_sink, got, engine = _run(_config(window, "cuda", 1), [pushed])
    assert got["events"] == want["events"]
    keys = ["window_start", "k"]
    pd.testing.assert_frame_equal(_sorted(window_frame(got_sink), keys),
                                  _sorted(window_frame(want_sink), keys),
                                  check_exact=False, rtol=1e-9)  # fmt: skip
    assert engine.operators[0].panes.uploader.copies == 0


# -- host frames the CPU reads strictly: the device path must read them alike -------------
def _cpu_and_cuda(config: dict[str, Any], frame: Any) -> list[Any]:
    """What the CPU engine and the CUDA one (host frames staged on the device) make of
    ``frame``: the windows, event counts and quarantined rows, or the SchemaError raised."""
    out: list[Any] = []
    for backend in ("cpu", "cuda"):
        sink = MemorySink()
        engine = Engine(parse_config({**config, "backend": backend, "workers": 1}), sinks=[sink])
        assert (engine._stage is not None) == (backend == "cuda")
        try:
            engine.push(frame)
            events = engine.close()["events"]
        except SchemaError as exc:
            out.append(f"SchemaError: {exc}")
            continue
        windows = window_frame(sink)
        quarantine = sink.result("quarantine")
        if quarantine is not None:  # times as ticks: 2^62 s is past Python's datetime
            ticks = [f.name for f in quarantine.schema if pa.types.is_timestamp(f.type)]
            for name in ticks:
                at = quarantine.column_names.index(name)
                quarantine = quarantine.set_column(at, name, quarantine[name].cast(pa.int64()))
        out.append((windows.astype(object).where(windows.notna(), None).to_dict("records"),
                    events, None if quarantine is None else quarantine.to_pylist()))  # fmt: skip
    return out


@pytest.mark.parametrize("unit", ["us", "ns"])
def test_sub_millisecond_timestamps_before_1970_are_floored_as_on_the_cpu(unit: str) -> None:
    """A timestamp finer than ms is floored to the ms that holds it (``timestamp_ms``), as
    the time field, a key, a value and an int64 field: -1.5 ms is in [-2, -1), not -1."""
    scale = 1 if unit == "us" else 1000
    ticks = pa.array([-1500 * scale, -500 * scale, 700 * scale, -1, None], pa.timestamp(unit))
    fields = {
        "t": {"type": "timestamp", "required": True, "min": -1e12},
        "k": {"type": "timestamp", "nullable": True},
        "v": {"type": "timestamp", "nullable": True},
        "i": {"type": "int64", "nullable": True},
    }
    aggs = [{"name": "n", "op": "count"}, {"name": "v_min", "op": "min", "column": "v"},
            {"name": "i_min", "op": "min", "column": "i"}]  # fmt: skip
    config = {
        "schema": {"time": "t", "fields": fields},
        "windows": [{"name": "w", "type": "tumbling", "size": 1, "keys": ["k"],
                     "aggregations": aggs}],
    }  # fmt: skip
    times = pa.array([-1500 * scale, -500 * scale, 700 * scale, -1, -1], pa.timestamp(unit))
    table = pa.table({"t": times, "k": ticks, "v": ticks, "i": ticks})
    want, got = _cpu_and_cuda(config, table)
    assert got == want
    windows = want[0]  # -1.5 ms; -0.5 ms and -1 tick; the null key; 0.7 ms
    assert [w["i_min"] for w in windows] == [-2, -1, None, 0]
    assert [w["window_start"].value // 1_000_000 for w in windows] == [-2, -1, -1, 0]
    keys = [None if w["k"] is None else w["k"].value // 1_000_000 for w in windows]
    assert keys == [-2, -1, None, 0]


@pytest.mark.parametrize(
    "field, values",
    [(t, pa.array([5, None], pa.timestamp("ms")))
     for t in ("int8", "int16", "int32", "uint8", "uint16", "uint32", "float32",
               "float64", "bool")]
    + [(t, pa.array([2**62, None], pa.timestamp("s"))) for t in ("timestamp", "int64")],
)  # fmt: skip
def test_timestamp_columns_the_cpu_refuses_are_refused_alike(field: str, values: Any) -> None:
    """A timestamp column only fits a timestamp or an int64 field, in epoch ms: elsewhere,
    or in seconds past the ms range, both engines quarantine its values alike, naming the
    column's type (the device path neither reads it as a plain integer nor wraps it)."""
    fields = {"t": {"type": "int64", "required": True}, "v": {"type": field, "nullable": True}}
    config = {
        "schema": {"time": "t", "fields": fields},
        "windows": [{"name": "w", "type": "tumbling", "size": 1000,
                     "aggregations": [{"name": "n", "op": "count"}]}],
    }  # fmt: skip
    table = pa.table({"t": pa.array([1_000_000, 1_000_001]), "v": values})
    want, got = _cpu_and_cuda(config, table)
    assert got == want
    _, events, quarantine = want
    assert (events["valid"], events["quarantined"]) == (1, 1)
    assert [row["_row"] for row in quarantine] == [0]  # the null in row 1 is a null
    assert quarantine[0]["_reason"].endswith(f"(its column is {values.type})")


@pytest.mark.parametrize("device", [False, True])
def test_a_batch_whose_every_row_is_quarantined_is_quarantined(device: bool) -> None:
    """No valid row left: the device gathers none (an empty upload and take), as the CPU."""
    fields = {"t": {"type": "int64", "required": True}, "c": {"type": "int8", "required": True}}
    config = {
        "schema": {"time": "t", "fields": fields},
        "windows": [{"name": "w", "type": "tumbling", "size": 1000,
                     "aggregations": [{"name": "n", "op": "count"}]}],
    }  # fmt: skip
    table = pa.table({"t": pa.array([1_000_000, 1_000_001]), "c": pa.array([None, 300])})
    want, _ = _cpu_and_cuda(config, table)
    frame: Any = table
    if device:
        frame = {"t": cuda.to_device(np.array([1_000_000, 1_000_001])),
                 "c": DeviceColumn(cuda.to_device(np.array([0, 300])),
                                   cuda.to_device(np.array([1, 0], np.uint8)))}  # fmt: skip
    _, got = _cpu_and_cuda(config, frame)
    assert want[1]["quarantined"] == 2 and want[1]["dead_lettered"] == 0
    assert got == want


@pytest.mark.parametrize(
    "column, quarantined",
    [
        (pa.array([b"ok", b"caf\xe9", None, b"x", b"\xff"], pa.binary()).view(pa.string()), 2),
        (pa.array([1, None, 3, 4, None], pa.duration("ms")), 3),
        (pa.array([1.5, None, 3, 4, None]).cast(pa.decimal128(10, 2)), 0),
    ],
)
def test_values_the_cpu_quarantines_one_by_one_are_quarantined_alike(
    column: Any, quarantined: int
) -> None:
    """Text that is not UTF-8, a column no value of which fits its field, decimals."""
    fields = {"t": {"type": "int64", "required": True}, "v": {"type": "string", "nullable": True},
              "x": {"type": "float64", "nullable": True}}  # fmt: skip
    aggs = [{"name": "n", "op": "count"}, {"name": "x_sum", "op": "sum", "column": "x"}]
    config = {
        "schema": {"time": "t", "fields": fields},
        "windows": [{"name": "w", "type": "tumbling", "size": 1000, "keys": ["v"],
                     "aggregations": aggs}],
    }  # fmt: skip
    name = "v" if pa.types.is_string(column.type) else "x"
    table = pa.table({"t": pa.array(1_000_000 + np.arange(5) * 10), name: column})
    want, got = _cpu_and_cuda(config, table)
    assert got == want
    assert want[1]["quarantined"] == quarantined


def _tx_engine(
    backend: str, aggs: list[dict[str, Any]], max_rows: int = 65_536
) -> tuple[Engine, MemorySink]:
    """An engine over ``t`` (int64) and ``x`` (nullable float64), one tumbling window."""
    fields = {"t": {"type": "int64", "required": True}, "x": {"type": "float64", "nullable": True}}
    config = parse_config({
        "schema": {"time": "t", "fields": fields}, "backend": backend, "workers": 1,
        "batching": {"max_rows": max_rows},
        "windows": [{"name": "w", "type": "tumbling", "size": 1000, "aggregations": aggs}],
    })  # fmt: skip
    sink = MemorySink()
    return Engine(config, sinks=[sink]), sink


def _second_push(kind: str) -> Any:
    times = np.array([6000, 100], np.int64)
    if kind == "host":
        return pd.DataFrame({"t": times, "x": [3.0, 4.0]})
    if kind == "null flags":
        return {"t": cuda.to_device(times),
                "x": DeviceColumn(cuda.to_device(np.array([3.0, 0.0])),
                                  cuda.to_device(np.array([0, 1], np.uint8)))}  # fmt: skip
    return {"t": cuda.to_device(times.astype(np.int32)), "x": cuda.to_device(np.array([3.0, 4.0]))}


@pytest.mark.parametrize("kind", ["host", "null flags", "int32 times"])
def test_pushes_of_another_layout_share_a_batch_as_on_the_cpu(kind: str) -> None:
    """A device push, then one of another layout (host rows, null flags, a narrower dtype):
    the CUDA backend cut the rows waiting at the switch into a batch of their own, and a
    batch's bounds decide which rows are late (t = 100 after t = 5001 came out late)."""
    out = []
    for backend in ("cpu", "cuda"):
        engine, sink = _tx_engine(backend, [{"name": "n", "op": "count"}], max_rows=4)
        engine.push({"t": cuda.to_device(np.array([5000, 5001], np.int64)),
                     "x": cuda.to_device(np.array([1.0, 2.0]))})  # fmt: skip
        engine.push(_second_push(kind))
        summary = engine.close()
        out.append((summary["events"], sink.result("windows/w").to_pylist()))
    assert out[1] == out[0]
    assert out[0][0]["late"] == 0 and [w["n"] for w in out[0][1]] == [1, 2, 1]


def test_device_pushes_with_and_without_null_flags_stay_on_the_device() -> None:
    """cuDF gives a column null flags only in chunks that hold a null: such chunks join
    on the device (flags of 0 for the others), not through the host."""
    aggs = [{"name": "n", "op": "count"}, {"name": "x_min", "op": "min", "column": "x"}]
    out = []
    for backend in ("cpu", "cuda"):
        engine, sink = _tx_engine(backend, aggs)
        engine.push(_second_push("null flags"))
        engine.push({"t": cuda.to_device(np.array([6001, 6002])),
                     "x": cuda.to_device(np.array([5.0, 2.0]))})  # fmt: skip
        parts = engine.batcher._pending.parts
        assert len(parts) == 2
        assert not any(isinstance(p, pa.Table) for p in parts) or backend == "cpu"
        engine.close()
        out.append(sink.result("windows/w").to_pylist())
    assert out[1] == out[0]
    assert [(w["n"], w["x_min"]) for w in out[0]] == [(1, None), (3, 2.0)]


def test_after_a_host_push_device_pushes_go_back_to_the_device() -> None:
    """Only the rows that fill the batch a host push joined go through the host: the
    device rows after them start the next batch on the device (every later push went
    through the host until the buffer happened to empty)."""
    aggs = [{"name": "n", "op": "count"}, {"name": "x_sum", "op": "sum", "column": "x"}]
    out = []
    for backend in ("cpu", "cuda"):
        engine, sink = _tx_engine(backend, aggs, max_rows=5)

        def device(start: int) -> dict[str, Any]:
            t = np.arange(start, start + 3, dtype=np.int64) * 400
            return {"t": cuda.to_device(t), "x": cuda.to_device(t / 100.0)}

        engine.push(device(0))
        engine.push(pd.DataFrame({"t": [1300], "x": [1.0]}))  # 4 rows wait, as Arrow
        engine.push(device(4))  # one row fills the batch; two wait
        parts = engine.batcher._pending.parts
        assert engine.batcher.buffered_rows == 2
        assert backend == "cpu" or not any(isinstance(p, pa.Table) for p in parts)
        engine.push(device(7))
        engine.close()
        out.append(sink.result("windows/w").to_pylist())
    assert out[1] == out[0]
    assert sum(w["n"] for w in out[0]) == 10


def test_a_device_rest_whose_batch_widened_a_type_is_batched_as_on_the_cpu() -> None:
    """The rest of a device push (int64 x) after a host row (float64 x) filled a batch:
    on the CPU that rest has the batch's float64 x and refuses to join 2^53 + 1 (which no
    float64 holds), so t = 1500 comes in a batch after t = 5000 and is late. On the device
    the rest kept int64 and took it, on time."""
    out = []
    for backend in ("cpu", "cuda"):
        engine, sink = _tx_engine(backend, [{"name": "n", "op": "count"}], max_rows=4)
        engine.push(pd.DataFrame({"t": [1000], "x": [1.5]}))
        engine.push({"t": cuda.to_device(np.array([1001, 1002, 1003, 5000], np.int64)),
                     "x": cuda.to_device(np.array([1, 2, 3, 4], np.int64))})  # fmt: skip
        engine.push({"t": cuda.to_device(np.array([1500], np.int64)),
                     "x": cuda.to_device(np.array([2**53 + 1], np.int64))})  # fmt: skip
        out.append((engine.close()["events"], sink.result("windows/w").to_pylist()))
    assert out[1] == out[0]
    assert out[0][0]["late"] == 1
