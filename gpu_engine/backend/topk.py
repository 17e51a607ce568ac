"""The ``k`` best groups of each window, on the host or on the device.

Order within a window: ``by`` best first, NaN and nulls last in both
directions, ties broken by the key columns ascending (nulls last).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpu_engine.config.models import TopKSpec

# Where nulls sort: per key from pyarrow 25, which deprecates the one option for all keys
# (earlier releases take only that).
_NULLS_PER_KEY = int(pa.__version__.split(".")[0]) >= 25


def top_k_host(table: pa.Table, top: TopKSpec, keys: list[str]) -> pa.Table:
    """Arrow's order by (window, by, keys), then the first ``k`` rows of each window.

    Only the kept rows are gathered: sorting the whole table first (``sort_by``) moved
    every column of every group, most of which the filter then dropped.
    """
    direction = "descending" if top.descending else "ascending"
    sort_keys = [("window_start", "ascending"), (top.by, direction),
                 *[(k, "ascending") for k in keys]]  # fmt: skip
    if _NULLS_PER_KEY:
        order = pc.sort_indices(table, sort_keys=[(*key, "at_end") for key in sort_keys])
    else:
        order = pc.sort_indices(table, sort_keys=sort_keys, null_placement="at_end")
    order = order.to_numpy()
    starts = table.column("window_start").cast(pa.int64()).to_numpy()[order]
    first = np.r_[0, np.flatnonzero(np.diff(starts)) + 1]
    group_start = np.repeat(first, np.diff(np.r_[first, len(starts)]))
    rank = np.arange(len(starts)) - group_start
    return table.take(pa.array(order[rank < top.k]))


def top_k_device(table: pa.Table, top: TopKSpec, keys: list[str]) -> pa.Table:
    """The same selection ranked by the CUDA top-k kernel (:mod:`kernels.cuda.topk`)."""
    from kernels.cuda.topk import top_k_rows

    starts = table.column("window_start").cast(pa.int64()).to_numpy()
    if len(starts) > 1 and np.any(np.diff(starts) < 0):  # workers' outputs, concatenated
        table = table.take(pa.array(np.argsort(starts, kind="stable")))
        starts = table.column("window_start").cast(pa.int64()).to_numpy()
    by = table.column(top.by).combine_chunks()
    if pa.types.is_floating(by.type):
        values = by.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
    else:  # integers past 2^53 (and timestamps) as float64 would round: rank them instead
        values = _dense_rank(table.column(top.by)).astype(np.float64)
    # Dense ranks order like the key columns (strings too, nulls last), unlike string codes.
    ranks = [_dense_rank(table.column(k)) for k in keys]
    atoms = np.column_stack(ranks) if ranks else np.zeros((len(table), 0), dtype=np.int64)
    keep = top_k_rows(
        starts,
        values,
        by.is_valid().to_numpy(zero_copy_only=False),
        atoms,
        top.k,
        top.descending,
    )
    return table.take(pa.array(keep))


def _dense_rank(column: pa.ChunkedArray) -> np.ndarray:
    """0, 1, ... by ascending value, equal values equal, nulls after every value."""
    encoded = pc.dictionary_encode(column.combine_chunks())
    order = pc.array_sort_indices(encoded.dictionary).to_numpy()
    rank_of_code = np.empty(len(order) + 1, dtype=np.int64)
    rank_of_code[order] = np.arange(len(order))
    rank_of_code[len(order)] = len(order)  # null
    codes = encoded.indices.fill_null(len(order)).to_numpy(zero_copy_only=False)
    return rank_of_code[codes.astype(np.int64)]
