"""The one place that knows which device runs the kernels.

``select_backend("auto" | "cpu" | "cuda")`` is called once, from the config;
nothing else in the engine branches on the device.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpu_engine.errors import BackendUnavailableError


@dataclass(frozen=True)
class Backend:
    """A compute device and what it can do."""

    name: str
    description: str


CPU = Backend("cpu", "CPU (Numba kernels, Arrow/pandas frames)")


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
        import cupy  # noqa: F401
    except ImportError:
        return "CuPy is not installed (pip install 'tiktoktoe[cuda]')"
    return None


CUDA_ENGINE_WIRED = False  # the CUDA kernels exist (kernels/cuda); the engine does not use them yet


def select_backend(name: str) -> Backend:
    """The backend for ``name``; ``auto`` falls back to the CPU when CUDA is unusable."""
    if name == "cpu":
        return CPU
    if name not in ("auto", "cuda"):
        raise BackendUnavailableError(f"unknown backend {name!r}; use auto, cpu or cuda")
    if name == "auto" and not CUDA_ENGINE_WIRED:
        return CPU  # nothing to probe for (importing numba.cuda costs ~0.7 s of start-up)
    reason = cuda_unavailable_reason()
    if reason is None:
        reason = "the CUDA window kernels are not part of this build yet"
    if name == "cuda":
        raise BackendUnavailableError(f"backend 'cuda' cannot run here: {reason}")
    return CPU
