"""``IN`` lists bound as one parameter, so a query has one SQL text whatever the length.

SQLAlchemy writes ``IN (?, ?, ...)`` with one placeholder per value, so every list
length is another SQL text: another statement for SQLite to prepare, another entry in
the driver's statement cache (128 per connection), whose older entries it pushes out.
The worker asks by the fingerprints of each batch, whose sizes vary with the load: the
process grew with the sizes it had seen. Padding the lists to powers of two bounded the
texts, but SQLAlchemy still rendered every value into the text on each execution (a
tenth of reading a batch's history). Bound as one value (a JSON array that SQLite's
``json_each`` reads, a ``text[]`` for PostgreSQL's ``= ANY``), the statement is
compiled once and cached like any other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


def bound_list(conn: sa.Connection, values: Iterable[str]) -> Any:
    """``values`` as one parameter: JSON text for SQLite, a list for PostgreSQL."""
    if conn.dialect.name == "sqlite":
        return orjson.dumps(list(values)).decode()
    return list(values)


def one_of(
    conn: sa.Connection, column: sa.ColumnElement[Any], values: Iterable[str]
) -> sa.ColumnElement[bool]:
    """``column IN values``, the list bound as one parameter (:func:`bound_list`)."""
    listed = bound_list(conn, values)
    if conn.dialect.name == "sqlite":
        return column.in_(sa.select(sa.column("value")).select_from(sa.func.json_each(listed)))
    return column == sa.any_(sa.bindparam(None, listed, type_=postgresql.ARRAY(sa.Text)))
