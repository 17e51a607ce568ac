"""lexsort_by_id is np.lexsort's permutation (ties included) with each major key's run."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.order import INSERTION_MAX, MERGE_MAX, SPARSE_IDS, lexsort_by_id, order_by_id


@pytest.mark.parametrize("seed", range(6))
def test_the_same_permutation_as_lexsort_on_random_keys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 5000))
    n_major = int(rng.integers(1, 300))
    major = rng.integers(0, n_major, n)
    # Few distinct minor keys, so that many (major, minor) pairs tie: order must be stable.
    minor = rng.integers(-3, 4, n) if seed % 2 else rng.integers(-(2**63), 2**63 - 1, n)
    order, starts = lexsort_by_id(minor, major, n_major)
    np.testing.assert_array_equal(order, np.lexsort((minor, major)))
    # Run k holds exactly the items of major key k.
    np.testing.assert_array_equal(np.diff(starts), np.bincount(major, minlength=n_major))
    assert starts[0] == 0 and starts[-1] == n
    for k in rng.integers(0, n_major, 5):
        run = order[starts[k] : starts[k + 1]]
        assert (major[run] == k).all()


def test_runs_of_every_length_and_empty_input() -> None:
    # Id 0's run goes to NumPy's sort, id 1's to the merge sort, the rest by insertion.
    rng = np.random.default_rng(9)
    long_run, medium_run = MERGE_MAX + 10, 5 * INSERTION_MAX
    major = np.r_[np.zeros(long_run, np.int64), np.ones(medium_run, np.int64),
                  rng.integers(2, 40, 300)]  # fmt: skip
    major = major[rng.permutation(len(major))]
    minor = rng.integers(0, 20, len(major)).astype(np.int32)  # many ties
    order, starts = lexsort_by_id(minor, major, 41)
    np.testing.assert_array_equal(order, np.lexsort((minor, major)))
    assert list(starts[:3]) == [0, long_run, long_run + medium_run]
    order, starts = lexsort_by_id(np.empty(0, np.int64), np.empty(0, np.int64), 2)
    assert len(order) == 0 and list(starts) == [0, 0, 0]


def test_a_major_key_outside_the_bound_is_an_error_not_a_stray_write() -> None:
    with pytest.raises(ValueError, match=r"major keys outside 0\.\.2"):
        lexsort_by_id(np.zeros(2, np.int64), np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="major keys outside"):
        lexsort_by_id(np.zeros(1, np.int64), np.array([-1]), 3)
    with pytest.raises(ValueError, match="different lengths"):
        lexsort_by_id(np.zeros(2, np.int64), np.array([0]), 3)
    with pytest.raises(TypeError, match="minor keys must be integers, not float64"):
        lexsort_by_id(np.zeros(1), np.array([0]), 3)


@pytest.mark.parametrize("n_major", [1, 50, 5_000, 2_000_000])
@pytest.mark.parametrize("n", [0, 1, 100, 3_000])
def test_order_by_id_is_lexsorts_permutation_sparse_or_dense(n: int, n_major: int) -> None:
    """Either path (a comparison sort where ids outnumber items ``SPARSE_IDS`` times, as
    for (100, 5,000), else the counting sort, as for (3,000, 5,000)) gives ``np.lexsort``'s
    permutation, ties in input order."""
    assert SPARSE_IDS * 100 < 5_000 < SPARSE_IDS * 3_000  # both paths are run
    rng = np.random.default_rng(n + n_major)
    major = rng.integers(0, n_major, n)
    minor = rng.integers(-3, 4, n)
    np.testing.assert_array_equal(order_by_id(minor, major, n_major), np.lexsort((minor, major)))
