"""Trigger rules: when a task may run given its upstream states (the Airflow names and meanings).

``decide`` returns ``"run"``, ``"wait"`` (some upstream still pending), or the terminal state the task
takes without running: ``"upstream_failed"`` or ``"skipped"``.
"""

from __future__ import annotations

from collections.abc import Iterable

FAILED = frozenset({"failed", "upstream_failed"})
DONE = frozenset({"success", "failed", "skipped", "upstream_failed"})


def decide(rule: str, upstream_states: Iterable[str]) -> str:
    states = list(upstream_states)
    if not states:
        return "run"
    done = [s for s in states if s in DONE]
    all_done = len(done) == len(states)
    if rule == "all_success":
        if any(s in FAILED for s in done):
            return "upstream_failed"
        if not all_done:
            return "wait"
        return "skipped" if any(s == "skipped" for s in done) else "run"
    if rule == "all_done":
        return "run" if all_done else "wait"
    if rule == "none_failed":
        if any(s in FAILED for s in done):
            return "upstream_failed"
        return "run" if all_done else "wait"
    if rule == "one_success":
        if "success" in done:
            return "run"
        return "upstream_failed" if all_done else "wait"
    if rule == "one_failed":
        if any(s in FAILED for s in done):
            return "run"
        return "skipped" if all_done else "wait"
    raise ValueError(f"unknown trigger rule {rule!r}")
