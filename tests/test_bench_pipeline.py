"""``benchmarks.pipeline`` checks what a run produced before quoting its throughput."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from benchmarks import pipeline
from benchmarks.windows import frame_differences
from gpu_engine.config import load_config
from gpu_engine.generator import GeneratorSpec, write_events

EVENTS = 4_000
# Few users over two minutes: sessions of several events, and users with several sessions.
SPEC = GeneratorSpec(events=EVENTS, seed=3, n_users=200, duration_ms=120_000)
WINDOWS = ["content", "region", "user_sessions"]


@pytest.fixture(scope="module")
def events_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("events") / "events.parquet"
    write_events(SPEC, path)
    return path


def _part(out: Path, window: str) -> Path:
    (part,) = (out / "windows" / window).iterdir()
    return part


@pytest.fixture(scope="module")
def finished(events_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One CLI run of the pipeline (its output folder, its figures), shared by the tests."""
    out = tmp_path_factory.mktemp("run") / "out"
    return out, pipeline.run_once(events_path, out, dict(os.environ), None)


@pytest.fixture
def out(finished: tuple[Path, dict], tmp_path: Path) -> Path:
    """A copy of the run's output, for a test to spoil."""
    return Path(shutil.copytree(finished[0], tmp_path / "out"))


def _spoil(out: Path, window: str, column: str, change: Any) -> None:
    """``change`` applied to ``column`` in the first row of a window's output where it is
    not null (the others' nulls kept)."""
    (part,) = (out / "windows" / window).iterdir()
    table = pq.read_table(part)
    valid = table.column(column).is_valid()
    row = pc.index(valid, True).as_py()
    values = table.column(column).to_numpy(zero_copy_only=False).copy()
    values[row] = change(values[row])
    spoilt = pa.array(values, mask=~valid.to_numpy(zero_copy_only=False))
    index = table.schema.get_field_index(column)
    pq.write_table(table.set_column(index, column, spoilt), part)


def test_a_run_is_checked_against_its_counts(finished: tuple[Path, dict]) -> None:
    run = finished[1]
    want_events = pipeline.expected_events(EVENTS, SPEC.seed)
    pipeline.check_events("test", run, want_events)
    for key, value in (("late", 1), ("valid", EVENTS - 1), ("quarantined", 3)):
        wrong = {**run, "events": {**run["events"], key: value}}
        with pytest.raises(AssertionError, match="test run counted"):
            pipeline.check_events("test", wrong, want_events)


def test_every_window_of_the_configuration_has_an_independent_reference(
    events_path: Path, out: Path
) -> None:
    want = pipeline.oracle_windows(events_path)
    assert sorted(want) == sorted(w.name for w in load_config(pipeline.CONFIG).windows)
    assert sorted(want) == WINDOWS
    assert want["region"].approximate == ("latency_p50", "latency_p99")
    assert want["content"].approximate == ("latency_p99",)
    assert want["user_sessions"].approximate == ()
    content = want["content"].frame
    assert sorted(content.columns) == sorted(pq.read_schema(_part(out, "content")).names)
    assert content[["watch_std", "latency_min", "latency_p99"]].isna().any().all()
    assert content.groupby("window_start").size().max() == 100  # the top-k cut
    assert (content["viewers"] < content["views"]).any()
    sessions = want["user_sessions"].frame
    assert sessions["events"].max() > 5  # sessions join events ...
    assert sessions["user_id"].duplicated().any()  # ... and a gap splits a user's
    assert sessions["events"].sum() == EVENTS
    region = want["region"].frame
    assert not region[["latency_p50", "latency_p99"]].isna().any().any()
    pipeline.check_windows("test", out, want)
    # The sketch's quantiles are not the exact ones: the 1 % tolerance is what passes them.
    engine = pq.read_table(out / "windows" / "region").to_pandas()[region.columns]
    both = engine.merge(region, on=["window_start", "region"], suffixes=("", "_exact"))
    assert len(both) == len(region)
    assert (both["latency_p99"] != both["latency_p99_exact"]).any()


@pytest.mark.parametrize(
    ("window", "column", "change", "message"),
    [
        ("content", "views", lambda v: v + 1, "views differs"),
        ("content", "window_end", lambda v: v + 1, "window_end differs"),
        ("content", "watch_std", lambda v: v * (1 + 1e-7), "watch_std differs"),
        ("content", "latency_min", lambda v: v * (1 + 1e-7), "latency_min differs"),
        ("content", "latency_p99", lambda v: v * 1.02, "latency_p99 differs"),
        ("content", "viewers", lambda v: v + 1, "viewers differs"),
        ("region", "skips", lambda v: v + 1, "skips differs"),
        ("region", "latency_p99", lambda v: v * 1.02, "latency_p99 differs"),
        ("user_sessions", "window_end", lambda v: v + 1, "window_end differs"),
        ("user_sessions", "events", lambda v: v + 1, "events differs"),
        ("user_sessions", "watch_sum", lambda v: v * (1 + 1e-7), "watch_sum differs"),
    ],
)
def test_a_value_differing_in_any_window_is_a_mismatch(
    events_path: Path, out: Path, window: str, column: str, change: Any, message: str
) -> None:
    want = pipeline.oracle_windows(events_path)
    _spoil(out, window, column, change)
    with pytest.raises(AssertionError, match=f"test run, window {window}: {message}"):
        pipeline.check_windows("test", out, want)


def test_a_null_quantile_where_the_reference_has_one_is_a_mismatch(
    events_path: Path, out: Path
) -> None:
    want = pipeline.oracle_windows(events_path)
    _spoil(out, "content", "latency_p99", lambda v: np.nan)
    with pytest.raises(AssertionError, match="window content: nulls differ in latency_p99"):
        pipeline.check_windows("test", out, want)


def test_a_column_no_reference_computes_is_a_mismatch(events_path: Path, out: Path) -> None:
    """A column the engine writes and no oracle computes fails the check, as one missing."""
    want = pipeline.oracle_windows(events_path)
    part = _part(out, "content")
    table = pq.read_table(part)
    pq.write_table(table.append_column("watch_var", table.column("watch_std")), part)
    with pytest.raises(AssertionError, match=r"window content: wrote columns \[.*'watch_var'"):
        pipeline.check_windows("test", out, want)
    pq.write_table(table.drop_columns(["viewers"]), part)
    with pytest.raises(AssertionError, match=r"window content: wrote columns .* the reference"):
        pipeline.check_windows("test", out, want)


def test_an_aggregation_no_oracle_computes_is_refused(events_path: Path) -> None:
    spec = next(w for w in load_config(pipeline.CONFIG).windows if w.name == "content")
    var = spec.aggregations[4].model_copy(update={"name": "watch_var", "op": "var"})
    with pytest.raises(AssertionError, match=r"content: no oracle computes \['watch_var'\]"):
        pipeline.oracle_content(events_path, spec.model_copy(update={
            "aggregations": [*spec.aggregations, var]}))  # fmt: skip
    p99 = next(a for a in spec.aggregations if a.name == "latency_p99")
    aggregations = [p99.model_copy(update={"q": 0.9}) if a is p99 else a
                    for a in spec.aggregations]  # fmt: skip
    with pytest.raises(AssertionError, match=r"content: no oracle computes \['latency_p99'\]"):
        pipeline.oracle_content(events_path, spec.model_copy(update={"aggregations": aggregations}))


def test_a_row_or_a_window_missing_is_a_mismatch(events_path: Path, out: Path) -> None:
    want = pipeline.oracle_windows(events_path)
    (part,) = (out / "windows" / "user_sessions").iterdir()
    pq.write_table(pq.read_table(part).slice(1), part)
    with pytest.raises(AssertionError, match=r"window user_sessions: .* rows, the reference"):
        pipeline.check_windows("test", out, want)
    shutil.rmtree(out / "windows" / "region")
    with pytest.raises(AssertionError, match=r"wrote windows \['content', 'user_sessions'\]"):
        pipeline.check_windows("test", out, want)


@pytest.mark.parametrize(
    ("window", "column"),
    [(None, None), ("content", "viewers"), ("region", "skips"), ("user_sessions", "events")],
)
def test_the_benchmark_fails_when_a_run_differs_in_any_window(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    events_path: Path,
    finished: tuple[Path, dict],
    window: str | None,
    column: str,
) -> None:
    """``main`` on the test's events, its two CLI runs stood in for by copies of one run's
    output: the warm one spoilt in ``window`` (none: both as they came)."""

    def run_once(path: Path, out: Path, env: dict, workers: int | None) -> dict:
        assert path == events_path
        shutil.copytree(finished[0], out)
        if window and out.name == "warm":
            _spoil(out, window, column, lambda v: v + 1)
        return finished[1]

    monkeypatch.setattr(pipeline, "dataset", lambda events, seed: events_path)
    monkeypatch.setattr(pipeline, "run_once", run_once)
    args = ["--events", str(EVENTS), "--seed", str(SPEC.seed)]
    if window is None:
        assert pipeline.main(args) == 0
        checked = capsys.readouterr().out.splitlines()[-1]
        for name in WINDOWS:
            assert f" {name} (" in checked
        assert checked.endswith("references in every column (quantiles within 1%)")
        return
    with pytest.raises(AssertionError, match=f"warm run, window {window}: {column} differs"):
        pipeline.main(args)


def test_sessions_split_at_more_than_the_gap_and_join_at_it() -> None:
    """The session oracle on a hand-made stream: keys apart, out of order, at the gap."""
    spec = next(w for w in load_config(pipeline.CONFIG).windows if w.type == "session")
    gap = spec.gap
    assert gap is not None
    events = pd.DataFrame(
        {
            "event_time": [gap, 0, 2 * gap + 1, 0, 5],
            "user_id": [1, 1, 1, 2, 2],
            "watch_ms": np.array([1.0, 2.0, 4.0, 8.0, 16.0], np.float32),
        }
    )
    got = pipeline.oracle_sessions(events, "event_time", spec)
    assert got.to_dict("list") == {
        "window_start": [0, 2 * gap + 1, 0],
        "window_end": [2 * gap, 3 * gap + 1, 5 + gap],
        "user_id": [1, 1, 2],
        "events": [2, 1, 2],
        "watch_sum": [3.0, 4.0, 24.0],
    }


def test_tumbling_windows_count_filter_and_take_lower_quantiles_per_key() -> None:
    """The tumbling oracle on a hand-made stream: a null key is a group of its own, a null
    value is skipped by the quantiles and counted, q = 0.99 of two values is the lower."""
    spec = next(w for w in load_config(pipeline.CONFIG).windows if w.type == "tumbling")
    events = pd.DataFrame(
        {
            "event_time": [0, 5, 10_001, 3],
            "region": ["a", None, "a", "a"],
            "event_type": np.array([3, 1, 3, 0], np.int8),
            "latency_ms": np.array([1.0, np.nan, 4.0, 2.0], np.float32),
        }
    )
    got = pipeline.oracle_tumbling(events, "event_time", spec)
    assert got.astype(object).where(got.notna(), None).to_dict("list") == {
        "window_start": [0, 0, 10_000],
        "window_end": [10_000, 10_000, 20_000],
        "region": ["a", None, "a"],
        "events": [2, 1, 1],
        "skips": [1, 0, 1],
        "latency_p50": [1.0, None, 4.0],
        "latency_p99": [1.0, None, 4.0],
    }


@pytest.mark.parametrize("by", ["duckdb", "pandas"])
def test_content_extras_take_sample_std_lower_quantiles_and_distinct_users(by: str) -> None:
    """The content oracle's second query on a hand-made stream (one content id; events 0.1,
    1.5 and 1.6 s past an epoch second t): the sample std, null for one value; min and the
    lower quantile skip nulls, null when all are; q = 0.99 of eight values is rank 6
    (DuckDB's ``quantile_disc`` would give rank 7); distinct users."""
    latency = [8.0, 1.0, 7.0, 2.0, 6.0, 3.0, 5.0, 4.0, None, None]
    t = 1_700_000_000_000
    events = pa.table(
        {
            "event_time": [t + 100] * 8 + [t + 1_500, t + 1_600],
            "content_id": [7] * 10,
            "user_id": [1, 2, 2, 3, 1, 1, 2, 3, 9, 9],
            "watch_ms": pa.array([1, 2, 3, 4, 5, 6, 7, 8, 10, 10], pa.float32()),
            "latency_ms": pa.array(latency, pa.float32()),
        }
    )
    extra = getattr(pipeline, f"content_extra_{by}")
    keys = pd.DataFrame({"window_start": t + np.arange(-4_000, 2_000, 1_000), "content_id": 7})
    got = extra(events, keys).sort_values("window_start").set_index("window_start")
    assert list(got.index) == list(keys["window_start"])
    first, both, last = got.loc[t - 4_000], got.loc[t], got.loc[t + 1_000]
    assert first["watch_std"] == pytest.approx(np.std(np.arange(1, 9), ddof=1), rel=1e-15)
    assert (first["latency_min"], first["latency_p99"], first["viewers"]) == (1.0, 7.0, 3)
    assert both["viewers"] == 4
    assert both["watch_std"] == pytest.approx(np.std([*range(1, 9), 10, 10], ddof=1))
    assert last["watch_std"] == 0.0 and last["viewers"] == 1
    assert np.isnan(last["latency_min"]) and np.isnan(last["latency_p99"])
    one = extra(events.slice(8, 1), keys[keys["window_start"] >= t - 1_000])  # 3 of its 5
    assert np.isnan(one["watch_std"]).all() and (one["viewers"] == 1).all() and len(one) == 3


def test_the_pandas_fallback_computes_what_duckdb_does(events_path: Path) -> None:
    """The content oracle's second query both ways on the test's events and cut."""
    spec = next(w for w in load_config(pipeline.CONFIG).windows if w.name == "content")
    keys = pipeline.oracle_content(events_path, spec)[["window_start", "content_id"]]
    events = pq.read_table(events_path)
    want = pipeline.content_extra_duckdb(events, keys)
    got = pipeline.content_extra_pandas(events, keys)
    assert len(want) == len(keys) and want["latency_p99"].isna().any()
    assert frame_differences("pandas", got[want.columns], want, rtol=1e-12) == []
