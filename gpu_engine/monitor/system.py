"""Process and GPU resource collectors, registered on the engine's own registry.

psutil is deliberately not a dependency: CPU time comes from ``os.times()`` and
RSS from ``/proc/self/statm`` (falling back to ``resource`` peak RSS off Linux).
GPU figures come from NVML (``nvidia-ml-py``) only when it imports and finds a
device; otherwise the collector yields nothing, so CPU-only hosts simply lack
the ``gpu_*`` series.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def process_cpu_seconds() -> float:
    """User plus system CPU seconds of this process (all threads)."""
    t = os.times()
    return float(t.user + t.system)


def process_rss_bytes() -> float:
    """Current resident set size; peak RSS where /proc is unavailable."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return float(int(fh.read().split()[1]) * _PAGE_SIZE)
    except (OSError, IndexError, ValueError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return float(peak if sys.platform == "darwin" else peak * 1024)


class ProcessCollector(Collector):
    """``tiktoktoe_process_cpu_seconds_total`` and ``tiktoktoe_process_resident_memory_bytes``."""

    def collect(self) -> Iterator[Any]:
        cpu = CounterMetricFamily(
            "tiktoktoe_process_cpu_seconds", "User and system CPU time of the engine process."
        )
        cpu.add_metric([], process_cpu_seconds())
        yield cpu
        rss = GaugeMetricFamily(
            "tiktoktoe_process_resident_memory_bytes", "Resident memory of the engine process."
        )
        rss.add_metric([], process_rss_bytes())
        yield rss


# Flat names of the GPU series (rules may name them on any host: where NVML finds no
# device they simply have no value).
GPU_SERIES = ("gpu_utilization_ratio", "gpu_memory_used_bytes", "gpu_memory_total_bytes")


class NvmlCollector(Collector):
    """GPU utilisation and memory per device through NVML; empty when NVML is unusable."""

    def __init__(self, nvml: Any) -> None:
        self._nvml = nvml
        self._handles = [
            nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())
        ]

    @property
    def device_count(self) -> int:
        return len(self._handles)

    def collect(self) -> Iterator[Any]:
        util = GaugeMetricFamily(
            "tiktoktoe_gpu_utilization_ratio",
            "GPU busy fraction (0-1) over the last sample.",
            labels=["gpu"],
        )
        used = GaugeMetricFamily(
            "tiktoktoe_gpu_memory_used_bytes", "GPU memory in use.", labels=["gpu"]
        )
        total = GaugeMetricFamily(
            "tiktoktoe_gpu_memory_total_bytes", "GPU memory installed.", labels=["gpu"]
        )
        for i, handle in enumerate(self._handles):
            try:
                rates = self._nvml.nvmlDeviceGetUtilizationRates(handle)
                mem = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            except Exception as exc:  # a device error must not break the scrape
                log.debug("NVML query for GPU %d failed: %s", i, exc)
                continue
            util.add_metric([str(i)], float(rates.gpu) / 100.0)
            used.add_metric([str(i)], float(mem.used))
            total.add_metric([str(i)], float(mem.total))
        yield util
        yield used
        yield total


def nvml_collector() -> NvmlCollector | None:
    """An NVML collector when ``pynvml`` imports and reports at least one GPU, else ``None``."""
    try:
        nvml = importlib.import_module("pynvml")
    except ImportError:
        return None
    try:
        nvml.nvmlInit()
        collector = NvmlCollector(nvml)
    except Exception as exc:  # no driver, no device: run without GPU series
        log.info("NVML unavailable, GPU metrics skipped: %s", exc)
        return None
    return collector if collector.device_count else None
