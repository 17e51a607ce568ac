"""The end-to-end latency histogram, observed for every event of a batch at once.

``prometheus_client.Histogram`` observes one value per call, so the engine used to record
one lag per batch (its newest event's), which is each batch's smallest lag: a batch whose
oldest event waited 10 s read as fast. This collector takes a batch's event times and adds
every event's lag (processing time minus event time) to the buckets. Counting is a
comparison pass per bucket that the batch's lags span, not a sort or a per-event
search, so a 65,536-row batch costs about 0.1-0.3 ms.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class LagHistogram(Collector):
    """A Prometheus histogram of seconds (``le`` buckets, cumulative in exposition)."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = tuple(float(b) for b in buckets)
        self._counts = np.zeros(len(self.bounds) + 1, np.int64)  # per bucket, +Inf last
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        """One value (Prometheus' ``observe``)."""
        index = int(np.searchsorted(self.bounds, seconds, side="left"))
        with self._lock:
            self._counts[index] += 1
            self._sum += seconds

    def observe_event_times(self, times_ms: np.ndarray, now_s: float) -> None:
        """Every event's lag ``now_s - time``, negative lags (clocks apart) counted as 0.

        ``times_ms`` are int64 epoch milliseconds. A lag is at most a bound ``b`` exactly
        when ``time >= now - b``; for integer times that is ``time >= ceil(now - b)``.
        """
        n = len(times_ms)
        if n == 0:
            return
        now_ms = now_s * 1000.0
        lowest, highest = int(times_ms.min()), int(times_ms.max())
        at_most = np.empty(len(self.bounds) + 1, np.int64)  # events with lag <= each bound
        for i, bound in enumerate(self.bounds):
            threshold = math.ceil(now_ms - bound * 1000.0)
            if threshold <= lowest:
                at_most[i] = n
            elif threshold > highest:
                at_most[i] = 0
            else:
                at_most[i] = np.count_nonzero(times_ms >= threshold)
        at_most[-1] = n
        counts = np.diff(at_most, prepend=0)
        lag_sum = now_ms * n - float(times_ms.sum(dtype=np.float64))
        if highest > now_ms:  # events from the future count 0, not a negative lag
            ahead = times_ms[times_ms > now_ms]
            lag_sum += float(ahead.sum(dtype=np.float64)) - now_ms * len(ahead)
        with self._lock:
            self._counts += counts
            self._sum += lag_sum / 1000.0

    def collect(self) -> Iterator[Any]:
        with self._lock:
            cumulative = np.cumsum(self._counts)
            total = self._sum
        family = HistogramMetricFamily(self.name, self.documentation)
        les = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        family.add_metric([], list(zip(les, cumulative.tolist(), strict=True)), total)
        yield family
