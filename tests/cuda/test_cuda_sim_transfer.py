"""Chunked, double-buffered pinned uploads (:mod:`gpu_engine.backend.transfer`).

Under the simulator copies are synchronous, so this checks what the chunks
contain, that the staging buffers are reused (and grown), and that device
columns pass through without a copy; the overlap itself needs a device.
"""

from __future__ import annotations

import numpy as np
import pytest
from cuda_target import CUDA_WARNINGS, require_cuda_target

require_cuda_target()

from gpu_engine.backend.transfer import Column, PinnedUploader  # noqa: E402
from kernels.cuda._core import as_device, cuda, to_host  # noqa: E402

pytestmark = [pytest.mark.cudasim, *CUDA_WARNINGS]


def _columns(rng: np.random.Generator, n: int) -> list[Column]:
    return [
        Column(rng.integers(0, 100, (n, 3)), 0),  # keys: rows on axis 0
        Column(rng.normal(size=(2, n)), 1),  # value columns: rows on axis 1
        Column(np.zeros((0, 0), np.int64), 1),  # no integer columns
        Column((rng.random((1, n)) < 0.5).astype(np.uint8), 1),
        Column(np.ones((0, n), np.uint8), 1),  # no mask rows
    ]


def _pointer(array: object) -> int:
    if hasattr(array, "__cuda_array_interface__"):
        return int(array.__cuda_array_interface__["data"][0])
    return id(array)  # the simulator's fake device arrays have no interface


@pytest.mark.parametrize("pinned_source", [False, True])
@pytest.mark.parametrize("n", [1, 29, 30, 31, 95])
def test_chunks_reassemble_the_batch(n: int, pinned_source: bool) -> None:
    rng = np.random.default_rng(n)
    uploader = PinnedUploader(chunk_rows=30, pinned_source=pinned_source)
    for _ in range(2):  # the second batch reuses the staging buffers
        columns = _columns(rng, n)
        parts: list[list[np.ndarray]] = [[] for _ in columns]
        bounds = []
        for lo, hi, device in uploader.chunks(columns, n):
            bounds.append((lo, hi))
            assert len(device) == len(columns)
            for c, array in enumerate(device):
                parts[c].append(to_host(array))
        assert bounds == [(lo, min(lo + 30, n)) for lo in range(0, n, 30)]
        for c, column in enumerate(columns):
            host = np.asarray(column.array)
            if host.size == 0:
                assert all(p.size == 0 and p.dtype == host.dtype for p in parts[c])
                continue
            joined = np.concatenate(parts[c], axis=column.axis)
            assert joined.dtype == host.dtype
            np.testing.assert_array_equal(joined, host)
    depth = min(2, -(-n // 30))
    assert all(len(slot.host) == 5 for slot in uploader.slots[:depth])
    for slot in uploader.slots[:depth]:
        staged = [c for c, buffer in enumerate(slot.host) if buffer is not None]
        # a pinned source is staged only where a chunk is not contiguous: the (2, n) values
        # cut into chunks of rows
        direct = [1] if n > 30 else []
        assert staged == (direct if pinned_source else [0, 1, 3])
    assert uploader.copies == 2 * 3 * -(-n // 30)  # three non-empty host columns per chunk


def test_buffers_grow_and_are_reused() -> None:
    rng = np.random.default_rng(1)
    uploader = PinnedUploader(chunk_rows=16)
    for _ in uploader.chunks(_columns(rng, 8), 8):
        pass
    small = uploader.pinned_bytes
    first = [id(b) for b in uploader.slots[0].host]
    for _ in uploader.chunks(_columns(rng, 8), 8):
        pass
    assert [id(b) for b in uploader.slots[0].host] == first  # reused
    for _ in uploader.chunks(_columns(rng, 40), 40):
        pass
    assert uploader.pinned_bytes > small  # grown to a full chunk of 16 rows


def test_device_columns_pass_through_without_copy() -> None:
    rng = np.random.default_rng(2)
    keys = as_device(rng.integers(0, 9, (50, 2)))
    values = cuda.to_device(rng.normal(size=(2, 50)))
    host_mask = np.ones((1, 50), np.uint8)
    uploader = PinnedUploader(chunk_rows=8)
    seen = list(uploader.chunks([Column(keys, 0), Column(values, 1), Column(host_mask, 1)], 50))
    assert len(seen) == 1  # a device column makes the batch one chunk
    lo, hi, (k, v, m) = seen[0]
    assert (lo, hi) == (0, 50)
    assert k is keys and v is values
    assert _pointer(k) == _pointer(keys) and _pointer(v) == _pointer(values)
    assert uploader.copies == 1  # only the host mask was copied
    np.testing.assert_array_equal(to_host(m), host_mask)


def test_device_pane_state_takes_device_columns() -> None:
    """``DevicePaneState.add_events`` with device-resident keys and values (no upload)."""
    from window_cases import assert_same_groups, new_states, random_batch

    from gpu_engine.windows.aggregations import BatchValues
    from gpu_engine.windows.panes import PaneGeometry

    rng = np.random.default_rng(4)
    cpu, gpu = new_states(chunk_rows=8)
    keys, values = random_batch(rng, 40, (0, 6))
    cpu.add_events(keys, values)
    on_device = BatchValues(
        as_device(values.fcols), as_device(values.icols), as_device(values.masks),
        values.mask_of, values.sketch_inputs,
    )  # fmt: skip
    gpu.add_events(as_device(keys), on_device)
    assert gpu.uploader.copies == 0
    geometry = PaneGeometry(100, 100, 200)
    assert_same_groups(cpu.window_groups(geometry, -2, 6, 0), gpu.window_groups(geometry, -2, 6, 0))


def test_streamed_kernel_pipeline_matches_cpu() -> None:
    """``benchmarks.gpu_kernels``' overlapped run: chunks through a pinned-source uploader,
    tables that grow on the way and sketch counts carried from chunk to chunk."""
    from benchmarks.gpu_kernels import (
        GpuPipeline,
        chunk_constants,
        compare,
        cpu_run,
        joined,
        load_events,
        run_streamed,
    )

    events = load_events(700)
    cpu = cpu_run(events)
    uploader = PinnedUploader(chunk_rows=256, pinned_source=True)
    pipe = GpuPipeline(events=64, groups=64)
    parts = run_streamed(pipe, events, uploader, chunk_constants(events))
    assert len(parts) == 3
    assert compare(cpu, pipe.result(*joined(parts))) == []
    assert np.count_nonzero(cpu.reason) > 0


def test_small_host_arrays_are_uploaded_once_as_constants() -> None:
    from kernels.cuda import _core
    from kernels.cuda._core import CONSTANT_BYTES, constant, full

    first = constant(np.array([3, 1, 2]), np.int64)
    assert constant(np.array([3, 1, 2], np.int64)) is first  # same content: no upload
    assert constant(np.array([3, 1, 2], np.int32)) is not first  # another dtype
    assert constant(np.array([3, 1, 4]), np.int64) is not first
    np.testing.assert_array_equal(to_host(first), [3, 1, 2])
    big = np.arange(CONSTANT_BYTES // 8 + 1, dtype=np.int64)
    assert constant(big) is not constant(big)  # too big to keep: copied each time
    device = as_device(np.ones(4))
    assert constant(device) is device
    for i in range(_core.CONSTANT_ENTRIES):  # the least recently used content goes first
        constant(np.array([i, -1]))
    assert constant(np.array([3, 1, 2]), np.int64) is not first
    # A big upload after queued work waits for it (the driver syncs the stream before a
    # copy from pageable memory); a small one goes through pinned buffers and does not.
    before = sum(_core.WAITS.values())
    full(8, 0, np.int64)  # queues a memset
    as_device(np.array([5, 6]))
    assert sum(_core.WAITS.values()) == before
    as_device(np.zeros(_core.STAGED_BYTES // 8 + 1))
    assert sum(_core.WAITS.values()) == before + 1


def test_small_uploads_through_pinned_buffers_keep_their_values() -> None:
    """More uploads than staging buffers, of growing sizes and several dtypes: each device
    array keeps what it was given after its buffer has carried others."""
    from kernels.cuda._core import STAGING_SLOTS

    rng = np.random.default_rng(4)
    sent = []
    for i in range(3 * STAGING_SLOTS):
        shape = (i + 1,) if i % 3 else (2, i + 1)
        host = rng.normal(size=shape).astype([np.float64, np.int8, np.bool_][i % 3])
        sent.append((host, as_device(host)))
    for host, device in sent:
        got = to_host(device)
        assert got.dtype == host.dtype and got.shape == host.shape
        np.testing.assert_array_equal(got, host)
    assert to_host(as_device(np.empty(0, np.int16))).shape == (0,)


def test_a_staged_batch_is_waited_for_when_it_is_read_not_when_it_is_queued(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The engine stages batch n + 1 before it processes batch n. Waiting for a batch's
    copies when they were queued made batch n's kernels wait for batch n + 1's copies
    (no overlap); the default stream now waits for each batch's own copies when that
    batch is validated. Recorded with stand-in events (the simulator's are no-ops)."""
    import pyarrow as pa

    from gpu_engine.backend import transfer
    from gpu_engine.backend.host_staging import HostFrameStager
    from gpu_engine.config.models import FieldSpec

    log: list[tuple[str, int]] = []

    class Event:
        def __init__(self) -> None:
            self.id = len([e for e in log if e[0] == "new"])
            log.append(("new", self.id))

        def record(self, stream: object) -> None:
            log.append(("record", self.id))

        def wait(self, stream: object) -> None:
            log.append(("wait", self.id))

        def synchronize(self) -> None:
            log.append(("sync", self.id))

    monkeypatch.setattr(transfer, "_event", Event)
    stager = HostFrameStager({"t": FieldSpec(type="int64"), "x": FieldSpec(type="float64")})
    table = pa.table({"t": np.arange(5, dtype=np.int64), "x": np.ones(5)})
    first, second = stager(table), stager(table)  # batch n, then n + 1 staged ahead
    assert [e for e in log if e[0] == "wait"] == []
    first.await_copies()
    first.await_copies()  # once only
    assert [e for e in log if e[0] == "wait"] == [("wait", 0)]
    second.to_arrow()  # a host copy of the columns waits for them too
    assert [e for e in log if e[0] == "wait"] == [("wait", 0), ("wait", 1)]
    np.testing.assert_array_equal(second.to_arrow().column("x").to_numpy(), np.ones(5))
