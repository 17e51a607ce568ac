"""Kernel-level checks: hash index against a dict, specialised against generic kernels."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from kernels.aggregate import (
    COUNT,
    MAX,
    MEAN,
    MIN,
    STD,
    SUM,
    VAR,
    AggState,
    combine_finalize,
    update_events,
)
from kernels.hashindex import HashIndex, group_ids
from kernels.specialize import combine_finalize_for


def test_hash_index_matches_a_dict(rng) -> None:
    index = HashIndex(2, capacity=4)
    seen: dict[tuple[int, int], int] = {}
    for _ in range(5):
        keys = rng.integers(-50, 50, size=(700, 2))
        ids = index.insert(keys)
        for key, got in zip(map(tuple, keys), ids, strict=True):
            assert seen.setdefault(key, len(seen)) == got
    assert len(index) == len(seen)
    probe = np.array([[1000, 1000], *list(seen)[:3]])
    assert index.find(probe).tolist() == [-1, 0, 1, 2]
    ids, distinct = group_ids(probe)
    assert (distinct[ids] == probe).all()


@pytest.mark.parametrize("seed", range(4))
def test_specialised_combine_equals_generic(seed) -> None:
    rng = np.random.default_rng(seed)
    ops = rng.choice([COUNT, SUM, MEAN, MIN, MAX, STD, VAR], size=6)
    is_int = np.isin(ops, [SUM, MEAN, MIN, MAX]) & (rng.random(6) < 0.5)
    n_events, n_rows = 3000, 300
    state = AggState(ops, n_rows)
    ints = rng.integers(-1000, 1000, n_events) + 2**53 * rng.integers(-8, 8, n_events)
    values = np.stack([rng.normal(0, 100, n_events), ints.astype(np.float64)])  # col 1: ints
    icols = np.stack([np.zeros(n_events, np.int64), ints])
    masks = (rng.random((2, n_events)) < 0.7).astype(np.uint8)
    update_events(
        rng.integers(0, n_rows, n_events), ops, is_int.astype(np.int64),
        rng.integers(-1, 2, 6), is_int, values, icols, masks,
        state.rows, state.ist, state.isum, state.f0, state.f1, state.moments,
    )  # fmt: skip
    # 120 groups, each a run of rows (some runs overlap, as windows do)
    lo = np.sort(rng.integers(0, n_rows - 10, 120))
    hi = lo + rng.integers(1, 10, 120)
    n_groups = len(lo)
    position = rng.permutation(n_groups)
    outs = []
    for kernel in ("generic", "special"):
        out_f = np.full((6, n_groups), -7.0)
        out_i = np.full((6, n_groups), -7, np.int64)
        valid = np.zeros((6, n_groups), np.bool_)
        args = (state.ist, state.isum, state.f0, state.f1, out_f, out_i, valid)
        if kernel == "generic":
            combine_finalize(lo, hi, position, ops, is_int, *args)
        else:
            combine_finalize_for(tuple(ops.tolist()), tuple(is_int.tolist()))(
                lo, hi, position, *args
            )
        outs.append((out_f, out_i, valid))
    (gf, gi, gv), (sf, si, sv) = outs
    np.testing.assert_array_equal(gv, sv)
    for a, op in enumerate(ops):
        if op == COUNT or (op in (SUM, MIN, MAX) and is_int[a]):
            np.testing.assert_array_equal(gi[a][gv[a]], si[a][sv[a]])
        else:
            np.testing.assert_allclose(gf[a][gv[a]], sf[a][sv[a]], rtol=1e-12)


def test_generated_kernels_are_keyed_on_the_helpers_they_call() -> None:
    """The generated combine calls ``kernels.aggregate.integer_mean``; its file, and
    Numba's cache of it, are named after its source, which holds the digest of every
    source of ``kernels/``, so an edit there is never served a stale kernel. (The file
    lies outside the package, where kernels.cache_stamp does not stamp entries.)"""
    from pathlib import Path

    from kernels.cache_stamp import sources_digest
    from kernels.specialize import _combine_source

    digest = sources_digest()
    module = sys.modules[combine_finalize_for((MEAN,), (True,)).__module__]
    assert digest in Path(module.__file__).read_text()
    assert "integer_mean(" in _combine_source((MEAN,), (True,))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("bad", [None, "nan", "inf", "low", "high"])
@pytest.mark.parametrize(
    ("check_range", "allow_nan"), [(True, False), (False, False), (True, True)]
)
def test_check_numeric_clean_fast_path_and_bad_values(dtype, bad, check_range, allow_nan) -> None:
    """A clean column writes nothing; one bad value anywhere is still found (or allowed)."""
    from kernels import validate as v

    rng = np.random.default_rng(3)
    values = (rng.random(5000) * 100 + 10).astype(dtype)
    where = int(rng.integers(0, 5000))
    floating = np.issubdtype(dtype, np.floating)
    if bad in ("nan", "inf") and not floating:
        pytest.skip("integers hold no NaN or inf")
    if bad is not None:
        values[where] = {"nan": np.nan, "inf": np.inf, "low": 1, "high": 500}[bad]
    reason = np.zeros(5000, np.int8)
    field = np.full(5000, -1, np.int16)
    empty = np.empty(0, np.uint8)
    found = v.check_numeric(values, empty, empty, 2, False, allow_nan, check_range, 5.0, 200.0,
                            np.empty(0), reason, field)  # fmt: skip
    expected = {
        None: v.OK,
        "nan": v.OK if allow_nan else v.NAN,
        "inf": v.OK if allow_nan else v.INFINITE,
        "low": v.BELOW_MIN if check_range else v.OK,
        "high": v.ABOVE_MAX if check_range else v.OK,
    }[bad]
    if bad == "inf" and allow_nan and check_range:
        expected = v.ABOVE_MAX  # infinity is allowed, its range is still checked
    assert found == (expected != v.OK)
    assert reason[where] == expected
    assert np.count_nonzero(reason) == found
    assert (field[reason != 0] == 2).all()


@pytest.mark.parametrize("nullable", [True, False])
@pytest.mark.parametrize("bad", [None, "low"])
def test_check_numeric_with_nulls(nullable, bad) -> None:
    """Nulls (stored as 0, below min) pass when the field is nullable, fail when it is not."""
    from kernels import validate as v

    rng = np.random.default_rng(4)
    values = rng.random(3000) * 100 + 10
    is_null = rng.random(3000) < 0.1
    values[is_null] = 0.0
    where = int(np.flatnonzero(~is_null)[7])
    if bad:
        values[where] = 1.0
    reason = np.zeros(3000, np.int8)
    field = np.full(3000, -1, np.int16)
    v.check_numeric(values, is_null, np.empty(0, np.uint8), 0, nullable, False, True, 5.0, 200.0,
                    np.empty(0), reason, field)  # fmt: skip
    expected = np.zeros(3000, np.int8)
    if not nullable:
        expected[is_null] = v.NULL
    if bad:
        expected[where] = v.BELOW_MIN
    np.testing.assert_array_equal(reason, expected)


@pytest.mark.parametrize("allowed", [[0, 1, 2, 3, 4], [4, 2, 0, 1, 3], [1, 5], [2, 2, 3]])
@pytest.mark.parametrize("bad", [None, 7.0, 2.5, -1.0])
def test_check_numeric_allowed_sets(allowed, bad) -> None:
    """Enum-like allowed sets take the vectorised pass; any set still rejects outsiders."""
    from kernels import validate as v

    rng = np.random.default_rng(5)
    values = rng.choice(np.unique(allowed), 2000).astype(np.float64)
    where = 1234
    if bad is not None:
        values[where] = bad
    reason = np.zeros(2000, np.int8)
    field = np.full(2000, -1, np.int16)
    empty = np.empty(0, np.uint8)
    v.check_numeric(values, empty, empty, 1, False, False, True, -10.0, 10.0,
                    np.asarray(allowed, dtype=np.float64), reason, field)  # fmt: skip
    expected = np.zeros(2000, np.int8)
    if bad is not None and bad not in allowed:
        expected[where] = v.NOT_ALLOWED
    np.testing.assert_array_equal(reason, expected)
