"""Numeric kernels: arrays in, arrays out; no frames, no config objects.

One module per operation. CPU versions are Numba ``@njit(nogil=True, cache=True)``
functions; CUDA versions live beside them in ``kernels/cuda/`` and are imported
only by the CUDA backend.
"""

from numba.core.caching import FunctionCache as _FunctionCache

from kernels.cache_stamp import stamp_package_sources as _stamp_package_sources

_stamp_package_sources(_FunctionCache._impl_class)  # before any kernel module compiles
