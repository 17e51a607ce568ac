"""Session windows with their state on the device (``backend: cuda``) equal the CPU backend.

The whole engine on random, disordered events (sessions merged across batches
and bridged by late arrivals, a nullable string key, every aggregation kind,
late events, emission and compaction over many batches) and edge cases; then
the new kernels against NumPy: the radix sort against ``np.lexsort`` and the
cutting of sorted events against the CPU interval merge.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cuda_target import CUDA_WARNINGS, require_cuda_target

require_cuda_target()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the core suite's helpers

from engine_testing import ALL_AGGS, make_config, random_events, run_engine, window_frame  # noqa: E402

from gpu_engine.backend.device_sessions import DeviceSessionState  # noqa: E402
from gpu_engine.engine import Engine  # noqa: E402
from gpu_engine.errors import DeviceMemoryError  # noqa: E402
from gpu_engine.io.sinks import MemorySink  # noqa: E402
from kernels.cuda import _core  # noqa: E402
from kernels.cuda import sessions as device_sessions  # noqa: E402
from kernels.cuda._core import as_device, to_host  # noqa: E402
from kernels.cuda.sort import bounds, lex_order  # noqa: E402
from kernels.sessions import merge_intervals  # noqa: E402

pytestmark = [pytest.mark.cudasim, *CUDA_WARNINGS]

AGGS = [  # every kind: ALL_AGGS has u_distinct; quantiles of a float and an integer column
    *ALL_AGGS,
    {"name": "x_p50", "op": "quantile", "column": "x", "q": 0.5},
    {"name": "u_p90", "op": "quantile", "column": "u", "q": 0.9},
    {"name": "s_distinct", "op": "count_distinct", "column": "s"},
    {"name": "x_distinct", "op": "count_distinct", "column": "x"},
]
NAMES = [a["name"] for a in AGGS]


def _run(window: dict[str, Any], frame: pd.DataFrame, backend: str, chunk: int):
    config = make_config({**window, "aggregations": AGGS}, backend=backend, workers=1,
                         batching={"max_rows": chunk})  # fmt: skip
    sink = MemorySink()
    engine = Engine(config, sinks=[sink])
    for start in range(0, len(frame), chunk):
        engine.push(frame.iloc[start : start + chunk])
    summary = engine.close()
    return sink, summary, engine


def _same_output(
    window: dict[str, Any], frame: pd.DataFrame, chunk: int
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Run on both backends; assert equal rows, values, late rows and counts; the CPU
    output and event counts."""
    frames, summaries, lates = {}, {}, {}
    for backend in ("cpu", "cuda"):
        sink, summary, engine = _run(window, frame, backend, chunk)
        assert summary["backend"] == backend and summary["accounted"]
        if backend == "cuda":
            assert isinstance(engine.operators[0].sessions, DeviceSessionState)
        keys = ["window_start", *window["keys"]]
        out = window_frame(sink)
        frames[backend] = out.sort_values(keys).reset_index(drop=True) if len(out) else out
        summaries[backend] = summary["events"]
        late = sink.result("late/w")
        lates[backend] = None if late is None else late.to_pandas()
    cpu, gpu = frames["cpu"], frames["cuda"]
    assert summaries["cpu"] == summaries["cuda"]
    if lates["cpu"] is None:
        assert lates["cuda"] is None
    else:
        pd.testing.assert_frame_equal(lates["cpu"], lates["cuda"])
    assert len(cpu) > 0 and len(cpu) == len(gpu)
    pd.testing.assert_frame_equal(cpu.drop(columns=NAMES), gpu.drop(columns=NAMES))
    for name in NAMES:
        assert cpu[name].dtype == gpu[name].dtype, name
        np.testing.assert_allclose(
            cpu[name].to_numpy(dtype=float, na_value=np.nan),
            gpu[name].to_numpy(dtype=float, na_value=np.nan),
            rtol=1e-9, err_msg=name,
        )  # fmt: skip
    return cpu, summaries["cpu"]


def test_random_sessions_match_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Disordered events of 16 keys (one a nullable string) over 8 batches."""
    compactions, absorbed = [], []
    compact, absorb = DeviceSessionState._compact, device_sessions.absorbed
    monkeypatch.setattr(DeviceSessionState, "_compact",
                        lambda self: (compactions.append(len(self)), compact(self)))  # fmt: skip
    monkeypatch.setattr(device_sessions, "absorbed", lambda *args: absorbed.append(absorb(*args))
                        or absorbed[-1])  # fmt: skip
    frame = random_events(np.random.default_rng(21), 160, n_keys=4, span_ms=2500, disorder_ms=1000)
    window = {"type": "session", "gap": 300, "keys": ["k", "s"], "allowed_lateness": 300}
    cpu, events = _same_output(window, frame, chunk=20)
    assert cpu["s"].isna().any()  # the null key is a key of its own
    assert events["late"] > 0
    assert compactions, "dead rows were never compacted"
    assert sum(int(src.shape[0]) for src, _ in absorbed) > 0, "no open sessions were bridged"


def test_bridging_event_merges_open_sessions() -> None:
    """A late event touching two open sessions (``s2 <= e1`` at both edges) merges all three."""
    rows = [  # (t, k): batch 1, then batch 2 with the bridge, then one that closes them
        (1000, 1), (1600, 1), (1000, 2),
        (1300, 1), (2200, 2), (1700, 2),
        (9000, 3), (9100, 3), (9200, 3),
    ]  # fmt: skip
    n = len(rows)
    frame = pd.DataFrame({
        "t": np.array([r[0] for r in rows], np.int64), "k": np.array([r[1] for r in rows]),
        "s": ["a"] * n, "e": np.arange(n, dtype=np.int8) % 5,
        "x": pd.array(np.linspace(1.0, 9.0, n), dtype="Float64"),
        "u": pd.array(np.arange(n) % 4, dtype="Int64"),
    })  # fmt: skip
    window = {"type": "session", "gap": 300, "keys": ["k"], "allowed_lateness": 1000}
    cpu, _ = _same_output(window, frame, chunk=3)
    one = cpu[cpu["k"] == 1]
    assert one[["window_start", "window_end", "n"]].values.tolist() == [[1000, 1900, 3]]
    two = cpu[cpu["k"] == 2]  # 1000 and 1700 stay apart; 1700 and 2200 do not merge (> gap)
    assert two["n"].tolist() == [1, 1, 1]


@pytest.mark.parametrize("keys", [["k"], []])
def test_late_alone_events_join_open_sessions_as_on_the_cpu(keys: list[str]) -> None:
    """Events whose own gap the watermark passed, inside or chained to an open session
    (judged on the host from the device's open sessions), and truly late ones."""
    first = [0, 300, 5_000, 5_300, 5_600, 5_900]  # [0, 700) emitted; [5000, 6300) open
    second = [6_000, 4_700, 4_350, 200, 2_000]  # in it, a chain down to it, and two late
    frame = random_events(np.random.default_rng(8), 11, n_keys=1)
    frame["t"] = np.array(first + second, np.int64) + 1_000_000
    window = {"type": "session", "gap": 400, "keys": keys, "allowed_lateness": 300}
    cpu, events = _same_output(window, frame, chunk=6)
    assert events["late"] == 2
    assert cpu["n"].tolist() == [2, 7]


@pytest.mark.parametrize(
    ("case", "window"),
    [
        ("one_event", {"type": "session", "gap": 300, "keys": ["k"]}),
        ("one_key", {"type": "session", "gap": 250, "keys": ["k"], "allowed_lateness": 200}),
        ("no_keys", {"type": "session", "gap": 200, "keys": [], "allowed_lateness": 100}),
        ("gap_edges", {"type": "session", "gap": 300, "keys": ["s"]}),
    ],
)
def test_edge_cases_match_cpu(case: str, window: dict[str, Any]) -> None:
    rng = np.random.default_rng(5)
    if case == "one_event":
        frame = random_events(rng, 1)
    elif case == "one_key":  # a hot key: every event, across batches and sessions
        frame = random_events(rng, 80, n_keys=1, span_ms=3000, disorder_ms=300)
    elif case == "no_keys":
        frame = random_events(rng, 60, span_ms=2500, disorder_ms=200)
    else:  # events exactly ``gap`` apart merge; one millisecond more does not
        frame = random_events(rng, 12, n_keys=1)
        frame["t"] = np.array([0, 300, 600, 901, 1201, 1502, 2000, 2300, 2000, 1700, 3000, 2700],
                              np.int64) + 1_000_000  # fmt: skip
        frame["s"] = ["a"] * 6 + [None] * 6
    cpu, _ = _same_output(window, frame, chunk=24)
    if case == "gap_edges":
        a = cpu[cpu["s"] == "a"]
        assert a["n"].tolist() == [3, 2, 1]


def test_session_state_has_a_device_memory_limit() -> None:
    frame = random_events(np.random.default_rng(8), 300, n_keys=200, span_ms=3000)
    window = {"type": "session", "gap": 300, "keys": ["k"]}
    config = make_config(window, backend="cuda", workers=1, device_memory_limit="4KiB")
    with pytest.raises(DeviceMemoryError, match=r"window 'w': its session state needs about"):
        run_engine(config, frame, chunk=300)


def test_state_bytes_are_the_device_bytes() -> None:
    frame = random_events(np.random.default_rng(4), 40, n_keys=3, span_ms=2000)
    _, _, engine = _run({"type": "session", "gap": 300, "keys": ["k"]}, frame, "cuda", 40)
    state = engine.operators[0].sessions
    assert engine.operators[0].state_bytes == state.nbytes > 0
    assert state.nbytes >= state.agg.nbytes + state.key_ids.nbytes + state._kid.nbytes


# -- kernels ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["random", "full_range", "ties", "tiny"])
def test_lex_order_is_numpys_stable_lexsort(case: str) -> None:
    rng = np.random.default_rng(11)
    n = 700
    if case == "random":
        columns = [rng.integers(0, 9, n), rng.integers(-(10**12), 10**12, n)]
    elif case == "full_range":  # digits of the unsigned offset from the minimum
        info = np.iinfo(np.int64)
        columns = [rng.integers(info.min, info.max, n, dtype=np.int64, endpoint=True)]
        columns[0][:2] = [info.min, info.max]
    elif case == "ties":  # a hot key whose times repeat: ties keep their order
        columns = [np.zeros(n, np.int64), rng.integers(0, 5, n), rng.integers(0, 3, n)]
    else:
        columns = [np.array([5], np.int64)]
    columns = [np.asarray(c, dtype=np.int64) for c in columns]
    waits = sum(_core.WAITS.values())
    order = to_host(lex_order(*columns))
    assert sum(_core.WAITS.values()) - waits <= 2  # the columns' bounds at once, the order
    np.testing.assert_array_equal(order, np.lexsort(columns[::-1]))
    assert bounds([as_device(c) for c in columns]) == [(c.min(), c.max()) for c in columns]
    assert len(to_host(lex_order(np.empty(0, np.int64)))) == 0
    # Ranges the caller knows, exact or wider (more passes): the same order, and only the
    # order's read waits.
    device = [as_device(c) for c in columns]
    for widen in (0, 300):
        ranges = [(int(c.min()) - widen if c.min() > np.iinfo(np.int64).min + widen else
                   int(c.min()), int(c.max())) for c in columns]  # fmt: skip
        waits = sum(_core.WAITS.values())
        order = to_host(lex_order(*device, ranges=ranges))
        assert sum(_core.WAITS.values()) - waits == 1
        np.testing.assert_array_equal(order, np.lexsort(columns[::-1]))


def test_cut_matches_the_cpu_merge() -> None:
    rng = np.random.default_rng(12)
    n, gap = 400, 50
    kid = np.sort(rng.integers(0, 6, n)).astype(np.int64)
    times = np.zeros(n, np.int64)
    for k in np.unique(kid):  # steps of 0..2*gap, many exactly gap and gap + 1
        mine = kid == k
        steps = rng.choice([0, 10, gap, gap + 1, 2 * gap], mine.sum())
        times[mine] = np.cumsum(steps)
    expected = np.empty(n, np.int64)
    n_sessions = merge_intervals(kid.reshape(-1, 1), times, times + gap, expected)
    session_of, s_kid, s_start, s_end = (to_host(a) for a in device_sessions.cut(kid, times, gap))
    np.testing.assert_array_equal(session_of, expected)
    assert len(s_kid) == n_sessions
    first = np.r_[0, np.flatnonzero(np.diff(expected)) + 1]
    last = np.r_[first[1:] - 1, n - 1]
    np.testing.assert_array_equal(s_kid, kid[first])
    np.testing.assert_array_equal(s_start, times[first])
    np.testing.assert_array_equal(s_end, times[last] + gap)
