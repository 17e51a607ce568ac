"""The one place that knows which device runs the kernels.

``select_backend("auto" | "cpu" | "cuda")`` is called once, from the config;
nothing else in the engine branches on the device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from gpu_engine.errors import BackendUnavailableError

if TYPE_CHECKING:
    import pyarrow as pa

    from gpu_engine.backend.reason_codes import ReasonCodes
    from gpu_engine.config.models import FieldSpec, TopKSpec
    from gpu_engine.windows.aggregations import AggregationPlan


@dataclass(frozen=True)
class Backend:
    """A compute device and the state it keeps windows in."""

    name: str
    description: str
    memory_limit: int | None = None  # bytes of window state allowed on the device

    @property
    def host_state(self) -> bool:
        """Whether window state lives in host memory (so shards can move it between them)."""
        return self.name == "cpu"

    def new_pane_state(self, plan: AggregationPlan, width: int, owner: str = "") -> Any:
        """Empty keyed pane state on this device (``PaneState`` or its device twin)."""
        if self.name == "cuda":
            from gpu_engine.backend.device_state import DevicePaneState

            return DevicePaneState(plan, width, limit=self.memory_limit, owner=owner)
        from gpu_engine.windows.panes import PaneState

        return PaneState(plan, width)

    def new_session_state(
        self, plan: AggregationPlan, width: int, gap: int, owner: str = ""
    ) -> Any:
        """Empty session state on this device (``SessionState`` or its device twin)."""
        if self.name == "cuda":
            from gpu_engine.backend.device_sessions import DeviceSessionState

            return DeviceSessionState(plan, width, gap, limit=self.memory_limit, owner=owner)
        from gpu_engine.windows.sessions import SessionState

        return SessionState(plan, width, gap)

    def reason_codes(self, n: int) -> ReasonCodes:
        """Reason codes of a batch of ``n`` rows, all OK, kept on this device.

        The Validator writes every rule's failures through it and reads them once with
        ``to_host()``; on CUDA they are allocated on the device and downloaded once.
        """
        from gpu_engine.backend.reason_codes import DeviceReasonCodes, HostReasonCodes

        if self.name == "cuda":
            return DeviceReasonCodes.empty(n)
        return HostReasonCodes.empty(n)

    def device_frame(self, frame: Any) -> Any:
        """``frame`` as a batch that stays on this device (a ``DeviceFrame``), or None for
        host frames and on the CPU backend (which reads device arrays through the host)."""
        if self.name != "cuda":
            return None
        from gpu_engine.backend.device_pushes import device_frame

        return device_frame(frame)

    def frame_stager(self, fields: dict[str, FieldSpec], mode: str) -> Any:
        """A callable putting a host batch (Arrow table) on this device as a ``DeviceFrame``,
        or None where host batches stay host tables (the CPU; ``mode`` "host")."""
        if self.name != "cuda" or mode != "device":
            return None
        from gpu_engine.backend.host_staging import HostFrameStager

        return HostFrameStager(fields)

    def top_k(self, table: pa.Table, top: TopKSpec, keys: list[str]) -> pa.Table:
        """The ``top.k`` best groups of each window of ``table``."""
        from gpu_engine.backend import topk

        if self.name == "cuda":
            return topk.top_k_device(table, top, keys)
        return topk.top_k_host(table, top, keys)


CPU = Backend("cpu", "CPU (Numba kernels, Arrow/pandas frames)")
CUDA = Backend("cuda", "CUDA device (Numba CUDA kernels); window state in device memory")


def cuda_unavailable_reason() -> str | None:
    """Why CUDA cannot be used here, or None when a device, driver and libraries are present."""
    try:
        from numba import cuda  # imported lazily: CPU runs never touch numba.cuda
    except ImportError as exc:  # pragma: no cover - numba is a core dependency
        return f"numba.cuda cannot be imported ({exc})"
    try:
        if not cuda.is_available():
            return "no CUDA driver or device was found (numba.cuda.is_available() is False)"
    except Exception as exc:  # the driver itself failed to load
        return f"the CUDA driver failed to initialise ({exc})"
    try:
        import kernels.cuda  # noqa: F401  (numba-cuda with NVVM, from the cuda extra)
    except ImportError as exc:
        return f"the CUDA kernels cannot be loaded ({exc}); pip install 'tiktoktoe[cuda]'"
    return None


def host_copy(values: Any) -> Any:
    """``values`` in host memory: a device array (``__cuda_array_interface__``: CuPy, Numba,
    torch CUDA tensors; the simulator's stand-ins) copied once, anything else as it is."""
    on_device = hasattr(values, "__cuda_array_interface__") or (
        simulated() and type(values).__module__.startswith("numba.cuda.simulator")
    )
    if not on_device:
        return values
    from kernels.cuda._core import to_host

    return to_host(values)


def simulated() -> bool:
    """True when Numba's CUDA simulator stands in for a device (tests only)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def select_backend(name: str, memory_limit: int | None = None) -> Backend:
    """The backend for ``name``; ``auto`` falls back to the CPU when CUDA is unusable."""
    if name == "cpu":
        return CPU
    if name not in ("auto", "cuda"):
        raise BackendUnavailableError(f"unknown backend {name!r}; use auto, cpu or cuda")
    if name == "auto" and (simulated() or not _driver_present()):
        return CPU  # no device to use (checked without importing numba.cuda: ~0.7 s)
    reason = cuda_unavailable_reason()
    if reason is None:
        return replace(CUDA, memory_limit=memory_limit)
    if name == "cuda":
        raise BackendUnavailableError(f"backend 'cuda' cannot run here: {reason}")
    return CPU


def _driver_present() -> bool:
    """Whether the CUDA driver library exists (cheap; the full check comes after)."""
    import ctypes.util

    return ctypes.util.find_library("cuda") is not None or os.path.exists("/dev/nvidiactl")
