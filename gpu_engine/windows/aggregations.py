"""From aggregation specs to kernel inputs (value columns, masks) and back to output columns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpu_engine.config.models import INTEGER_TYPES, AggregationSpec, FieldSpec
from kernels.aggregate import (
    COUNT,
    DISTINCT,
    MAX,
    MIN,
    OP_CODES,
    QUANTILE,
    STD,
    SUM,
    VAR,
    AggState,
    finalize_column,
)
from kernels.sketches import bucket_keys, hash_int64

# Field types whose values an int64 holds exactly (a column of one: ``is_int``).
_INT64_VALUED = INTEGER_TYPES | {"bool", "timestamp"}


@dataclass
class BatchValues:
    """Kernel inputs for one batch: value columns, participation masks, sketch inputs."""

    fcols: np.ndarray  # (n_columns, n) float64
    icols: np.ndarray  # (n_columns, n) int64 or (0, 0) when no integer sum is needed
    masks: np.ndarray  # (n_masks, n) uint8
    mask_of: np.ndarray  # (n_aggs,) int64, -1 = every event takes part
    sketch_inputs: list[tuple[int, np.ndarray, np.ndarray]]  # (agg, event index, bucket/hash)

    def subset(self, rows: np.ndarray) -> BatchValues:
        """The values of events ``rows`` only, renumbered ``0..len(rows)-1``."""
        n = self.fcols.shape[1]
        new_index = np.full(n, -1, dtype=np.int64)
        new_index[rows] = np.arange(len(rows))
        sketches = []
        for a, event_index, keys in self.sketch_inputs:
            renumbered = new_index[event_index]
            take = renumbered >= 0
            sketches.append((a, renumbered[take], keys[take]))
        return BatchValues(
            self.fcols[:, rows],
            self.icols[:, rows] if self.icols.size else self.icols,
            self.masks[:, rows],
            self.mask_of,
            sketches,
        )


@dataclass
class PreparedBatch:
    """A validated batch as the kernels read it: times, key atoms and aggregation inputs.

    Built once per batch and window, then shared by every worker, each taking
    its events by row number.
    """

    times: np.ndarray  # (n,) int64 event time in ms
    atoms: np.ndarray  # (n, width) int64 key atoms
    values: BatchValues

    def __len__(self) -> int:
        return len(self.times)

    def pane_keys(self, events: np.ndarray, pane_ms: int) -> Any:
        """The ``(pane, key atoms...)`` rows of events ``events``, for states that take keys."""
        keys = np.empty((len(events), 1 + self.atoms.shape[1]), dtype=np.int64)
        keys[:, 0] = np.floor_divide(self.times[events], pane_ms)
        keys[:, 1:] = self.atoms[events]
        return keys

    def host_atoms(self) -> np.ndarray:
        """The key atoms in host memory (they already are; a device batch copies them)."""
        return self.atoms


class AggregationPlan:
    """The aggregations of one window, compiled to op codes and column indexes."""

    def __init__(self, specs: list[AggregationSpec], fields: dict[str, FieldSpec]) -> None:
        self.specs = specs
        self.fields = fields
        self.ops = np.array([OP_CODES[s.op] for s in specs], dtype=np.int64)
        self.is_int = np.array(
            [s.column is not None and fields[s.column].type in _INT64_VALUED for s in specs],
            dtype=np.bool_,
        )
        self.value_columns: list[str] = []
        col_of = []
        for spec, op in zip(specs, self.ops, strict=True):
            if op in (COUNT, DISTINCT) or spec.column is None:
                col_of.append(-1)
                continue
            if spec.column not in self.value_columns:
                self.value_columns.append(spec.column)
            col_of.append(self.value_columns.index(spec.column))
        self.col_of = np.array(col_of, dtype=np.int64)
        # Integer SUM, MIN and MAX are kept exactly, in int64, and come out so; MEAN keeps
        # an int64 sum too (see kernels.aggregate).
        self.int64_result = self.is_int & np.isin(self.ops, [SUM, MIN, MAX])
        int_mean = self.is_int & (self.ops == OP_CODES["mean"])
        self.needs_int = bool(np.any(self.int64_result | int_mean))
        self.sketch_aggs = [a for a, op in enumerate(self.ops) if op in (QUANTILE, DISTINCT)]
        # min and max skip NaN: a NaN row takes no part in them, so a window whose values
        # are all NaN gives null, as one whose values are all null does (not the kernels'
        # starting +inf / -inf). Only where NaN can pass validation (allow_nan).
        self.skips_nan = [
            op in (MIN, MAX)
            and spec.column is not None
            and fields[spec.column].type in ("float32", "float64")
            and fields[spec.column].allow_nan
            for spec, op in zip(specs, self.ops, strict=True)
        ]
        # State columns the generated combine kernels read (see kernels.specialize).
        self.combine_reads = {"ist"}
        if self.needs_int or np.any(np.isin(self.ops, [STD, VAR])):  # STD/VAR: means' low parts
            self.combine_reads.add("isum")
        floats = np.isin(self.ops, [SUM, OP_CODES["mean"], MIN, MAX, STD, VAR]) & ~self.int64_result
        if np.any(floats):  # integer means included: they keep a float sum too
            self.combine_reads.add("f0")
        if np.any(np.isin(self.ops, [STD, VAR])):
            self.combine_reads.add("f1")
        self._output_types = self._types()

    def new_state(self, capacity: int = 1024) -> AggState:
        return AggState(self.ops, capacity)

    def prepare(self, table: pa.Table) -> BatchValues:
        return self.prepare_from(ArrowColumns(table, self.fields))

    def prepare_from(self, source: ColumnSource) -> BatchValues:
        """Kernel inputs from the columns of one batch, on the host or on a device."""
        fcols, icols = source.value_rows(self.value_columns, self.needs_int)
        mask_rows: list[Any] = []
        mask_keys: dict[tuple[str | None, str, bool], int] = {}
        mask_of = np.full(len(self.specs), -1, dtype=np.int64)
        sketch_inputs = []
        # Sketches of one column, filter and kind (p50 and p99 of one column) share their
        # rows and keys: computed once.
        shared_inputs: dict[tuple[str, str, bool], tuple[Any, Any]] = {}
        for a, spec in enumerate(self.specs):
            column = spec.column if self.ops[a] != COUNT else None
            mask = source.valid_mask(column) if column is not None else None
            where = repr(sorted((spec.where or {}).items()))
            for name, value in (spec.where or {}).items():
                hit = source.isin(name, value if isinstance(value, list) else [value])
                mask = hit if mask is None else source.both(mask, hit)
            if self.skips_nan[a]:
                assert column is not None
                number = source.not_nan(column)
                mask = number if mask is None else source.both(mask, number)
            if mask is not None:
                key = (column, where, self.skips_nan[a])
                if key not in mask_keys:
                    mask_keys[key] = len(mask_rows)
                    mask_rows.append(mask)
                mask_of[a] = mask_keys[key]
            if a in self.sketch_aggs:
                assert spec.column is not None
                is_quantile = bool(self.ops[a] == QUANTILE)
                shared = (spec.column, where, is_quantile)
                if shared not in shared_inputs:
                    index = source.rows_of(mask)
                    keys = source.sketch_keys(spec.column, index, is_quantile)
                    shared_inputs[shared] = (index, keys)
                sketch_inputs.append((a, *shared_inputs[shared]))
        return BatchValues(fcols, icols, source.stack_masks(mask_rows), mask_of, sketch_inputs)

    def output_types(self) -> list[pa.DataType]:
        """Counts and the exact integer results in int64 (the ``min`` and ``max`` of a
        timestamp field as timestamps, as in Polars and DuckDB), the rest in float64.
        Worked out once: every emission asks."""
        return self._output_types

    def _types(self) -> list[pa.DataType]:
        types = []
        for spec, op, exact in zip(self.specs, self.ops, self.int64_result, strict=True):
            column = self.fields[spec.column] if spec.column is not None else None
            if op in (MIN, MAX) and column is not None and column.type == "timestamp":
                types.append(pa.timestamp("ms", tz=column.tz))
            elif op in (COUNT, DISTINCT) or exact:
                types.append(pa.int64())
            else:
                types.append(pa.float64())
        return types

    def finalize(
        self, state: AggState, n: int, sketch_values: dict[int, tuple[np.ndarray, np.ndarray]]
    ) -> list[pa.Array]:
        """Output arrays for rows ``0..n-1``, in config order."""
        out: list[pa.Array] = []
        for a, (op, is_int, typ) in enumerate(
            zip(self.ops, self.is_int, self.output_types(), strict=True)
        ):
            if a in sketch_values:
                values, valid = sketch_values[a]
            else:
                values = np.empty(n, dtype=np.float64)
                valid = np.empty(n, dtype=np.bool_)
                finalize_column(op, is_int, n, state.ist, state.isum, state.f0, state.f1, a,
                                values, valid)  # fmt: skip
                if self.int64_result[a]:
                    values = state.isum[:n, a].copy()
            if not pa.types.is_floating(typ):
                values = np.where(valid, values, 0).astype(np.int64)
            array = pa.array(values, type=typ, mask=~valid)
            out.append(array)
        return out

    def columns_from(
        self,
        out_f: np.ndarray,
        out_i: np.ndarray,
        valid: np.ndarray,
        sketch_values: dict[int, tuple[np.ndarray, np.ndarray]],
    ) -> list[pa.Array]:
        """Output arrays from the combiner's results
        (:func:`kernels.specialize.combine_finalize_for`), reading only the cells it writes."""
        out: list[pa.Array] = []
        for a, (op, exact, typ) in enumerate(
            zip(self.ops, self.int64_result, self.output_types(), strict=True)
        ):
            if a in sketch_values:
                values, ok = sketch_values[a]
            elif op == COUNT or exact:
                values, ok = out_i[a], valid[a]
            else:
                values, ok = out_f[a], valid[a]
            if not pa.types.is_floating(typ) and values.dtype != np.int64:
                values = np.where(ok, values, 0).astype(np.int64)
            mask = None if ok.all() else ~ok
            out.append(pa.array(values, type=typ, mask=mask))
        return out


class ColumnSource(Protocol):
    """The columns of a batch as :meth:`AggregationPlan.prepare_from` reads them
    (:class:`ArrowColumns` on the host; the CUDA backend has a device twin)."""

    num_rows: int

    def value_rows(self, names: list[str], needs_int: bool) -> tuple[Any, Any]:
        """``(fcols, icols)``: float64 and int64 ``(len(names), n)`` (nulls 0; icols
        ``(0, 0)`` unless ``needs_int``)."""
        ...

    def valid_mask(self, name: str) -> Any:
        """uint8/bool mask of the non-null rows of ``name``; None when it has no nulls."""
        ...

    def isin(self, name: str, wanted: list[Any]) -> Any:
        """Mask of the rows whose ``name`` is one of ``wanted`` (nulls: False)."""
        ...

    def both(self, a: Any, b: Any) -> Any: ...

    def not_nan(self, name: str) -> Any:
        """Mask of the rows of float column ``name`` that are not NaN (nulls: either)."""
        ...

    def rows_of(self, mask: Any) -> Any:
        """Row numbers of the set rows of ``mask`` (None: all rows); a device source may keep
        every row instead, with -1 where ``mask`` is unset, which the sketches skip."""
        ...

    def sketch_keys(self, name: str, index: Any, is_quantile: bool) -> Any:
        """Bucket keys (quantile) or value hashes (distinct) of rows ``index`` of ``name``
        (any key where ``index`` holds -1)."""
        ...

    def stack_masks(self, masks: list[Any]) -> Any:
        """The masks as one ``(len(masks), n)`` uint8 array."""
        ...


class ArrowColumns:
    """A host Arrow table as a :class:`ColumnSource`."""

    def __init__(self, table: pa.Table, fields: dict[str, FieldSpec]) -> None:
        self.table = table
        self.fields = fields
        self.num_rows = table.num_rows
        self._valid: dict[str, np.ndarray | None] = {}

    def value_rows(self, names: list[str], needs_int: bool) -> tuple[np.ndarray, np.ndarray]:
        n = self.num_rows
        fcols = np.empty((len(names), n), dtype=np.float64)
        # Integer sums, means and extremes read icols only for integer columns (as on the
        # device); float columns' rows stay 0 (a NaN has no int64 to become).
        icols = np.zeros((len(names), n) if needs_int else (0, 0), np.int64)
        for c, name in enumerate(names):
            values = numbers(self.table.column(name))
            fcols[c] = values
            if needs_int and values.dtype.kind in "biuM":
                icols[c] = values
        return fcols, icols

    def valid_mask(self, name: str) -> np.ndarray | None:
        if name not in self._valid:
            array = self.table.column(name)
            self._valid[name] = array.is_valid().to_numpy() if array.null_count else None
        return self._valid[name]

    def isin(self, name: str, wanted: list[Any]) -> np.ndarray:
        column = self.table.column(name)
        return value_in(column, wanted, column.type)

    def both(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a & b

    def not_nan(self, name: str) -> np.ndarray:
        return ~np.isnan(numbers(self.table.column(name)).astype(np.float64))

    def rows_of(self, mask: np.ndarray | None) -> np.ndarray:
        return np.flatnonzero(mask) if mask is not None else np.arange(self.num_rows)

    def sketch_keys(self, name: str, index: np.ndarray, is_quantile: bool) -> np.ndarray:
        array = self.table.column(name).combine_chunks().take(pa.array(index))
        return host_sketch_keys(array, is_quantile)

    def stack_masks(self, masks: list[np.ndarray]) -> np.ndarray:
        n = self.num_rows
        stacked = np.array(masks, dtype=np.uint8) if masks else np.ones((0, n), np.uint8)
        return stacked.reshape(len(masks), n)


def numbers(column: pa.Array | pa.ChunkedArray, fill: object = 0) -> np.ndarray:
    """A column as numpy with nulls as ``fill`` (no Arrow pass when it has no nulls)."""
    if column.null_count:
        if pa.types.is_boolean(column.type) and not isinstance(fill, bool):
            fill = bool(fill)  # Arrow will not put an int into a bool column
        column = column.fill_null(fill)
    return column.to_numpy(zero_copy_only=False)


def value_in(column: Any, wanted: list[Any], arrow_type: pa.DataType) -> np.ndarray:
    """Where a host column's values are among ``wanted`` (cast to ``arrow_type``); False
    where null. Floats compare by value, so -0.0 is 0, and any NaN matches a wanted NaN,
    whatever its sign or payload (Arrow's ``is_in`` compares bits), as on the device."""
    value_set = wanted_as(wanted, arrow_type)
    if pa.types.is_floating(arrow_type):
        column, value_set = _by_value(column), _by_value(value_set)
    return numbers(pc.is_in(column, value_set=value_set), fill=False)


def wanted_as(wanted: list[Any], arrow_type: pa.DataType) -> pa.Array:
    """``where`` values as ``arrow_type``. Numbers for a float column are rounded to it
    as numpy and pandas do (0.1 on a float32 field is float32 0.1; an integer past 2^53
    on a float64 one its nearest double), not refused by Arrow's exact cast."""
    if pa.types.is_floating(arrow_type):
        values = np.asarray(wanted, dtype=np.float64).astype(arrow_type.to_pandas_dtype())
        return pa.array(values, arrow_type)
    return pa.array(wanted).cast(arrow_type)


def _by_value(floats: Any) -> Any:
    """Floats whose bits compare as their values: -0.0 made 0.0, every NaN one NaN."""
    floats = pc.add(floats, 0.0)  # -0.0 + 0.0 is 0.0
    one_nan = pa.scalar(float("nan"), floats.type)
    return pc.if_else(pc.is_nan(floats), one_nan, floats)


def host_sketch_keys(array: pa.Array, is_quantile: bool) -> np.ndarray:
    """Quantile bucket keys, or distinct-count hashes, of a host column in its field's
    Arrow type (also for the columns the CUDA backend casts on the host, so that both
    backends key every value alike); any key where the value is null."""
    out = np.empty(len(array), dtype=np.int64)
    if pa.types.is_timestamp(array.type):
        array = array.cast(pa.int64())
    if is_quantile:
        bucket_keys(numbers(array).astype(np.float64), out)
    elif pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return string_hashes(array)
    elif pa.types.is_floating(array.type):
        values = numbers(array).astype(np.float64)
        with np.errstate(invalid="ignore"):  # a signalling NaN: made the one NaN below
            values = values + 0.0  # -0.0 -> 0.0
        values[np.isnan(values)] = np.nan  # one NaN, whatever its sign or payload
        hash_int64(values.view(np.int64), out)
    else:
        hash_int64(numbers(array).astype(np.int64), out)
    return out


def string_hashes(array: pa.Array) -> np.ndarray:
    """Stable 64-bit hashes of strings (the same in every process, so sketches merge); 0
    for a null (no sketch takes one: it is masked out)."""
    encoded = pc.dictionary_encode(array)
    dictionary = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
    from pandas.util import hash_array  # stable SipHash; imported only for string columns

    hashes = np.append(hash_array(dictionary).view(np.int64), np.int64(0))  # last: null
    codes = encoded.indices.fill_null(len(dictionary)).to_numpy(zero_copy_only=False)
    return hashes[codes]
