"""Multi-row inserts for the worker's hot path.

On MySQL/MariaDB through PyMySQL, ``executemany`` escapes every value through the driver's
generic per-value dispatch, and SQLAlchemy processes every row's parameters first: together
about three quarters of the worker's CPU time per event (measured, see BENCHMARKS.md). Here
the statement head comes from the same Core (dialect) insert, and the rows are rendered as
one ``VALUES (...), (...)`` list with type-specific literals and the driver's own string
escaping (honouring the server's ``NO_BACKSLASH_ESCAPES`` mode). Every other backend or
driver takes the plain Core ``executemany`` path, which means the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Insert, Table

# Rows per statement: ~300 bytes each stays far below max_allowed_packet (16 MiB default).
ROWS_PER_STATEMENT = 2000

Literal = Callable[[object], str]


def _pymysql_string_escaper(conn: Connection) -> Callable[[str], str] | None:
    if conn.dialect.name != "mysql" or conn.dialect.driver != "pymysql":
        return None
    from pymysql.constants import SERVER_STATUS
    from pymysql.converters import escape_string

    raw: Any = conn.connection.dbapi_connection
    if int(getattr(raw, "server_status", 0)) & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES:
        return lambda s: s.replace("'", "''")
    return escape_string


def _literal_renderer(escape: Callable[[str], str]) -> Literal:
    def literal(value: object) -> str:
        # Exact type checks first: they are the common case and the cheapest.
        kind = type(value)
        if kind is int:
            return str(value)
        if kind is str:
            return "'" + escape(value) + "'"  # type: ignore[arg-type]
        if value is None:
            return "NULL"
        if isinstance(value, datetime):
            # Stored as naive UTC, like shared.db.base.UTCDateTime does.
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            return "'" + value.astimezone(UTC).replace(tzinfo=None).isoformat(" ") + "'"
        if isinstance(value, list):
            if all(type(v) is int for v in value):
                # What json.dumps writes for a list of ints, without its generic machinery.
                return "'[" + ", ".join(map(str, value)) + "]'"
            return "'" + escape(json.dumps(value)) + "'"
        if isinstance(value, bool | int):
            return str(int(value))
        raise TypeError(f"no literal for {kind.__name__}")

    return literal


def _render_column(values: list[Any], literal: Literal, escape: Callable[[str], str]) -> list[str]:
    """SQL literals of one column's values. A column of only ints or only strings (the
    common case) is rendered in one sweep, without a Python call per value for ints."""
    kinds = set(map(type, values))
    if kinds == {int}:
        return list(map(str, values))
    if kinds == {str}:
        return ["'" + escape(v) + "'" for v in values]
    return [literal(v) for v in values]


def insert_rows(
    conn: Connection, stmt: Insert, table: Table, rows: Sequence[dict[str, Any]]
) -> int:
    """Execute ``stmt`` (a Core insert into ``table``, possibly a dialect variant such as
    ``INSERT IGNORE``) for ``rows``; returns the number of rows the database reports
    inserted."""
    if not rows:
        return 0
    escape = _pymysql_string_escaper(conn)
    if escape is None:
        return int(conn.execute(stmt, list(rows)).rowcount)
    # The compiled statement lists the columns in table order; render values in that order.
    columns = [c.key for c in table.columns if c.key in rows[0]]
    compiled = stmt.compile(dialect=conn.dialect, column_keys=columns)
    if set(compiled.params) != set(columns) or len(columns) != len(rows[0]):
        # Column defaults or unknown keys: let Core handle what it adds itself.
        return int(conn.execute(stmt, list(rows)).rowcount)
    sql = str(compiled)
    head = sql[: sql.rindex(" VALUES ")] + " VALUES "
    literal = _literal_renderer(escape)
    written = 0
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        rendered = [_render_column([row[c] for row in chunk], literal, escape) for c in columns]
        values = ",".join("(" + ",".join(parts) + ")" for parts in zip(*rendered, strict=True))
        # no_parameters: the driver must not %-format a statement that carries its values.
        result = conn.exec_driver_sql(head + values, execution_options={"no_parameters": True})
        written += int(result.rowcount)
    return written
