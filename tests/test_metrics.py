"""The Prometheus text rendering."""

from __future__ import annotations

from lastseen.metrics import Registry


def test_counters_gauges_and_histograms_render_in_exposition_format() -> None:
    registry = Registry()
    rejected = registry.counter("x_rejected_total", "Refused.", ["code"])
    rejected.inc(1.0, "bad")
    rejected.inc(2.0, "bad")
    rejected.inc(1.0, 'we"ird')
    registry.gauge("x_devices", "Devices.", lambda: {("online",): 3.0}, ["status"])
    lag = registry.histogram("x_lag_seconds", "Lag.", (0.1, 1.0))
    for value in (0.05, 0.5, 0.5, 5.0):
        lag.observe(value)
    text = registry.render()
    assert text.splitlines() == [
        "# HELP x_rejected_total Refused.",
        "# TYPE x_rejected_total counter",
        'x_rejected_total{code="bad"} 3',
        'x_rejected_total{code="we\\"ird"} 1',
        "# HELP x_devices Devices.",
        "# TYPE x_devices gauge",
        'x_devices{status="online"} 3',
        "# HELP x_lag_seconds Lag.",
        "# TYPE x_lag_seconds histogram",
        'x_lag_seconds_bucket{le="0.1"} 1',
        'x_lag_seconds_bucket{le="1"} 3',
        'x_lag_seconds_bucket{le="+Inf"} 4',
        "x_lag_seconds_sum 6.05",
        "x_lag_seconds_count 4",
    ]
    assert lag.quantile(0.5) == 1.0
    assert lag.quantile(0.99) == float("inf")
    assert registry.histogram("empty", "E.", (1.0,)).quantile(0.5) == 0.0
