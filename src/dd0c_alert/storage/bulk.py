"""Many-row writes for the worker's batch, without SQLAlchemy's per-row parameter work.

``Connection.execute(insert, rows)`` builds, for every row, a parameter dict from the
compiled statement and then runs each value's type processor through generic
machinery. A storm batch inserts an alert, a decision and a daily-count row per
alert, and that per-row work was about a sixth of the worker's time on SQLite. Here
the statement is compiled once per (statement, dialect, columns), each column's
processor is looked up once, and the rows go to the driver as tuples.

On SQLite only: the driver call is local and cheap, so SQLAlchemy's share is large.
On PostgreSQL the round trips dominate, and the usual path stays.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

#: A placeholder's position and the processor its value goes through.
_Step = tuple[int, Callable[[Any], Any]]


def execute_many(
    conn: sa.Connection, statement: sa.Insert | sa.Update, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Execute ``statement`` once per row: an INSERT (with or without ON CONFLICT), or
    an UPDATE whose values and conditions are ``bindparam``s named by the row keys.

    Every row has the keys of the first, as ``Connection.execute`` requires. The
    statement should be built once (a module constant, or cached): compiled plans are
    kept per statement object.
    """
    if not rows:
        return
    plan = _plan(statement, conn.dialect, tuple(rows[0])) if conn.dialect.name == "sqlite" else None
    if plan is None:
        conn.execute(statement, list(rows))
        return
    sql, values_of, processors = plan
    parameters = []
    for row in rows:
        values = list(values_of(row))
        for position, process in processors:
            values[position] = process(values[position])
        parameters.append(tuple(values))
    conn.exec_driver_sql(sql, parameters)


#: Bounded: a statement built per call instead of once would otherwise grow it forever.
@functools.lru_cache(maxsize=256)
def _plan(
    statement: sa.Insert | sa.Update, dialect: sa.Dialect, keys: tuple[str, ...]
) -> tuple[str, Callable[[Mapping[str, Any]], Sequence[Any]], tuple[_Step, ...]] | None:
    """The positional SQL, what reads a row's values in placeholder order (one C call,
    ``itemgetter``), and the positions whose value needs a processor (times, JSON);
    None when a placeholder is not one of ``keys`` (a column default SQLAlchemy fills
    in)."""
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    names = compiled.positiontup
    if names is None or not set(names) <= set(keys):
        return None
    getter = operator.itemgetter(*names)
    values_of = getter if len(names) > 1 else lambda row: (getter(row),)
    processors = tuple(
        (position, process)
        for position, name in enumerate(names)
        if (process := compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
    )
    return compiled.string, values_of, processors


def insert_ignoring_duplicates(
    conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert ``rows``, skipping those whose key is already stored."""
    execute_many(conn, _ignoring(table, conn.dialect.name), rows)


def upsert_adding(
    conn: sa.Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    counters: Sequence[str],
    replace: Sequence[str] = (),
    key: Sequence[str] = (),
) -> None:
    """Insert ``rows``; on a conflict on ``key`` (the primary key unless given) add
    their ``counters`` to the stored ones and overwrite the ``replace`` columns."""
    statement = _adding(table, conn.dialect.name, tuple(counters), tuple(replace), tuple(key))
    execute_many(conn, statement, rows)


# Built once per table and dialect: ``execute_many`` keeps its plans per statement.
@functools.cache
def _ignoring(table: sa.Table, dialect_name: str) -> sa.Insert:
    statement: sa.Insert = _insert(dialect_name, table).on_conflict_do_nothing()
    return statement


@functools.cache
def _adding(
    table: sa.Table,
    dialect_name: str,
    counters: tuple[str, ...],
    replace: tuple[str, ...],
    key: tuple[str, ...],
) -> sa.Insert:
    insert = _insert(dialect_name, table)
    keys = list(key) or [c.name for c in table.primary_key.columns]
    updates: dict[str, Any] = {c: table.c[c] + insert.excluded[c] for c in counters}
    updates |= {c: insert.excluded[c] for c in replace}
    statement: sa.Insert = insert.on_conflict_do_update(index_elements=keys, set_=updates)
    return statement


def _insert(dialect_name: str, table: sa.Table) -> Any:
    """The dialect's INSERT, the one with ON CONFLICT (both spell it alike)."""
    return (postgresql if dialect_name == "postgresql" else sqlite).insert(table)
