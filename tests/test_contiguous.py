"""``arrow_layout.contiguous``: one array of a column whose chunks each bring their own
dictionary, where Arrow cannot combine them (the dictionaries together outgrow the
index type), at the top or nested in a list, struct or map. (Arrow 26 casts no list
view of dictionaries, so those still fail.)"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest

from gpu_engine.arrow_layout import contiguous, contiguous_table, without_dictionaries


def _words(chunk: int) -> pa.DictionaryArray:
    """100 rows of int8 codes into this chunk's own 100 strings."""
    codes = pa.array(np.arange(100) % 100, pa.int8())
    return pa.DictionaryArray.from_arrays(codes, pa.array([f"v{chunk}_{j}" for j in range(100)]))


def _offsets(n: int) -> pa.Array:
    return pa.array(np.arange(n + 1), pa.int32())


NESTINGS: dict[str, Callable[[pa.DictionaryArray], pa.Array]] = {
    "dictionary": lambda d: d,
    "list": lambda d: pa.ListArray.from_arrays(_offsets(len(d)), d),
    "large_list": lambda d: pa.LargeListArray.from_arrays(pa.array(np.arange(len(d) + 1)), d),
    "fixed_size_list": lambda d: pa.FixedSizeListArray.from_arrays(d, 2),
    "struct": lambda d: pa.StructArray.from_arrays([d, pa.array(np.arange(len(d)))], ["w", "i"]),
    "map": lambda d: pa.MapArray.from_arrays(
        _offsets(len(d)), pa.array([f"k{j}" for j in range(len(d))]), d
    ),
}


@pytest.mark.parametrize("nesting", list(NESTINGS))
def test_chunks_whose_dictionaries_do_not_combine_are_decoded(nesting: str) -> None:
    column = pa.chunked_array([NESTINGS[nesting](_words(c)) for c in range(2)])
    with pytest.raises(pa.ArrowInvalid):
        column.combine_chunks()  # what Arrow does: the case is real
    combined = contiguous(column)
    assert combined.type == without_dictionaries(column.type)
    assert "dictionary" not in str(combined.type)
    decoded = [chunk.cast(combined.type).to_pylist() for chunk in column.chunks]
    assert combined.to_pylist() == decoded[0] + decoded[1]


def test_a_table_keeps_its_names_nullability_and_metadata() -> None:
    column = pa.chunked_array([_words(0), _words(1)])
    schema = pa.schema([pa.field("s", column.type, nullable=False), pa.field("s", pa.int64())],
                       metadata={b"origin": b"test"})  # fmt: skip
    table = pa.Table.from_arrays([column, pa.chunked_array([np.arange(100)] * 2)], schema=schema)
    combined = contiguous_table(table)
    assert combined.column_names == ["s", "s"] and combined.num_rows == 200
    assert not combined.schema.field(0).nullable and combined.schema.metadata == schema.metadata
    assert combined.column(0).type == pa.string()
