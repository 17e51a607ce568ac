"""The registry served over real HTTP on localhost and parsed with prometheus-client's parser."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from gpu_engine.monitor import EngineMetrics, serve_metrics


def test_scrape_and_parse_exposition() -> None:
    m = EngineMetrics(gpu=False)
    m.record_batch(1000, 990, 6, 3, 1, 0.04, {"decode": 0.01}, 0.8, worker="w1")
    m.record_batch(500, 500, 0, 0, 0, 0.2, None, 2.0, worker="w2")
    m.set_queue_depth(7)
    m.add_windows_emitted("by_region", 3)
    with serve_metrics(m.registry, port=0, addr="127.0.0.1") as server:
        assert server.port > 0
        with urllib.request.urlopen(server.url, timeout=5) as resp:
            assert resp.status == 200
            text = resp.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    events = {
        s.labels["outcome"]: s.value
        for s in families["tiktoktoe_events"].samples
        if s.name.endswith("_total")
    }
    assert events == {"valid": 1490, "quarantined": 6, "late": 3, "dead_lettered": 1}
    assert families["tiktoktoe_events"].type == "counter"
    hist = families["tiktoktoe_batch_seconds"]
    assert hist.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in hist.samples if s.name.endswith("_bucket")}
    assert buckets["0.05"] == 1 and buckets["0.25"] == 2 and buckets["+Inf"] == 2
    lat = families["tiktoktoe_e2e_latency_seconds"]
    assert [s.value for s in lat.samples if s.name.endswith("_count")] == [2]
    assert [s.value for s in families["tiktoktoe_queue_depth"].samples] == [7]
    workers = {
        s.labels["worker"]: s.value
        for s in families["tiktoktoe_worker_events"].samples
        if s.name.endswith("_total")
    }
    assert workers == {"w1": 1000, "w2": 500}
    assert families["tiktoktoe_process_cpu_seconds"].samples[0].value > 0
    assert families["tiktoktoe_process_resident_memory_bytes"].samples[0].value > 0


def test_server_stops_and_frees_the_port() -> None:
    import socket

    server = serve_metrics(EngineMetrics(process=False, gpu=False).registry, port=0)
    port = server.port
    server.stop()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # would fail with EADDRINUSE if still listening
