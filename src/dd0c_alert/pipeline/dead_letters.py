"""Replaying a dead letter: put its event back on the queue (a running worker takes
it from there) and mark the dead letter replayed. One function for the CLI, which
may replay any tenant's, and the dashboard, which may replay only its own."""

from __future__ import annotations

from dd0c_alert.storage.ports import IngestQueue, Store


def replay_dead_letter(
    store: Store, queue: IngestQueue, dead_letter_id: str, tenant_id: str | None = None
) -> str | None:
    """The replayed event's id; ``None`` when there is no such dead letter (or it is
    another tenant's, when ``tenant_id`` is given: the caller answers 404 alike)."""
    dead = store.get_dead_letter(dead_letter_id)
    if dead is None or (tenant_id is not None and dead.event.tenant_id != tenant_id):
        return None
    dead.event.attempts = 0
    queue.requeue(dead.event)
    store.mark_replayed(dead_letter_id)
    return dead.event.event_id
