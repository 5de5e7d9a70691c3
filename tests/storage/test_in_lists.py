"""``IN`` lists bound as one parameter, on the test run's database (SQLite or PostgreSQL)."""

from __future__ import annotations

import sqlalchemy as sa

from conftest import tenant_connection
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage.in_lists import one_of

STORED = ["a", "b", "it's", 'say "hi"', "back\\slash", "ünï", "[1]", "%_", ""]
LISTS = [
    [],
    ["a"],
    ["a", "a", "zz"],
    STORED,
    ["nope", "it's", "ünï", "back\\slash"],
    [f"v{n}" for n in range(3000)] + ["b"],
]


def _stored(values: list[str]) -> sa.Subquery:
    rows = [sa.select(sa.literal(v, sa.Text).label("v")) for v in values]
    return sa.union_all(*rows).subquery("stored")


def test_one_of_finds_exactly_the_listed_values(runtime: Runtime, settings: Settings) -> None:
    table = _stored(STORED)
    with tenant_connection(settings, "tenant") as conn:
        for wanted in LISTS:
            query = sa.select(table.c.v).where(one_of(conn, table.c.v, wanted))
            assert {row.v for row in conn.execute(query)} == set(STORED) & set(wanted)


def test_one_statement_text_serves_lists_of_every_length(
    runtime: Runtime, settings: Settings
) -> None:
    table = _stored(["a"])
    with tenant_connection(settings, "tenant") as conn:
        texts = {
            str(sa.select(table.c.v).where(one_of(conn, table.c.v, wanted)).compile(conn))
            for wanted in LISTS
        }
    assert len(texts) == 1
