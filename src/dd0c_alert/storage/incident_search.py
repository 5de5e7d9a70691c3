"""Incident search: one document per incident, written with the incident.

Searching used to run ``LIKE`` over the labels of every alert of every incident
through a join: seconds at 200,000 alerts. Now each live incident has a row in
``incident_search`` whose ``text`` holds lower-cased terms: its title and services,
then the distinct label names and values of its alerts, each term apart (``SEP``), so
a query matches inside one title, service, label name or value, as it did before. The
worker writes the row in its batch transaction when it changed; merge and split
rewrite it in theirs.

The index is a trigram one, because users type pieces of things (``check-2`` inside
``db-check-2``, half an instance name) that no word tokenizer finds: SQLite's FTS5
``trigram`` tokenizer (``incident_search_fts``, kept by triggers) and PostgreSQL's
``pg_trgm`` GIN index. Both serve as a filter for needles of three characters or more;
the stored text decides (``instr`` on SQLite, ``LIKE`` on PostgreSQL), so answers are
exact.

A query scans the newest ``SCAN_FIRST`` incidents first: a common term fills the page
there at once, where its index entries would list most of the tenant. Only a rarer
term goes on to the index, whose entries are then few.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from dd0c_alert.correlation.dedup import FoldResult
from dd0c_alert.correlation.engine import EngineState
from dd0c_alert.correlation.model import Decision, IncidentState

from . import schema as t
from .bulk import upsert_adding

#: Between terms, and between the title and services and the label terms. Neither is
#: typed in a search box; a needle holding one matches nothing.
SEP, LABELS = "\x1f", "\x1e"
#: A document keeps at most this many characters: an incident of a storm whose alerts
#: each carry their own instance label keeps the first ones it saw.
MAX_CHARS = 16_000
MAX_TITLE = 2_000
NEARLY_FULL = 64
#: Incidents a query reads newest first before it turns to the index.
SCAN_FIRST = 10_000
#: Index candidates beyond this many: the term is common after all; scan instead.
MAX_CANDIDATES = 5_000


def clean(term: str) -> str:
    return term.lower().replace(SEP, " ").replace(LABELS, " ")


def label_terms(text: str | None) -> list[str]:
    """The label names and values a stored document holds, in the order first seen."""
    if not text or LABELS not in text:
        return []
    tail = text.split(LABELS, 1)[1]
    return tail.split(SEP) if tail else []


def names_and_values(labels: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    for one in labels:
        for key, value in one.items():
            yield clean(str(key))
            yield clean(str(value))


def add_terms(terms: list[str], more: Iterable[str]) -> None:
    """Append the terms of ``more`` not yet in ``terms``, as long as the document stays
    within ``MAX_CHARS``. A document within ``NEARLY_FULL`` of it takes no more: a storm
    incident's fills in its first batches, and trying each later alert's every label
    on it cost a twentieth of the worker's time per alert."""
    seen = set(terms)
    size = sum(len(x) + 1 for x in terms)
    for term in more:
        if size > MAX_CHARS - NEARLY_FULL:
            break
        if term and term not in seen and size + len(term) + 1 <= MAX_CHARS:
            seen.add(term)
            terms.append(term)
            size += len(term) + 1


def document(title: str, services: Iterable[str], labels: Sequence[str]) -> str:
    head = SEP.join([clean(title[:MAX_TITLE]), *sorted(clean(s) for s in services)])
    room = MAX_CHARS - len(head) - 1
    kept: list[str] = []
    for term in labels:
        room -= len(term) + 1
        if room < 0:
            break
        kept.append(term)
    return head + LABELS + SEP.join(kept)


def rebuilt(title: str, services: Iterable[str], labels: Iterable[Mapping[str, Any]]) -> str:
    """The document of an incident with these alerts' labels."""
    terms: list[str] = []
    add_terms(terms, names_and_values(labels))
    return document(title, services, terms)


def merged(conn: sa.Connection, tenant_id: str, into: IncidentState, gone: str) -> None:
    """``gone`` was merged into the incident ``into`` (its state): one document holds
    both incidents' label terms."""
    old = stored(conn, tenant_id, [into.id, gone])
    terms = label_terms(old.get(into.id))
    add_terms(terms, label_terms(old.get(gone)))
    write(conn, tenant_id, {into.id: document(into.title, into.services, terms)})
    forget(conn, tenant_id, [gone])


def stored(conn: sa.Connection, tenant_id: str, incident_ids: Iterable[str]) -> dict[str, str]:
    s = t.incident_search
    ids = sorted(set(incident_ids))
    found: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        rows = conn.execute(
            sa.select(s.c.incident_id, s.c.text).where(
                s.c.tenant_id == tenant_id, s.c.incident_id.in_(ids[start : start + 500])
            )
        )
        found.update({row.incident_id: row.text for row in rows})
    return found


def write(conn: sa.Connection, tenant_id: str, documents: Mapping[str, str]) -> None:
    """Insert or replace the documents of these incidents."""
    if not documents:
        return
    upsert_adding(
        conn,
        t.incident_search,
        [{"tenant_id": tenant_id, "incident_id": k, "text": v} for k, v in documents.items()],
        counters=(),
        replace=("text",),
        key=("tenant_id", "incident_id"),
    )


def forget(conn: sa.Connection, tenant_id: str, incident_ids: Sequence[str]) -> None:
    s = t.incident_search
    conn.execute(s.delete().where(s.c.tenant_id == tenant_id, s.c.incident_id.in_(incident_ids)))


def save_batch(
    conn: sa.Connection, state: EngineState, pairs: Sequence[tuple[FoldResult, Decision]]
) -> None:
    """The documents of the incidents a worker batch changed or gave alerts to: each
    keeps its label terms, gains those of its new alerts and of the incidents merged
    into it, and takes its current title and services. Only changed rows are written;
    incidents merged away lose theirs (search leaves them out anyway)."""
    labels: dict[str, list[Mapping[str, str]]] = {}
    for fold, _ in pairs:
        if fold.record.incident_id:
            labels.setdefault(fold.record.incident_id, []).append(fold.record.alert.labels)
    for incident_id in state.touched:
        if state.incidents[incident_id].merged_into is None:
            labels.setdefault(incident_id, [])
    absorbed: dict[str, list[str]] = {}
    for merged, first in state.merges.items():
        live = first
        for _ in range(len(state.merges)):
            live = state.merges.get(live, live)
        absorbed.setdefault(live, []).append(merged)
    old = stored(conn, state.tenant_id, [*labels, *state.merges])
    documents: dict[str, str] = {}
    for incident_id, alerts in labels.items():
        incident = state.incidents[incident_id]
        if incident.merged_into is not None:
            continue
        terms = label_terms(old.get(incident_id))
        for merged in absorbed.get(incident_id, []):
            add_terms(terms, label_terms(old.get(merged)))
        add_terms(terms, names_and_values(alerts))
        text = document(incident.title, incident.services, terms)
        if text != old.get(incident_id):
            documents[incident_id] = text
    write(conn, state.tenant_id, documents)
    gone = [x for x in state.merges if x in old]
    if gone:
        forget(conn, state.tenant_id, gone)


# --------------------------------------------------------------------------- queries


def _contains(conn: sa.Connection, needle: str) -> sa.ColumnElement[bool]:
    """The stored text holds ``needle`` (both lower-cased), exactly."""
    text = t.incident_search.c.text
    if conn.dialect.name == "postgresql":
        # Backslash is PostgreSQL's default LIKE escape; pg_trgm's index reads it.
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return text.like(f"%{escaped}%")
    return sa.func.instr(text, needle) > 0


def _candidates(conn: sa.Connection, tenant_id: str, needle: str, below: str) -> sa.Select[Any]:
    """Incidents older than ``below`` whose document holds ``needle``, found by the
    trigram index."""
    s = t.incident_search
    query = sa.select(s.c.incident_id).where(
        s.c.tenant_id == tenant_id, s.c.incident_id < below, _contains(conn, needle)
    )
    if conn.dialect.name == "postgresql":
        return query
    # FTS5 gets a pattern without escapes (it takes none): each ``%`` or ``_`` of the
    # needle becomes ``_``, any one character, so it finds a superset; instr decides.
    pattern = "%" + needle.replace("%", "_") + "%"
    fts = sa.text("SELECT rowid FROM incident_search_fts WHERE text LIKE :pattern").bindparams(
        pattern=pattern
    )
    return query.where(s.c.seq.in_(fts))


def search(
    conn: sa.Connection,
    tenant_id: str,
    query: sa.Select[Any],
    needle: str,
    wanted: int,
    below: str | None,
) -> list[Any]:
    """The first ``wanted`` rows of ``query`` (the tenant's incidents, filtered, older
    than the cursor ``below``), newest first, whose document holds ``needle``."""
    i, s = t.incidents, t.incident_search
    needle = needle.lower()
    if SEP in needle or LABELS in needle:
        return []
    has = sa.exists().where(
        s.c.tenant_id == tenant_id, s.c.incident_id == i.c.id, _contains(conn, needle)
    )
    newest = query.order_by(i.c.id.desc())
    recent = sa.select(i.c.id).where(i.c.tenant_id == tenant_id)
    if below is not None:
        recent = recent.where(i.c.id < below)
    floor = conn.execute(recent.order_by(i.c.id.desc()).offset(SCAN_FIRST - 1).limit(1)).scalar()
    if floor is None:
        return list(conn.execute(newest.where(has).limit(wanted)))
    rows = list(conn.execute(newest.where(has, i.c.id >= floor).limit(wanted)))
    if len(rows) >= wanted:
        return rows
    more = wanted - len(rows)
    ids = list(
        conn.execute(
            _candidates(conn, tenant_id, needle, floor).limit(MAX_CANDIDATES + 1)
        ).scalars()
    )
    if len(ids) > MAX_CANDIDATES:
        return rows + list(conn.execute(newest.where(has, i.c.id < floor).limit(more)))
    if not ids:
        return rows
    return rows + list(conn.execute(newest.where(i.c.id.in_(ids)).limit(more)))
