"""Session windows on the device: cutting sorted events into sessions and merging them.

The CUDA twin of :mod:`kernels.sessions` and of the steps around it in the host
session state (:mod:`gpu_engine.windows.sessions`). Sessions are rows ``0..n-1``
of per-session arrays ``kid`` (the key's id), ``starts``, ``ends`` and ``dead``
(uint8: merged away or emitted); every step is one pass over events, candidates
or groups, so a hot key costs no more than many keys (no step walks a key's
events one by one).

``merge_intervals`` takes intervals sorted by (key, start). A key's intervals
form a segment; one thread walks each segment with the CPU's running-end rule
(``s2 <= e1`` merges), first counting the sessions of its segment, then, after
an exclusive scan of those counts gives each segment its first group id,
writing the ids. It merges open sessions with a batch's sessions, a few per key.
A batch's events, sorted by (key, time), need no walk: their ends grow with
their times, so an event starts a session exactly when its key differs from the
previous event's or its time is more than ``gap`` after it (``cut``).

API (device arrays in and out; host arrays are copied):

``merge_intervals(atoms, start, end) -> (group_ids, n_groups)``: ids equal to the CPU's.
``split_keys(keys) -> (times, atoms)``: ``(time, atoms...)`` rows split (a zero atom
    column when there are no atoms).
``cut(kid, times, gap) -> (session_of, s_kid, s_start, s_end)``: events sorted by
    (kid, time) cut into sessions ``0..m-1``, numbered in that order.
``open_rows(kid, dead, s_kid, n_keys) -> rows``: live rows of the keys in ``s_kid``.
``candidates(rows, kid, starts, ends, s_kid, s_start, s_end) -> (c_kid, c_start, c_end)``:
    those rows, then the sessions.
``place_groups(group_of, n_groups, rows, c_kid, c_start, c_end, base)
    -> (row_of, g_kid, g_start, g_end, n_created)``: each merged group's row (its
    first open row, else a new row from ``base`` on, in group order) and bounds.
``write_rows(row_of, g_kid, g_start, g_end, kid, starts, ends, dead)``.
``absorbed(group_of, rows, row_of, dead) -> (src, dst)``: open rows merged into
    another group row (now marked dead) and that row.
``event_rows(order, session_of, group_of, row_of, n_open) -> rows``: each event's row.
``close(dead, ends, watermark) -> rows``: live rows ending by ``watermark``, now dead.
``take_rows(values, rows) -> out``: rows of a 2-D int64 array.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import types

from kernels.cuda._core import arr, as_device, carve, cuda, empty, full, kernel, launch, register
from kernels.cuda.ingest import select
from kernels.cuda.scan import exclusive_scan
from kernels.cuda.windows import INT64_MAX, INT64_MIN

_I1, _I2, _U1, _i8 = arr("int64"), arr("int64", 2), arr("uint8"), types.int64


def _flags_sig(dt: np.dtype) -> Any:
    return types.void(_I2, _U1)


@register("session.key_starts", ("int64",), _flags_sig)
def _key_starts(atoms, flags):  # pragma: no cover - compiled
    for i in range(cuda.grid(1), flags.shape[0], cuda.gridsize(1)):
        new = i == 0
        if not new:
            for c in range(atoms.shape[1]):
                if atoms[i, c] != atoms[i - 1, c]:
                    new = True
                    break
        flags[i] = 1 if new else 0


def _walk_sig(dt: np.dtype) -> Any:
    return types.void(_U1, _I1, _I1, _I1, _I1, types.boolean)


@register("session.walk", ("int64",), _walk_sig)
def _walk(seg_flags, start, end, first_id, out, write):  # pragma: no cover - compiled
    """From each row that starts a key segment (``seg_flags``) to the next: count the
    segment's sessions into ``first_id[row]`` (0 for other rows), or write the session
    ids from ``first_id[row]``. Rows are not compacted to segments first, so the host
    need not wait for the segments' count."""
    n = seg_flags.shape[0]
    for lo in range(cuda.grid(1), n, cuda.gridsize(1)):
        if seg_flags[lo] == 0:
            if not write:
                first_id[lo] = 0
            continue
        g = first_id[lo] if write else 0
        running_end = end[lo]
        if write:
            out[lo] = g
        i = lo + 1
        while i < n and seg_flags[i] == 0:
            if start[i] > running_end:
                g += 1
                running_end = end[i]
            elif end[i] > running_end:
                running_end = end[i]
            if write:
                out[i] = g
            i += 1
        if not write:
            first_id[lo] = g + 1


@register("session.split_keys", ("int64",), lambda dt: types.void(_I2, _I1, _I2))
def _split_keys(keys, times, atoms):  # pragma: no cover - compiled
    width = keys.shape[1] - 1
    for i in range(cuda.grid(1), keys.shape[0], cuda.gridsize(1)):
        times[i] = keys[i, 0]
        if width == 0:
            atoms[i, 0] = 0
        for c in range(width):
            atoms[i, c] = keys[i, 1 + c]


@register("session.breaks", ("int64",), lambda dt: types.void(_I1, _I1, _i8, _I1))
def _breaks(kid, times, gap, flags):  # pragma: no cover - compiled
    for i in range(cuda.grid(1), kid.shape[0], cuda.gridsize(1)):
        new = i == 0 or kid[i] != kid[i - 1] or times[i] > times[i - 1] + gap
        flags[i] = 1 if new else 0


def _cut_sig(dt: np.dtype) -> Any:
    return types.void(_I1, _I1, _i8, _I1, _I1, _I1, _I1, _I1, _I1)


@register("session.cut", ("int64",), _cut_sig)
def _cut(kid, times, gap, flags, offsets, session_of, s_kid, s_start, s_end):  # pragma: no cover
    n = kid.shape[0]
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        s = offsets[i] + flags[i] - 1
        session_of[i] = s
        if flags[i] != 0:
            s_kid[s] = kid[i]
            s_start[s] = times[i]
        if i == n - 1 or flags[i + 1] != 0:
            s_end[s] = times[i] + gap


@register("session.touch", ("int64",), lambda dt: types.void(_I1, _U1))
def _touch(s_kid, touched):  # pragma: no cover - compiled
    for s in range(cuda.grid(1), s_kid.shape[0], cuda.gridsize(1)):
        touched[s_kid[s]] = 1


@register("session.open_flags", ("int64",), lambda dt: types.void(_I1, _U1, _U1, _U1))
def _open_flags(kid, dead, touched, flags):  # pragma: no cover - compiled
    for r in range(cuda.grid(1), flags.shape[0], cuda.gridsize(1)):
        flags[r] = 1 if dead[r] == 0 and touched[kid[r]] != 0 else 0


def _candidates_sig(dt: np.dtype) -> Any:
    return types.void(_I1, _I1, _I1, _I1, _I1, _I1, _I1, _I1, _I1, _I1)


@register("session.candidates", ("int64",), _candidates_sig)
def _candidates(
    rows, kid, starts, ends, s_kid, s_start, s_end, c_kid, c_start, c_end
):  # pragma: no cover - compiled
    n_open = rows.shape[0]
    for c in range(cuda.grid(1), c_kid.shape[0], cuda.gridsize(1)):
        if c < n_open:
            r = rows[c]
            c_kid[c], c_start[c], c_end[c] = kid[r], starts[r], ends[r]
        else:
            s = c - n_open
            c_kid[c], c_start[c], c_end[c] = s_kid[s], s_start[s], s_end[s]


def _bounds_sig(dt: np.dtype) -> Any:
    return types.void(_I1, _I1, _I1, _I1, _I1, _I1, _I1, _I1, _I1)


@register("session.group_bounds", ("int64",), _bounds_sig)
def _group_bounds(
    group_of, rows, c_kid, c_start, c_end, row_of, g_kid, g_start, g_end
):  # pragma: no cover - compiled
    """Per group: its key, first start, last end, and its first open row (atomic min)."""
    n_open = rows.shape[0]
    for c in range(cuda.grid(1), group_of.shape[0], cuda.gridsize(1)):
        g = group_of[c]
        g_kid[g] = c_kid[c]  # every candidate of a group has its key
        cuda.atomic.min(g_start, g, c_start[c])
        cuda.atomic.max(g_end, g, c_end[c])
        if c < n_open:
            cuda.atomic.min(row_of, g, rows[c])


@register("session.unplaced", ("int64",), lambda dt: types.void(_I1, _I1))
def _unplaced(row_of, flags):  # pragma: no cover - compiled
    for g in range(cuda.grid(1), row_of.shape[0], cuda.gridsize(1)):
        flags[g] = 1 if row_of[g] == INT64_MAX else 0


@register("session.place", ("int64",), lambda dt: types.void(_I1, _I1, _i8, _I1))
def _place(flags, offsets, base, row_of):  # pragma: no cover - compiled
    for g in range(cuda.grid(1), row_of.shape[0], cuda.gridsize(1)):
        if flags[g] != 0:
            row_of[g] = base + offsets[g]


def _write_sig(dt: np.dtype) -> Any:
    return types.void(_I1, _I1, _I1, _I1, _I1, _I1, _I1, _U1)


@register("session.write_rows", ("int64",), _write_sig)
def _write_rows(row_of, g_kid, g_start, g_end, kid, starts, ends, dead):  # pragma: no cover
    for g in range(cuda.grid(1), row_of.shape[0], cuda.gridsize(1)):
        r = row_of[g]
        kid[r], starts[r], ends[r], dead[r] = g_kid[g], g_start[g], g_end[g], 0


@register("session.absorbed_flags", ("int64",), lambda dt: types.void(_I1, _I1, _I1, _U1))
def _absorbed_flags(group_of, rows, row_of, flags):  # pragma: no cover - compiled
    for c in range(cuda.grid(1), rows.shape[0], cuda.gridsize(1)):
        flags[c] = 1 if row_of[group_of[c]] != rows[c] else 0


def _absorb_sig(dt: np.dtype) -> Any:
    return types.void(_I1, _I1, _I1, _I1, _I1, _I1, _U1)


@register("session.absorb", ("int64",), _absorb_sig)
def _absorb(index, group_of, rows, row_of, src, dst, dead):  # pragma: no cover - compiled
    for j in range(cuda.grid(1), index.shape[0], cuda.gridsize(1)):
        c = index[j]
        src[j] = rows[c]
        dst[j] = row_of[group_of[c]]
        dead[rows[c]] = 1


def _event_rows_sig(dt: np.dtype) -> Any:
    return types.void(_I1, _I1, _I1, _I1, _i8, _I1)


@register("session.event_rows", ("int64",), _event_rows_sig)
def _event_rows(order, session_of, group_of, row_of, n_open, out):  # pragma: no cover
    for i in range(cuda.grid(1), order.shape[0], cuda.gridsize(1)):
        out[order[i]] = row_of[group_of[n_open + session_of[i]]]


@register("session.close", ("int64",), lambda dt: types.void(_U1, _I1, _i8, _U1))
def _close(dead, ends, watermark, flags):  # pragma: no cover - compiled
    for r in range(cuda.grid(1), flags.shape[0], cuda.gridsize(1)):
        done = dead[r] == 0 and ends[r] <= watermark
        flags[r] = 1 if done else 0
        if done:
            dead[r] = 1


@register("session.take_rows", ("int64",), lambda dt: types.void(_I2, _I1, _I2))
def _take_rows(values, rows, out):  # pragma: no cover - compiled
    for j in range(cuda.grid(1), rows.shape[0], cuda.gridsize(1)):
        for c in range(values.shape[1]):
            out[j, c] = values[rows[j], c]


# -- host-callable steps ----------------------------------------------------------------


def _run(name: str, n: int, *args: Any) -> None:
    if n:
        kernel(name)[launch(n)](*args)


def merge_intervals(atoms: Any, start: Any, end: Any) -> tuple[Any, int]:
    """Group ids (device int64) of intervals sorted by (key, start), and the group count."""
    start = as_device(start, np.int64)
    end = as_device(end, np.int64)
    n = start.shape[0]
    out = empty(n, np.int64)
    if n == 0:
        return out, 0
    atoms = as_device(atoms, np.int64)
    if atoms.ndim == 1:
        atoms = carve(atoms, 0, (n, 1), atoms.dtype)  # a column: the same memory
    if atoms.shape[1] == 0:
        atoms = full((n, 1), 0, np.int64)
    flags = empty(n, np.uint8)
    _run("session.key_starts", n, atoms, flags)
    counts = empty(n, np.int64)
    _run("session.walk", n, flags, start, end, counts, out, False)
    first, total = exclusive_scan(counts)
    _run("session.walk", n, flags, start, end, first, out, True)
    return out, total


def split_keys(keys: Any) -> tuple[Any, Any]:
    """(times, atoms) of ``(time, atoms...)`` rows; atoms get a zero column when they have none."""
    n = int(keys.shape[0])
    times, atoms = empty(n, np.int64), empty((n, max(1, keys.shape[1] - 1)), np.int64)
    _run("session.split_keys", n, keys, times, atoms)
    return times, atoms


def cut(kid: Any, times: Any, gap: int) -> tuple[Any, Any, Any, Any]:
    """(session of each event, then each session's kid, start, end) of sorted events."""
    n = int(kid.shape[0])
    flags = empty(n, np.int64)
    _run("session.breaks", n, kid, times, int(gap), flags)
    offsets, m = exclusive_scan(flags)
    session_of = empty(n, np.int64)
    s_kid, s_start, s_end = empty(m, np.int64), empty(m, np.int64), empty(m, np.int64)
    _run("session.cut", n, kid, times, int(gap), flags, offsets, session_of, s_kid, s_start, s_end)
    return session_of, s_kid, s_start, s_end


def open_rows(kid: Any, dead: Any, s_kid: Any, n_keys: int) -> Any:
    """Ascending rows, not dead, whose key is one of ``s_kid`` (ids below ``n_keys``)."""
    touched = full(n_keys, 0, np.uint8)
    _run("session.touch", int(s_kid.shape[0]), s_kid, touched)
    n = int(kid.shape[0])
    flags = empty(n, np.uint8)
    _run("session.open_flags", n, kid, dead, touched, flags)
    return select(flags)


def candidates(
    rows: Any, kid: Any, starts: Any, ends: Any, s_kid: Any, s_start: Any, s_end: Any
) -> tuple[Any, Any, Any]:
    """(kid, start, end) of open rows ``rows`` followed by the batch's sessions."""
    m = int(rows.shape[0] + s_kid.shape[0])
    c_kid, c_start, c_end = empty(m, np.int64), empty(m, np.int64), empty(m, np.int64)
    _run("session.candidates", m, rows, kid, starts, ends, s_kid, s_start, s_end,
         c_kid, c_start, c_end)  # fmt: skip
    return c_kid, c_start, c_end


def place_groups(
    group_of: Any, n_groups: int, rows: Any, c_kid: Any, c_start: Any, c_end: Any, base: int
) -> tuple[Any, Any, Any, Any, int]:
    """(row, kid, start, end) of every merged group and how many took new rows."""
    row_of = full(n_groups, INT64_MAX, np.int64)
    g_kid = empty(n_groups, np.int64)
    g_start, g_end = full(n_groups, INT64_MAX, np.int64), full(n_groups, INT64_MIN, np.int64)
    _run("session.group_bounds", int(group_of.shape[0]), group_of, rows, c_kid, c_start, c_end,
         row_of, g_kid, g_start, g_end)  # fmt: skip
    flags = empty(n_groups, np.int64)
    _run("session.unplaced", n_groups, row_of, flags)
    offsets, n_created = exclusive_scan(flags)
    _run("session.place", n_groups, flags, offsets, int(base), row_of)
    return row_of, g_kid, g_start, g_end, n_created


def write_rows(
    row_of: Any, g_kid: Any, g_start: Any, g_end: Any, kid: Any, starts: Any, ends: Any, dead: Any
) -> None:
    """Each group's key and bounds into its row, which is live."""
    _run("session.write_rows", int(row_of.shape[0]), row_of, g_kid, g_start, g_end,
         kid, starts, ends, dead)  # fmt: skip


def absorbed(group_of: Any, rows: Any, row_of: Any, dead: Any) -> tuple[Any, Any]:
    """(src, dst): open rows merged into another row of their group (marked dead) and it."""
    n_open = int(rows.shape[0])
    flags = empty(n_open, np.uint8)
    _run("session.absorbed_flags", n_open, group_of, rows, row_of, flags)
    index = select(flags)
    m = int(index.shape[0])
    src, dst = empty(m, np.int64), empty(m, np.int64)
    _run("session.absorb", m, index, group_of, rows, row_of, src, dst, dead)
    return src, dst


def event_rows(order: Any, session_of: Any, group_of: Any, row_of: Any, n_open: int) -> Any:
    """The row of every event (in the batch's order; ``order`` sorted them)."""
    n = int(order.shape[0])
    out = empty(n, np.int64)
    _run("session.event_rows", n, order, session_of, group_of, row_of, int(n_open), out)
    return out


def close(dead: Any, ends: Any, watermark: int) -> Any:
    """Ascending live rows whose end is at or before ``watermark``; they are marked dead."""
    n = int(dead.shape[0])
    flags = empty(n, np.uint8)
    _run("session.close", n, dead, ends, int(watermark), flags)
    return select(flags)


def take_rows(values: Any, rows: Any) -> Any:
    """Rows ``rows`` of a 2-D int64 device array."""
    out = empty((int(rows.shape[0]), values.shape[1]), np.int64)
    _run("session.take_rows", int(rows.shape[0]), values, as_device(rows, np.int64), out)
    return out


__all__ = [
    "absorbed", "candidates", "close", "cut", "event_rows", "merge_intervals", "open_rows",
    "place_groups", "split_keys", "take_rows", "write_rows",
]  # fmt: skip
