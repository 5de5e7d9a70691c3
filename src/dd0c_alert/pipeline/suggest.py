"""The suggestion job (design §6.9): read a tenant's history, let the pure core propose,
store the proposals for a person to accept or dismiss (scheduled by ``pipeline.cron``)."""

from __future__ import annotations

from datetime import UTC, datetime

from dd0c_alert.correlation.suggestions import Suggestion, suggest
from dd0c_alert.storage.ports import Store, SuggestionVerdict


def run_suggestions(store: Store, tenant_id: str, now: datetime | None = None) -> list[Suggestion]:
    """Compute one tenant's suggestions from its history and upsert them; return what
    the history supports now (stored ones a person already decided stay decided)."""
    now = now or datetime.now(UTC)
    settings, rules = store.tenant_config(tenant_id)
    found = suggest(store.suggestion_history(tenant_id, now), settings, rules)
    store.save_suggestions(tenant_id, found, now)
    return found


def accept(store: Store, tenant_id: str, suggestion_id: str) -> SuggestionVerdict | None:
    return store.accept_suggestion(tenant_id, suggestion_id, datetime.now(UTC))


def dismiss(store: Store, tenant_id: str, suggestion_id: str) -> SuggestionVerdict | None:
    return store.dismiss_suggestion(tenant_id, suggestion_id, datetime.now(UTC))
