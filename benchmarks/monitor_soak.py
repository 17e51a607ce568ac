"""What the monitor holds over a long run of a window whose keys keep changing.

A window keyed by ever-new values (a request id, a short-lived video) gives the monitor
a new series per key. Each simulated second brings ``--keys`` new keys, each seen for
three seconds, one in four above a threshold (its alert fires, then resolves when the key
goes); two rules watch them (a threshold and a robust-z anomaly rule). One ``tick`` a
second, on a fake clock. Reports, every ``--every`` ticks: the alerts held, the rule
state held, the mean tick time over the last stretch and the process's resident memory,
so that growth per 1,000 ticks can be read off. (Not ``tracemalloc``: it made each tick
fifteen times slower.)

Run: ``python -m benchmarks.monitor_soak [--ticks 3000] [--keys 5] [--every 500]``
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from gpu_engine.commands.generate import _count_at_least
from gpu_engine.monitor import Monitor, MonitorConfig
from gpu_engine.monitor.sampler import Sample
from gpu_engine.monitor.system import process_rss_bytes

RULES: list[dict[str, Any]] = [
    {"name": "Hot", "kind": "threshold", "expr": "window:w.n > 5", "severity": "warning"},
    {"name": "Odd", "kind": "anomaly", "metric": "window:w.n",
     "detector": {"kind": "robust_z", "window": 30, "min_samples": 5}},
]  # fmt: skip


class _NoMetrics:
    """The engine's registry left out: the window series are what grows."""

    def sample(self, now: float, range_s: float = 0.0) -> Sample:
        return Sample(now, {})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.monitor_soak",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    positive = _count_at_least(1)
    parser.add_argument("--ticks", type=positive, default=3000)
    parser.add_argument("--keys", type=positive, default=5, help="new keys a second")
    parser.add_argument("--every", type=positive, default=500, help="ticks between reports")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # a line per alert change would time the terminal
    channels = {"cb": {"type": "callback"}}
    escalation = {"warning": [{"notify": "cb"}]}
    config = MonitorConfig.model_validate(
        {"rules": RULES, "channels": channels, "escalation": escalation}
    )
    out = Path(tempfile.mkdtemp(prefix="monitor-soak-"))
    clock = {"now": 0.0}
    monitor = Monitor(config, out, metrics=_NoMetrics(), clock=lambda: clock["now"],
                      callbacks={"cb": lambda payload: None})  # fmt: skip
    print(f"{args.keys} new keys a second, each for 3 s; {args.ticks} ticks ({out})")
    print(f"{'tick':>6}{'alerts':>9}{'rule state':>12}{'tick ms':>10}{'RSS MB':>9}")
    spent = 0.0
    for t in range(args.ticks):
        clock["now"] = float(t)
        first = max(0, (t - 2) * args.keys)
        keys = range(first, (t + 1) * args.keys)
        monitor.observe_window(
            "w", {"k": [f"key{k}" for k in keys], "n": [9 if k % 4 == 0 else 1 for k in keys]}
        )
        start = time.perf_counter()
        monitor.tick(float(t))
        spent += time.perf_counter() - start
        if (t + 1) % args.every == 0:
            state = sum(len(ev._state) for ev in monitor.evaluators)
            rss = process_rss_bytes() / 2**20
            mean_ms = 1000 * spent / args.every
            print(f"{t + 1:>6}{len(monitor.alerts):>9}{state:>12}{mean_ms:>10.2f}{rss:>9.1f}")
            spent = 0.0
    monitor.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
