"""Arrow columns in the layout the engine's kernels and Arrow's own take/filter need.

Input comes chunked (Parquet's row groups, concatenated tables), dictionary encoded
with dictionaries that may not combine, run-end encoded, or in view types (Polars'
newest): each is turned into one plain array of the same values here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def contiguous(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``column`` as one array. A dictionary column whose chunks each bring their own
    dictionary (Parquet's row groups, Arrow tables concatenated) may not combine, when
    the dictionaries together outgrow the index type: its values are decoded first (in
    a list or struct column too). A run-end encoded column is decoded, and a column of
    view types (:func:`without_views`) is cast to their plain twins: Arrow's kernels that
    pick rows (``take``, ``filter``) take neither."""
    if isinstance(column, pa.ChunkedArray):
        try:
            column = column.combine_chunks()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            decoded = without_dictionaries(column.type)
            if decoded == column.type:
                raise
            column = column.cast(decoded).combine_chunks()
    if pa.types.is_run_end_encoded(column.type):
        column = pc.run_end_decode(column)
    return viewless(column)


_LIST_VIEW_IDS = frozenset(kind.id for kind in (pa.list_view(pa.null()),
                                                 pa.large_list_view(pa.null())))  # fmt: skip
_VIEW_IDS = _LIST_VIEW_IDS | {pa.string_view().id, pa.binary_view().id}
_DICTIONARY_ID = pa.dictionary(pa.int8(), pa.null()).id


def has_views(kind: pa.DataType, ids: frozenset[int] = _VIEW_IDS) -> bool:
    """Whether ``kind`` is, or holds, a view type (``string_view``, ``binary_view``,
    ``list_view``, ``large_list_view``: Polars' ``CompatLevel.newest()`` gives them;
    ``ids``: those of some of them). Looked through without recursion: JSON nested a
    thousand levels is read as lists."""
    kinds = [kind]
    while kinds:
        kind = kinds.pop()
        if kind.id in ids:
            return True
        if kind.num_fields:  # lists, structs, maps, unions
            kinds.extend(kind.field(i).type for i in range(kind.num_fields))
        elif kind.id == _DICTIONARY_ID:
            kinds.append(kind.value_type)
    return False


def without_views(kind: pa.DataType, large: bool = False) -> pa.DataType:
    """``kind`` with each view type in it replaced by the plain type of the same values,
    which Arrow's ``take`` and ``filter`` take (they have no kernels for
    ``string_view`` and ``binary_view``, alone or in a list, struct or map): ``string``,
    ``binary``, ``list`` and ``large_list``; with ``large``, ``large_string``,
    ``large_binary`` and ``large_list``, whose offsets hold more than 2 GiB."""

    def plain(k: pa.DataType) -> pa.DataType | None:
        if not has_views(k):
            return k
        if pa.types.is_string_view(k):
            return pa.large_string() if large else pa.string()
        if pa.types.is_binary_view(k):
            return pa.large_binary() if large else pa.binary()
        if pa.types.is_dictionary(k):
            return pa.dictionary(k.index_type, without_views(k.value_type, large), k.ordered)
        wide = large or pa.types.is_large_list_view(k)
        if (
            pa.types.is_list_view(k)
            or pa.types.is_large_list_view(k)
            or (large and pa.types.is_list(k))
        ):
            field = k.value_field.with_type(without_views(k.value_type, large))
            return pa.large_list(field) if wide else pa.list_(field)
        return None  # a list, struct or map: the views in it (a union: kept as it is)

    return _rebuilt(kind, plain)


def viewless(column: Any) -> Any:
    """``column`` (an array or a chunked array) with its view types replaced by their
    plain twins (:func:`without_views`), the same values; the large twins where the
    plain ones' 32-bit offsets cannot hold the data. A column without views, or one that
    cannot be so given (a list view in a map, say), is returned as it is."""
    kind = column.type
    if not has_views(kind):
        return column
    for large in (False, True):
        try:
            if isinstance(column, pa.ChunkedArray):
                chunks = [_viewless_array(chunk, large) for chunk in column.chunks]
                return pa.chunked_array(chunks, type=without_views(kind, large))
            return _viewless_array(column, large)
        except pa.ArrowException:
            continue
        except RecursionError:  # a view under a thousand levels of lists
            break
    return column


def _viewless_array(array: pa.Array, large: bool) -> pa.Array:
    """One array of :func:`viewless` (raises where it cannot be given). Lists that hold
    a list view, and list views, are built here: Arrow's cast of a list view to a list
    gives an offsets buffer one entry short, and under a struct wrong values."""
    kind = array.type
    target = without_views(kind, large)
    if not has_views(kind, _LIST_VIEW_IDS):
        cast = array.cast(target)  # string and binary views, wherever they are
        cast.validate()
        return cast
    if pa.types.is_struct(kind):
        children = [_viewless_array(child, large) for child in array.flatten()]
        mask = array.is_null() if array.null_count else None
        return pa.StructArray.from_arrays(children, fields=list(target), mask=mask)
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)
            or pa.types.is_list_view(kind) or pa.types.is_large_list_view(kind)):  # fmt: skip
        raise pa.ArrowNotImplementedError(f"{kind}: not given without its list views")
    values = _viewless_array(pc.list_flatten(array), large)  # in order, null lists skipped
    lengths = pc.list_value_length(array).fill_null(0).to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(array) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    mask = array.is_null() if array.null_count else None
    if pa.types.is_list(target):  # past 2^31 values pa.array raises: large lists then
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values, target, mask=mask)
    return pa.LargeListArray.from_arrays(pa.array(offsets), values, target, mask=mask)


_PLAIN_SCHEMA: list[pa.Schema] = []  # the last schema found without views (pushes repeat it)


def viewless_table(table: pa.Table) -> pa.Table:
    """``table`` with its view columns cast (:func:`viewless`); ``table`` itself when it
    has none (told from the last such schema, else the schema's text: a push's hot path)."""
    schema = table.schema
    if _PLAIN_SCHEMA and schema.equals(_PLAIN_SCHEMA[0]):  # a fiftieth of the look's time
        return table
    text = schema.to_string(show_field_metadata=False, show_schema_metadata=False)
    if "view" not in text or not any(has_views(kind) for kind in schema.types):
        _PLAIN_SCHEMA[:] = [schema]
        return table
    columns = [viewless(column) for column in table.columns]
    fields = [f.with_type(c.type) for f, c in zip(schema, columns, strict=True)]
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=schema.metadata))


def without_dictionaries(kind: pa.DataType) -> pa.DataType:
    """``kind`` with each dictionary type in it replaced by its value type."""
    return _rebuilt(
        kind, lambda k: without_dictionaries(k.value_type) if pa.types.is_dictionary(k) else None
    )


def _rebuilt(
    kind: pa.DataType, replace: Callable[[pa.DataType], pa.DataType | None]
) -> pa.DataType:
    """``kind`` as ``replace`` gives it, or, where that is None, with the types in it (a
    list's, a struct's fields, a map's key and item) rebuilt so: the one walk through
    nested types of :func:`without_dictionaries` and :func:`without_views`."""
    new = replace(kind)
    if new is not None:
        return new

    def inner(field: pa.Field) -> pa.Field:
        return field.with_type(_rebuilt(field.type, replace))

    if pa.types.is_list(kind):
        return pa.list_(inner(kind.value_field))
    if pa.types.is_large_list(kind):
        return pa.large_list(inner(kind.value_field))
    if pa.types.is_fixed_size_list(kind):
        return pa.list_(inner(kind.value_field), kind.list_size)
    if pa.types.is_struct(kind):
        return pa.struct([inner(f) for f in kind])
    if pa.types.is_map(kind):
        return pa.map_(inner(kind.key_field), inner(kind.item_field), kind.keys_sorted)
    return kind


def contiguous_table(table: pa.Table) -> pa.Table:
    """``table`` with one chunk a column (see :func:`contiguous`)."""
    try:
        combined = table.combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        combined = None
    if combined is not None and not any(
        pa.types.is_run_end_encoded(kind) or has_views(kind) for kind in table.schema.types
    ):
        return combined
    # Column by column: dictionaries that do not combine, run-end encoded and view
    # columns (which combine as they are, and Arrow's take does not take).
    columns = [contiguous(column) for column in table.columns]
    fields = [f.with_type(c.type) for f, c in zip(table.schema, columns, strict=True)]
    schema = pa.schema(fields, metadata=table.schema.metadata)
    return pa.Table.from_arrays(columns, schema=schema)  # names (even twice) kept
