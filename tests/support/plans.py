"""What the database plans to do for a statement, with its values bound as the application
binds them (a literal can change the plan: SQLite plans an OR with a literal source one way,
with a bound one another)."""

from __future__ import annotations

import sqlalchemy as sa


def query_plan(connection: sa.Connection, statement: sa.Executable) -> str:
    """The plan of ``statement``, one line per step. On PostgreSQL sequential scans are
    discouraged first: a test table is tiny, and the question is whether an index can serve."""
    compiled = statement.compile(connection, compile_kwargs={"render_postcompile": True})
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        rows = connection.exec_driver_sql(f"EXPLAIN {compiled}", dict(compiled.params)).scalars()
        return "\n".join(rows)
    values = tuple(compiled.params[name] for name in compiled.positiontup)
    return "\n".join(row[3] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", values))
