"""Turning key columns into int64 "atoms" for hashing, and back into output columns.

Integers and booleans are their own atoms; strings get codes from a
dictionary that lives as long as the operator, so codes are stable across
batches (a string no window state holds any more is forgotten, and gets a new
code if it comes back). A nullable key column contributes a second atom (is-null), so a
null key is a group of its own, as in SQL ``GROUP BY``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpu_engine.config.models import FieldSpec
from gpu_engine.windows.aggregations import numbers


def outgrown(size: int, kept: int) -> bool:
    """Whether a table that held ``kept`` entries when it was last pruned has more than
    doubled since: pruning then, and only then, costs each entry added a constant."""
    return size > 2 * kept + 256


class _StringCodes:
    """A growing dictionary string -> code, stable while some window state holds the code.

    Codes are never reused. Strings whose codes no state holds any more are forgotten
    (:meth:`keep_only`), so on a stream whose string keys churn the dictionary holds
    the keys of the open windows, not every key the stream ever had.
    """

    def __init__(self) -> None:
        self.code_of: dict[str, int] = {}
        self.value_of: dict[int, str] = {}
        self.next_code = 0
        self.kept = 0  # strings kept by the last keep_only

    def __len__(self) -> int:
        return len(self.code_of)

    def encode(self, array: pa.Array) -> np.ndarray:
        encoded = pc.dictionary_encode(array)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        batch_values = encoded.dictionary.to_pylist()
        local = np.empty(len(batch_values), dtype=np.int64)
        for i, value in enumerate(batch_values):
            code = self.code_of.get(value)
            if code is None:
                code = self.next_code
                self.next_code += 1
                self.code_of[value] = code
                self.value_of[code] = value
            local[i] = code
        indices = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        codes = local[indices] if len(local) else np.zeros(len(indices), dtype=np.int64)
        return codes

    def decode(self, codes: np.ndarray, is_null: np.ndarray | None = None) -> pa.Array:
        """The strings of ``codes``, null where ``is_null`` (their code means nothing)."""
        if self.next_code <= 4 * len(codes):  # a table of every code, taken from
            table = np.full(self.next_code + 1, None, dtype=object)
            table[list(self.value_of)] = list(self.value_of.values())
            index = codes
        else:  # few codes beside the dictionary's span: a table of the distinct ones
            distinct, index = np.unique(codes, return_inverse=True)
            table = np.asarray([self.value_of.get(int(c)) for c in distinct], dtype=object)
        array = pa.array(table, type=pa.string()).take(pa.array(index))
        unknown = array.is_null().to_numpy(zero_copy_only=False)
        if is_null is not None:
            unknown &= ~is_null
        if unknown.any():  # a code some state holds was forgotten: never give wrong keys
            raise AssertionError(f"string key codes {np.unique(codes[unknown])[:5]} forgotten")
        return array

    def crowded(self) -> bool:
        """Whether the dictionary has more than doubled since it was last pruned."""
        return outgrown(len(self), self.kept)

    def keep_only(self, codes: np.ndarray) -> None:
        """Forget the strings whose codes are not among ``codes``."""
        live = set(np.unique(codes).tolist())
        self.value_of = {c: v for c, v in self.value_of.items() if c in live}
        self.code_of = {v: c for c, v in self.value_of.items()}
        self.kept = len(self)


class KeyEncoder:
    """Encodes the key columns of a window into an ``(n, width)`` int64 atom matrix."""

    def __init__(self, keys: Sequence[str], fields: dict[str, FieldSpec]) -> None:
        self.keys = list(keys)
        self.types = {k: fields[k].type for k in self.keys}
        self.nullable = {k: fields[k].nullable for k in self.keys}
        self._strings = {k: _StringCodes() for k in self.keys if self.types[k] == "string"}
        self.width = sum(2 if self.nullable[k] else 1 for k in self.keys)

    def encode(self, table: pa.Table) -> np.ndarray:
        atoms = np.empty((table.num_rows, self.width), dtype=np.int64)
        col = 0
        for key in self.keys:
            values, is_null = self.column_atoms(key, table.column(key).combine_chunks())
            atoms[:, col] = values
            col += 1
            if is_null is not None:
                atoms[:, col] = is_null
                col += 1
        return atoms

    def column_atoms(self, key: str, array: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
        """The value atoms of key column ``key`` (0 where null) and, for a nullable key,
        its is-null atoms (None otherwise)."""
        if self.types[key] == "string":
            values = self._strings[key].encode(array)
        else:
            values = np.asarray(numbers(array), dtype=np.int64)
        if not self.nullable[key]:
            return values, None
        is_null = array.is_null().to_numpy(zero_copy_only=False)
        return np.where(is_null, 0, values), is_null

    @property
    def n_strings(self) -> int:
        """Strings held in the dictionaries of the string key columns."""
        return sum(len(codes) for codes in self._strings.values())

    def crowded(self) -> bool:
        """Whether a string dictionary has more than doubled since it was last pruned."""
        return any(codes.crowded() for codes in self._strings.values())

    def forget_unused(self, live_atoms: Sequence[np.ndarray]) -> None:
        """Forget the strings of keys that are in none of ``live_atoms`` (``(n, width)``
        atoms of every key some window state still holds)."""
        col = 0
        for key in self.keys:
            if key in self._strings:
                codes = [atoms[:, col] for atoms in live_atoms]
                self._strings[key].keep_only(np.concatenate([np.empty(0, np.int64), *codes]))
            col += 2 if self.nullable[key] else 1

    def decode(self, atoms: np.ndarray, arrow_types: dict[str, pa.DataType]) -> list[pa.Array]:
        """Output columns (one per key, in config order) for rows of ``atoms``."""
        out = []
        col = 0
        for key in self.keys:
            values = atoms[:, col]
            col += 1
            mask = None
            if self.nullable[key]:
                mask = atoms[:, col].astype(bool)
                col += 1
            if self.types[key] == "string":
                array = self._strings[key].decode(values, mask)
                if mask is not None and mask.any():  # a null key whose code 0 is a string
                    array = pc.if_else(pa.array(mask), pa.nulls(len(array), pa.string()), array)
            else:
                array = pa.array(values, mask=mask).cast(arrow_types[key])
            out.append(array)
        return out
