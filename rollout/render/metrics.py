"""`--metrics-file PATH.prom`: a Prometheus textfile-collector file, written atomically."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from rollout.operations.metrics import MetricsSnapshot


def write_metrics(path: Path, snapshot: MetricsSnapshot) -> None:
    """Owners by wave and state, the run's figures, the last success; the file is replaced whole
    (prometheus_client writes a temporary file and renames it)."""
    registry = CollectorRegistry()
    owners = Gauge("rollout_owners", "Owners per wave and state.", ["wave", "state"], registry=registry)
    complete = Gauge("rollout_wave_complete", "1 when the wave is complete.", ["wave"], registry=registry)
    for w in snapshot.waves:
        for state, value in (
            ("selected", w.selected),
            ("migrated", w.migrated),
            ("failed", w.failed),
            ("blocked", w.blocked),
            ("rolled_back", w.rolled_back),
            ("deferred", w.deferred),
            ("remaining", w.remaining),
        ):
            owners.labels(w.wave, state).set(value)
        complete.labels(w.wave).set(int(w.complete))
    run_owners = Gauge(
        "rollout_run_owners", "Owners of the last run by outcome.", ["outcome"], registry=registry
    )
    duration = Gauge("rollout_run_duration_seconds", "Wall time of the last run.", registry=registry)
    batches = Gauge("rollout_run_batches", "Batches committed by the last run.", registry=registry)
    failures = Gauge("rollout_run_failures", "Owners that failed in the last run.", registry=registry)
    throttled = Gauge(
        "rollout_run_throttled_seconds",
        "Time the last run waited for the database's health.",
        registry=registry,
    )
    time_left = Gauge(
        "rollout_estimated_seconds_left",
        "Remaining owners of each wave at the newest run's rate.",
        ["wave"],
        registry=registry,
    )
    if snapshot.rate:
        for w in snapshot.waves:
            time_left.labels(w.wave).set(round((w.remaining + w.deferred) / snapshot.rate, 1))
    summary = snapshot.summary
    if summary is not None:
        c = summary.counts
        for name, value in (
            ("migrated", c.migrated),
            ("failed", c.failed),
            ("blocked", c.blocked),
            ("drifted", c.drifted),
            ("deferred", c.deferred),
        ):
            run_owners.labels(name).set(value)
        duration.set(summary.duration_s)
        batches.set(c.batches)
        failures.set(c.failed)
        throttled.set(round(c.throttled_seconds, 1))
    last_success = Gauge(
        "rollout_last_success_timestamp_seconds", "When a run last succeeded.", registry=registry
    )
    if snapshot.last_success is not None:
        last_success.set(snapshot.last_success.timestamp())
    paused = Gauge("rollout_paused", "1 while the rollout is paused.", registry=registry)
    paused.set(int(snapshot.paused))
    write_to_textfile(str(path), registry)
