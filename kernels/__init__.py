"""Numeric kernels: arrays in, arrays out; no frames, no config objects.

One module per operation. CPU versions are Numba ``@njit(nogil=True, cache=True)``
functions; CUDA versions live beside them in ``kernels/cuda/`` and are imported
only by the CUDA backend.
"""
