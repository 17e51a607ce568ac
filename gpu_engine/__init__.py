"""TikTokToe: validated, keyed event-time window analytics on the GPU or the CPU.

The public entry points are :class:`Engine` and :class:`EngineConfig`; they are
imported lazily so that ``import gpu_engine`` stays cheap (no numba compile).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Engine", "EngineConfig", "__version__"]

if TYPE_CHECKING:
    from gpu_engine.config import EngineConfig
    from gpu_engine.engine import Engine


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from gpu_engine.engine import Engine

        return Engine
    if name == "EngineConfig":
        from gpu_engine.config import EngineConfig

        return EngineConfig
    raise AttributeError(name)
