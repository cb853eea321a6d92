"""Databases for tests: each test gets an empty SQLite file or an empty PostgreSQL schema.

PostgreSQL comes from ``AMUR_TEST_POSTGRES_URL`` (``scripts/postgres-dev`` starts one); when it
is unset the PostgreSQL cases skip, unless ``AMUR_REQUIRE_POSTGRES=1`` (CI), where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa


def _postgres_url() -> str:
    url = os.environ.get("AMUR_TEST_POSTGRES_URL")
    if url:
        return url
    message = "PostgreSQL not configured: run scripts/postgres-dev start and export AMUR_TEST_POSTGRES_URL"
    if os.environ.get("AMUR_REQUIRE_POSTGRES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def postgres_schema_url(base: str | None = None, prefix: str = "test") -> Iterator[str]:
    """The URL of a fresh schema (dropped afterwards) of the server at ``base``, by default the
    test server; other processes can use it."""
    base = base or _postgres_url()
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'amur.sqlite'}"
        return
    with postgres_schema_url() as url:
        yield url
