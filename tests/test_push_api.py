"""The in-process push API with frames whose column types disagree: rows are cast or
quarantined one by one, never a failure of the whole push or of ``close()``."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest
from engine_testing import dictionary_chunks_case, make_config, window_frame

from gpu_engine.engine import Engine
from gpu_engine.errors import SchemaError
from gpu_engine.io.sinks import MemorySink

WINDOW = {"type": "tumbling", "size": 1000, "keys": ["k"]}


def _frame(u: list) -> pd.DataFrame:
    n = len(u)
    return pd.DataFrame({"t": [1_000_100 + i for i in range(n)], "k": 1, "s": "a", "e": 0,
                         "x": 1.0, "u": u})  # fmt: skip


def _run(*frames: pd.DataFrame) -> tuple[MemorySink, dict]:
    sink = MemorySink()
    engine = Engine(make_config(WINDOW, batching={"max_rows": 1000}), sinks=[sink])
    for frame in frames:
        engine.push(frame)
    return sink, engine.close()


def _check(sink: MemorySink, summary: dict, valid_sum: int, bad: int) -> None:
    events = summary["events"]
    assert events["quarantined"] == bad and summary["accounted"]
    assert window_frame(sink)["u_sum"].tolist() == [valid_sum]
    quarantine = sink.result("quarantine").to_pandas()
    assert (quarantine["_field"] == "u").all() and len(quarantine) == bad


def test_pushes_of_a_column_as_integers_then_strings_share_no_batch() -> None:
    sink, summary = _run(_frame([1, 2]), _frame(["7", "x", None]))
    _check(sink, summary, 1 + 2 + 7, bad=1)
    assert summary["batches"] == 2


def test_an_object_column_mixing_integers_and_strings_is_read_value_by_value() -> None:
    sink, summary = _run(_frame([1, "2", "x", None, 4]))
    _check(sink, summary, 1 + 2 + 4, bad=1)


def test_categorical_columns_are_read_by_their_values() -> None:
    """pandas categoricals arrive as Arrow dictionaries: cast by their values, int or text."""
    frame = _frame([5, 6, 7])
    frame["u"] = frame["u"].astype("category")
    frame["s"] = pd.Categorical(["a", "b", "a"])
    sink, summary = _run(frame)
    assert summary["events"]["valid"] == 3 and summary["events"]["quarantined"] == 0
    assert window_frame(sink)["u_sum"].tolist() == [18]


def test_an_exception_inside_the_with_block_aborts_the_run() -> None:
    """Leaving ``with Engine(...)`` by an exception is no end of input: the open windows
    are not emitted as final, and the summary says failed."""
    sink = MemorySink()
    try:
        with Engine(make_config(WINDOW), sinks=[sink]) as engine:
            engine.push(_frame([1, 2, 3]))
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert sink.summary is not None and sink.summary["failed"] is True
    assert sink.summary["error"] == "boom" and sink.result("windows/w") is None
    with Engine(make_config(WINDOW), sinks=[sink]) as engine:  # a clean exit still closes
        engine.push(_frame([1, 2, 3]))
    assert "failed" not in sink.summary and window_frame(sink)["u_sum"].tolist() == [6]


def test_pandas_int64_and_float64_pushes_of_one_column_keep_every_value() -> None:
    """pandas makes an int column float64 in a chunk that holds a null: one batch of both
    would be float64, which cannot hold int64 values past 2^53 (Arrow refuses to concat
    them), so such pushes are batches of their own, each validated by the schema."""
    big = 2**63 - 1
    sink, summary = _run(_frame([big]), _frame([None, 2.5, -5.0]))
    _check(sink, summary, big - 5, bad=1)  # 2.5 is no int64: quarantined on its own
    assert summary["batches"] == 2
    # Every buffered push counts, not only the last: float64, then int64 that a float64
    # holds (one batch), then int64 that it does not (a batch of its own).
    sink, summary = _run(_frame([None, 4.0]), _frame([1]), _frame([2**62 + 1]))
    assert summary["events"]["valid"] == 4 and summary["accounted"]
    assert window_frame(sink)["u_sum"].tolist() == [2**62 + 6]
    assert summary["batches"] == 2


def test_a_push_does_not_reread_the_rows_already_buffered(monkeypatch) -> None:
    """Every push made every buffered part own its buffers again and compared every
    part's schema: pushes of one event each were quadratic (``benchmarks.push``: 20,000
    took 40 s). Now a part is made to own its buffers once, and the buffered parts are
    cast-checked again only when a push widens their schema (here: once, for the float64
    push)."""
    from gpu_engine import batching

    calls = {"owned": 0, "casts": 0}
    owned, casts = batching.own_buffers, batching._casts_exactly

    def count(name, real):
        def counted(*args):
            calls[name] += 1
            return real(*args)

        return counted

    monkeypatch.setattr(batching, "own_buffers", count("owned", owned))
    monkeypatch.setattr(batching, "_casts_exactly", count("casts", casts))
    pushes = [_frame([i]) for i in range(300)]
    pushes[200] = _frame([None]).astype({"u": "float64"})  # widens the int64 parts' schema
    sink = MemorySink()
    with Engine(make_config(WINDOW, batching={"max_rows": 1000}), sinks=[sink]) as engine:
        for frame in pushes:
            engine.push(frame)
    assert calls["owned"] == 300
    assert calls["casts"] == 1 + 200 + 99  # the widening push, the 200 before, the rest
    assert window_frame(sink)["u_sum"].tolist() == [sum(range(300)) - 200]


@pytest.mark.parametrize("background", [False, True])
def test_rows_left_waiting_are_not_changed_by_the_caller_reusing_its_buffers(
    background: bool,
) -> None:
    """A host that fills one set of numpy arrays for every push (or edits the pandas frame
    it pushed) changed the rows still waiting for a batch: Arrow takes numpy and pandas
    columns without copying. 7 pushes of 300 rows into batches of 1,000: each batch but
    the last holds rows of a push that had returned before the buffer was refilled (with
    ``background=True``, every push is queued before it is batched). Arrow tables are
    taken as they are: Arrow's buffers are immutable."""
    import numpy as np

    n, pushes = 300, 7
    t = np.empty(n, dtype=np.int64)
    u = np.empty(n, dtype=np.int64)

    def fill(i: int) -> None:
        t[:] = 1_000_100 + i * n + np.arange(n)
        u[:] = i + 1

    def as_dict() -> dict:
        return {"t": t, "k": np.ones(n, dtype=np.int64), "s": np.full(n, "a"),
                "e": np.zeros(n, dtype=np.int64), "x": np.ones(n), "u": u}  # fmt: skip

    def as_series() -> dict:
        return {name: pd.Series(values, copy=False) for name, values in as_dict().items()}

    def as_masked() -> dict:
        return {name: np.ma.masked_array(values, mask=np.zeros(n, dtype=bool))
                if values.dtype != object else values
                for name, values in as_dict().items()}  # fmt: skip

    def as_pandas() -> pd.DataFrame:
        return pd.DataFrame(as_dict(), copy=False)

    for make in (as_dict, as_series, as_masked, as_pandas):
        sink = MemorySink()
        config = make_config(WINDOW, batching={"max_rows": 1000})
        with Engine(config, sinks=[sink], background=background) as engine:
            for i in range(pushes):
                fill(i)
                frame = make()
                engine.push(frame)
                if make is as_pandas:  # edited in place once pushed
                    frame.loc[0, "u"] = -1
        assert engine.summary_data is not None and engine.summary_data["accounted"]
        assert engine.summary_data["events"]["valid"] == n * pushes
        total = int(window_frame(sink)["u_sum"].sum())
        assert total == n * sum(range(1, pushes + 1)), make.__name__


@pytest.mark.parametrize("background", [False, True])
def test_a_categorical_column_edited_after_the_push_changes_nothing(background: bool) -> None:
    """Arrow takes a categorical's codes (and an extension type's storage) from pandas
    without a copy, and ``.loc`` writes them in place."""
    window = {**WINDOW, "aggregations": [
        {"name": "n", "op": "count"},
        {"name": "s_distinct", "op": "count_distinct", "column": "s"}]}  # fmt: skip
    sink = MemorySink()
    with Engine(make_config(window, batching={"max_rows": 1000}), sinks=[sink],
                background=background) as engine:  # fmt: skip
        frame = _frame([1, 2, 3])
        frame["s"] = pd.Categorical(["a", "b", "c"])
        engine.push(frame)
        frame.loc[0, "s"] = "c"
        frame.loc[1, "s"] = "c"
    assert window_frame(sink)[["n", "s_distinct"]].to_dict("records") == [{"n": 3, "s_distinct": 3}]


@pytest.mark.parametrize(("rows", "chunk"), [(200, 64), (200, 100), (60, 30)])
def test_a_dictionary_column_whose_chunks_have_their_own_dictionaries(
    rows: int, chunk: int
) -> None:
    """A batch over two chunks (chunks of 100 or 30 rows, batches of 64) could not be
    combined: the validator failed, and the dead-letter path too (its rows were then
    neither counted nor written, and the push raised Arrow's error); with chunks of 64,
    combining the whole push at once (as a run of queued pushes may) failed it. Also as a
    column the schema does not read."""
    frame, table = dictionary_chunks_case(rows, chunk)
    plain = pa.Table.from_pandas(frame, preserve_index=False)
    extra = plain.append_column("tag", table.column("s"))
    window = {**WINDOW, "aggregations": [
        {"name": "n", "op": "count"},
        {"name": "s_distinct", "op": "count_distinct", "column": "s"}]}  # fmt: skip
    oracle = frame.assign(w=frame["t"] // 1000).groupby(["w", "k"])["s"].nunique()
    for pushed in (table, extra):
        sink = MemorySink()
        engine = Engine(make_config(window, batching={"max_rows": 64}), sinks=[sink])
        engine.push(pushed)
        summary = engine.close()
        assert summary["events"]["valid"] == rows and summary["accounted"]
        got = window_frame(sink).sort_values(["window_start", "k"])
        assert got["s_distinct"].tolist() == oracle.sort_index().tolist()


def test_a_bad_row_in_a_batch_over_chunks_whose_dictionaries_do_not_combine() -> None:
    """Taking the bad row for the quarantine (Arrow's take combines the chunks) failed, and
    sent the whole batch to dead letters; in fail mode nothing was raised."""
    frame, table = dictionary_chunks_case(200, 100)
    keys = table.column("k").to_pylist()
    keys[70] = None  # not nullable: quarantined, in the batch of rows 64-127
    bad = table.set_column(table.schema.get_field_index("k"), "k", pa.array(keys, pa.int64()))
    sink = MemorySink()
    engine = Engine(make_config(WINDOW, batching={"max_rows": 64}), sinks=[sink])
    engine.push(bad)
    events = engine.close()["events"]
    assert (events["valid"], events["quarantined"], events["dead_lettered"]) == (199, 1, 0)
    quarantine = sink.result("quarantine")
    assert quarantine is not None and quarantine.column("s").to_pylist() == [frame["s"][70]]
    config = make_config(WINDOW, batching={"max_rows": 64}, validation={"on_error": "fail"})
    failing = Engine(config, sinks=[MemorySink()])
    with pytest.raises(SchemaError, match="push, row 70: k is null"):
        failing.push(bad)


def test_nested_dictionaries_and_arrow_backed_pandas_columns_that_do_not_combine() -> None:
    """A list of such dictionaries (an extra column) made the batcher fail at close, the
    rows never processed; a pandas column of ``pd.ArrowDtype`` over such chunks made the
    copy at the edge fail."""
    _, table = dictionary_chunks_case(200, 100)
    listed = pa.chunked_array(
        [
            pa.ListArray.from_arrays(pa.array(range(len(c) + 1), pa.int32()), c)
            for c in table.column("s").chunks
        ]
    )
    for pushed in (table.append_column("tags", listed).slice(0, 100),
                   table.to_pandas(types_mapper=pd.ArrowDtype)):  # fmt: skip
        engine = Engine(make_config(WINDOW, batching={"max_rows": 256}), sinks=[MemorySink()])
        engine.push(pushed)
        if isinstance(pushed, pa.Table):
            engine.push(table.append_column("tags", listed).slice(100, 100))
        summary = engine.close()
        assert summary["events"]["valid"] == 200 and summary["accounted"]
