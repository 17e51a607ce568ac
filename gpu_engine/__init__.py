"""TikTokToe: validated, keyed event-time window analytics on the GPU or the CPU.

The public entry points are :class:`Engine` and :class:`EngineConfig`; they are
imported lazily so that ``import gpu_engine`` stays cheap (no numba compile).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Engine", "EngineConfig", "__version__"]


def _check_kernels_package() -> None:
    """Refuse to start where another top-level ``kernels`` comes first on ``sys.path``
    (PyPI's unrelated ``kernels``, Hugging Face's kernel hub, has that name too): every
    later import of ours would fail deep inside with "No module named kernels.aggregate".
    """
    ours = (Path(__file__).resolve().parent.parent / "kernels").resolve()
    spec = importlib.util.find_spec("kernels")
    found = [Path(p).resolve() for p in (spec.submodule_search_locations or [])] if spec else []
    if ours.is_dir() and ours not in found:
        first = found[0] if found else (spec.origin if spec else "none")  # a kernels.py module
        raise ImportError(
            f"the package 'kernels' found first is {first}, not "
            f"TikTokToe's {ours}: another package named 'kernels' (PyPI's kernels, for one) "
            "shadows it; install TikTokToe in an environment of its own"
        )


_check_kernels_package()

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
