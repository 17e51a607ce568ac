"""Sources (files, push API), the generator and the command line, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from engine_testing import ALL_AGGS, assert_frames_match, duckdb_windows, make_config, random_events

from gpu_engine.cli import main
from gpu_engine.engine import Engine
from gpu_engine.errors import InputError
from gpu_engine.generator import GeneratorSpec, generate, write_events
from gpu_engine.io.sinks import CallbackSink, MemorySink
from gpu_engine.io.sources import read_batches

EXAMPLES = Path(__file__).resolve().parents[1] / "gpu_engine" / "examples"
WINDOW = {"type": "sliding", "size": 2000, "slide": 1000, "keys": ["k"]}
NAMES = ["window_start", "window_end", "k", *[a["name"] for a in ALL_AGGS]]


def _frames(frame: pd.DataFrame):
    table = pa.Table.from_pandas(frame, preserve_index=False)
    yield frame
    yield table
    yield table.to_batches()[0]
    yield {name: frame[name].to_numpy() for name in frame.columns if name in ("t", "k", "e")} | {
        # In a dict of numpy arrays NaN is a value (refused by the schema); nulls are masks.
        "s": frame["s"].to_numpy(),
        "x": np.ma.MaskedArray(
            frame["x"].to_numpy(dtype=float, na_value=0.0), mask=frame["x"].isna().to_numpy()
        ),
        "u": np.ma.MaskedArray(
            frame["u"].to_numpy(dtype=np.int64, na_value=0), mask=frame["u"].isna().to_numpy()
        ),
    }


def test_push_accepts_pandas_arrow_and_dicts(rng) -> None:
    frame = random_events(rng, 300, span_ms=5000)
    expected = duckdb_windows(frame, WINDOW, ALL_AGGS)
    for pushed in _frames(frame):
        sink = MemorySink()
        with Engine(make_config(WINDOW), sinks=[sink]) as engine:
            engine.push(pushed)
        assert_frames_match(sink.result("windows/w").to_pandas(), expected, NAMES)


def test_push_rejects_unknown_objects() -> None:
    engine = Engine(make_config(WINDOW), sinks=[MemorySink()])
    with pytest.raises(InputError, match="cannot read a list"):
        engine.push([1, 2, 3])


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_file_formats_give_the_same_batches(tmp_path, suffix) -> None:
    spec = GeneratorSpec(events=3000, seed=3, bad_fraction=0.01)
    path = tmp_path / f"events{suffix}"
    assert write_events(spec, path) == 3000
    columns = ["event_time", "content_id", "watch_ms"]
    tables = [t for t, _, _ in read_batches(path, 700, columns)]
    assert sum(t.num_rows for t in tables) == 3000
    assert [t.num_rows for t in tables[:4]] == [700] * 4
    rows = [r for t, _, r in read_batches(path, 700, columns)]
    assert rows == [0, 700, 1400, 2100, 2800]


def test_missing_input_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(InputError, match="no such file"):
        list(read_batches(tmp_path / "nope.parquet", 10, ["a"]))
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InputError, match="unknown format"):
        list(read_batches(tmp_path / "x.txt", 10, ["a"]))


def test_generator_is_deterministic_and_skewed() -> None:
    spec = GeneratorSpec(events=50_000, seed=9, disorder_ms=2000, bad_fraction=0.0)
    a = pa.concat_tables(generate(spec, 7000))
    b = pa.concat_tables(generate(spec, 50_000))
    assert a.equals(b)
    content = a.column("content_id").to_numpy()
    counts = np.sort(np.bincount(content))[::-1]
    assert counts[0] > 20 * np.median(counts[counts > 0])  # Zipf head
    t = a.column("event_time").to_numpy()
    running_max = np.maximum.accumulate(t)
    assert (running_max - t).max() <= 2000 and (running_max - t).max() > 1000


def test_generator_bad_fraction_is_quarantined(tmp_path) -> None:
    out = tmp_path / "out"
    code = main(["run", "--events", "20000", "--bad-fraction", "0.05", "--out", str(out),
                 "--no-progress"])  # fmt: skip
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    events = summary["events"]
    assert 0.04 * 20000 < events["quarantined"] < 0.06 * 20000
    assert (
        events["in"]
        == events["valid"] + events["quarantined"] + events["late"] + events["dead_lettered"]
    )
    quarantine = pq.read_table(out / "quarantine")
    assert quarantine.num_rows == events["quarantined"]
    assert set(quarantine.column("_field").to_pylist()) >= {"watch_ms", "event_type", "event_time"}
    content = pq.read_table(out / "windows" / "content")
    assert content.column_names[:3] == ["window_start", "window_end", "content_id"]
    assert (out / "metrics" / "batches.parquet").exists()


def test_cli_runs_both_readme_examples_from_files(tmp_path, capsys) -> None:
    bids = tmp_path / "bids.parquet"
    assert main(["generate", "--kind", "nexmark-bids", "--events", "5000", "--out", str(bids)]) == 0
    out = tmp_path / "nx"
    assert main(["run", "--config", str(EXAMPLES / "nexmark_bids.yaml"), "--input", str(bids),
                 "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    top = pq.read_table(out / "windows" / "hot_auctions").to_pandas()
    assert (top.groupby("window_start").size() <= 10).all()
    assert str(top["window_start"].dtype).startswith("datetime64")
    events = tmp_path / "events.csv"
    assert (
        main(["generate", "--events", "5000", "--out", str(events), "--bad-fraction", "0.01"]) == 0
    )
    out2 = tmp_path / "sv"
    assert main(["run", "--config", str(EXAMPLES / "short_video.yaml"), "--input", str(events),
                 "--out", str(out2), "--no-progress"]) == 0  # fmt: skip
    summary = json.loads((out2 / "summary.json").read_text())
    assert summary["events"]["in"] == 5000 and summary["events"]["quarantined"] > 0
    assert "Run summary" in capsys.readouterr().out


def test_cli_config_error_exits_2(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema: {time: t, fields: {t: {type: int64}}}\nwindows: []\n")
    assert main(["run", "--config", str(bad), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "windows: List should have at least 1 item" in capsys.readouterr().err


def test_callback_sink_sees_every_window(rng) -> None:
    seen: list[int] = []
    engine = Engine(
        make_config(WINDOW), sinks=[CallbackSink(lambda name, t: seen.append(t.num_rows))]
    )
    frame = random_events(rng, 500, span_ms=5000)
    engine.push(frame)
    summary = engine.close()
    assert sum(seen) == summary["windows_emitted"] > 0


def test_jsonl_with_mixed_types_quarantines_only_bad_rows(tmp_path) -> None:
    """A string among numbers in a JSON column is one bad row, not an unreadable file."""
    lines = [
        '{"t": 1000000, "k": 1, "s": "a", "e": 1, "x": 1.5, "u": 3}',
        '{"t": 1000001, "k": "oops", "s": "b", "e": 2, "x": 2.5, "u": 4}',
        '{"t": 1000002, "k": 2, "s": null, "e": 0, "x": null, "u": null}',
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    config = make_config(WINDOW)
    sink = MemorySink()
    with Engine(config, sinks=[sink]) as engine:
        for table, source, first_row in read_batches(path, 100, list(config.event_schema.fields)):
            engine.push(table, source=source, first_row=first_row)
    quarantine = sink.result("quarantine")
    assert quarantine is not None
    assert quarantine.column("_reason").to_pylist() == [
        "k='oops' is not an integer that fits int64"
    ]
    assert quarantine.column("_row").to_pylist() == [1]
    assert quarantine.column("_source").to_pylist() == [str(path)]
    assert sink.summary is not None and sink.summary["events"]["valid"] == 2


def test_a_generated_file_quarantines_the_same_rows_for_the_same_reasons_in_every_format(
    tmp_path,
) -> None:
    """JSON has no number for NaN or an infinity: ``.jsonl`` wrote them as null, so a run
    over it quarantined those rows as nulls, not as NaN or infinite."""
    spec = GeneratorSpec(events=6000, seed=4, bad_fraction=0.05)
    reasons = {}
    for suffix in (".parquet", ".jsonl", ".csv"):
        path = tmp_path / f"events{suffix}"
        write_events(spec, path)
        out = tmp_path / f"out{suffix}"
        assert main(["run", "--input", str(path), "--out", str(out), "--no-progress"]) == 0
        table = pq.read_table(out / "quarantine").sort_by("_row").to_pandas()
        # the kind of problem, not its spelling: CSV and JSON show the text they read
        kind = table["_reason"].str.replace(r"=\S+ ", "=… ", regex=True)
        reasons[suffix] = list(zip(table["_row"], table["_field"], kind, strict=True))
    assert any("NaN" in r for _, _, r in reasons[".parquet"])
    assert any("not finite" in r for _, _, r in reasons[".parquet"])
    assert reasons[".jsonl"] == reasons[".parquet"] == reasons[".csv"]
