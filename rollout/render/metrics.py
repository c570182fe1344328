"""The metrics of an invocation: a Prometheus textfile (node_exporter's collector; written whole
through a temporary file) or a push to a Pushgateway (where no collector runs, in a pod)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    delete_from_gateway,
    push_to_gateway,
    write_to_textfile,
)

from rollout.engine.pacing import THROTTLE_SIGNALS
from rollout.operations.metrics import MetricsSnapshot

JOB = "rollout"
COMPLETE = "complete"  # the grouping key's wave once every wave is complete
STATES = ("migrated", "failed", "blocked", "rolled_back", "deferred", "remaining")


def registry_of(snapshot: MetricsSnapshot) -> CollectorRegistry:
    """Every gauge of a snapshot."""
    registry = CollectorRegistry()

    def gauge(name: str, help_text: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, help_text, list(labels), registry=registry)

    owners = gauge("rollout_owners", "Owners of each wave by state.", ("wave", "state"))
    selected = gauge("rollout_wave_selected_owners", "Owners each wave selects (all states).", ("wave",))
    complete = gauge("rollout_wave_complete", "1 when the wave is complete.", ("wave",))
    left = gauge(
        "rollout_estimated_seconds_left", "Remaining owners of each wave at the newest run's rate.", ("wave",)
    )
    for w in snapshot.waves:
        for state in STATES:
            owners.labels(w.wave, state).set(getattr(w, state))
        selected.labels(w.wave).set(w.selected)
        complete.labels(w.wave).set(int(w.complete))
        seconds = w.seconds_left(snapshot.rate)
        if seconds is not None:
            left.labels(w.wave).set(seconds)

    nxt = snapshot.next_wave
    current = gauge(
        "rollout_current_wave", "1 for the first incomplete wave, the one --auto works on.", ("wave",)
    )
    not_before = gauge(
        "rollout_next_wave_not_before_timestamp_seconds",
        "When the first incomplete wave may start.",
        ("wave",),
    )
    soak_until = gauge(
        "rollout_next_wave_soak_until_timestamp_seconds",
        "When the wave before the first incomplete one ends its soak.",
        ("wave",),
    )
    if nxt is not None:
        current.labels(nxt.wave).set(1)
        if nxt.not_before is not None:
            not_before.labels(nxt.wave).set(nxt.not_before.timestamp())
        if nxt.soak_until is not None:
            soak_until.labels(nxt.wave).set(nxt.soak_until.timestamp())

    last = snapshot.last
    for name, help_text, moment in (
        ("rollout_last_attempt_timestamp_seconds", "When an invocation last started.", last.attempted_at),
        (
            "rollout_last_healthy_timestamp_seconds",
            "When an invocation last ended healthy (a success, or nothing to do).",
            last.healthy_at,
        ),
        ("rollout_last_success_timestamp_seconds", "When a run last succeeded.", last.succeeded_at),
    ):
        metric = gauge(name, help_text)
        if moment is not None:
            metric.set(moment.timestamp())
    gauge("rollout_paused", "1 while the rollout is paused.").set(int(snapshot.paused))

    run_owners = gauge("rollout_run_owners", "Owners of the last run by outcome.", ("outcome",))
    duration = gauge("rollout_run_duration_seconds", "Wall time of the last run.")
    rate = gauge("rollout_run_owners_per_second", "Owners the last run concluded per second.")
    batches = gauge("rollout_run_batches", "Batches committed by the last run.")
    failures = gauge("rollout_run_failures", "Owners that failed in the last run.")
    throttled = gauge("rollout_run_throttled_seconds", "Time the last run waited for the database's health.")
    throttles = gauge(
        "rollout_run_throttles", "Pauses of the last run, by the signal that asked for them.", ("signal",)
    )
    per_worker = gauge(
        "rollout_worker_owners",
        "Owners of each worker of the newest wave job (every process and host on it) by outcome.",
        ("worker", "outcome"),
    )
    for worker, by_outcome in snapshot.workers:
        for outcome, count in by_outcome.items():
            per_worker.labels(worker, outcome).set(count)
    summary = snapshot.summary
    if summary is not None:
        c = summary.counts
        for outcome in ("migrated", "failed", "blocked", "drifted", "deferred", "swept"):
            run_owners.labels(outcome).set(getattr(c, outcome))
        duration.set(summary.duration_s)
        rate.set(round(c.attempted / summary.duration_s, 2) if summary.duration_s else 0)
        batches.set(c.batches)
        failures.set(c.failed)
        throttled.set(round(c.throttled_seconds, 1))
        paused_for = dict(summary.throttles)
        for signal in THROTTLE_SIGNALS:
            throttles.labels(signal).set(paused_for.get(signal, 0))
    return registry


def write_metrics(path: Path, snapshot: MetricsSnapshot) -> None:
    """Replaces the textfile whole (prometheus_client writes a temporary file and renames it)."""
    write_to_textfile(str(path), registry_of(snapshot))


def push_metrics(url: str, snapshot: MetricsSnapshot, waves: Sequence[str]) -> None:
    """Pushes to a Pushgateway, grouped by job and by the wave the rollout is at, and deletes the
    groups of the plan's other waves: a Pushgateway keeps a group until it is deleted, and the
    last values of a wave done with would otherwise stay there, looking current."""
    at = snapshot.next_wave.wave if snapshot.next_wave is not None else COMPLETE
    push_to_gateway(url, job=JOB, grouping_key={"wave": at}, registry=registry_of(snapshot), timeout=10)
    for wave in (*waves, COMPLETE):
        if wave != at:
            delete_from_gateway(url, job=JOB, grouping_key={"wave": wave}, timeout=10)
