"""Schema migrations: the revisions build exactly the tables the code defines, and bring an
existing database forward without losing a row — on SQLite and on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from typer.testing import CliRunner

from pipeline.app.cli import app
from pipeline.core.db import make_engine
from pipeline.core.migrations import SCRIPT_LOCATION, current_revision, declared_metadata, head_revision, upgrade_database
from pipeline.core.state import StateStore
from tests.support.messages import make_article, make_classified


def test_the_revisions_create_exactly_the_tables_the_code_defines(database_url):
    engine = make_engine(database_url)
    assert current_revision(engine) is None
    upgrade_database(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), declared_metadata())
    assert differences == [], "the tables the code defines differ from what the revisions build; write a revision for:\n" + "\n".join(map(str, differences))
    engine.dispose()


def first_release_database(engine) -> None:
    """A database as the first release left it: revision 0001's tables, made before Alembic
    kept a version (so no ``alembic_version`` table)."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(sa.text("DROP TABLE alembic_version"))


def test_a_database_made_before_migrations_is_brought_forward_with_its_rows(database_url, tmp_path):
    engine = make_engine(database_url)
    first_release_database(engine)
    story = make_classified(make_article("https://news.example/kept"))
    moment = story.classified_at
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO source_state (name, consecutive_failures) VALUES ('tass', 2)"))
        connection.execute(
            sa.text(
                "INSERT INTO alerts (id, article_id, url, source, title, summary, score, sectors, russian_parties, "
                "chinese_parties, evidence, fetched_at, alerted_at, written_at) VALUES (:id, :id, :url, 'tass', 'kept', "
                "'', 0.9, '[]', '[]', '[]', '[]', :moment, :moment, :moment)"
            ),
            {"id": story.id, "url": story.article.url, "moment": moment},
        )
    config = tmp_path / "amur.yaml"
    config.write_text(f"database_url: '{database_url}'\n")
    (tmp_path / "sources.yaml").write_text("sources: []\n")

    result = CliRunner().invoke(app, ["db", "upgrade", "--config", str(config)])

    assert result.exit_code == 0, result.output
    assert f"database at revision {head_revision()} (was empty)" in result.output
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        assert connection.execute(sa.select(declared_metadata().tables["source_state"].c.consecutive_failures)).scalar_one() == 2
        alerts = declared_metadata().tables["alerts"]
        kept = connection.execute(sa.select(alerts.c.url, alerts.c.version, alerts.c.outlets, alerts.c.story_at)).one()
        tags = declared_metadata().tables["alert_tags"]
        found_by = connection.execute(sa.select(tags.c.story_id, tags.c.kind, tags.c.value)).all()
    assert tuple(kept) == (story.article.url, 1, [], moment)  # an old alert was a story of one version
    assert found_by == [(story.id, "source", "tass")]  # and the dashboard finds it by its outlet
    again = CliRunner().invoke(app, ["db", "upgrade", "--config", str(config)])
    assert again.exit_code == 0 and again.output.strip() == f"database at revision {head_revision()}"
    engine.dispose()



def test_the_health_counters_start_from_the_seen_rows_already_there(database_url):
    engine = make_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0012")
        for number, (status, last_error) in enumerate([("emitted", None), ("emitted", None), ("emitted", "HTTP 500"), ("failed", "HTTP 404")]):
            connection.execute(sa.text(
                "INSERT INTO seen_articles (source, article_id, url, status, attempts, last_error, first_seen_at, updated_at) "
                "VALUES ('tass', :id, :url, :status, 1, :error, :moment, :moment)"
            ), {"id": f"{number:032x}", "url": f"https://tass.example/{number}", "status": status, "error": last_error,
                "moment": datetime(2024, 5, 1, number, tzinfo=UTC)})

    upgrade_database(engine)

    tallies = StateStore(engine).item_tallies()["tass"]
    assert {tally: found.count for tally, found in tallies.items()} == {"emitted": 2, "emitted without page": 1, "failed": 1}
    assert tallies["failed"].latest == datetime(2024, 5, 1, 3, tzinfo=UTC)
    engine.dispose()

MIGRATE_AT = """
import sys, time
from pipeline.core.db import make_engine
from pipeline.core.migrations import upgrade_database
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
upgrade_database(make_engine(sys.argv[1]))
"""


def test_processes_starting_together_migrate_once_and_none_waits_for_ever(database_url):
    """Five processes upgrade one empty database at the same moment, as the roles of a
    deployment do: while one builds an index CONCURRENTLY the others wait for the lock
    without holding it up, and all of them finish."""
    at = str(time.time() + 2)
    processes = [subprocess.Popen([sys.executable, "-c", MIGRATE_AT, database_url, at]) for _ in range(5)]
    codes = [process.wait(timeout=120) for process in processes]
    assert codes == [0] * 5
    assert current_revision(make_engine(database_url)) == head_revision()

def test_an_unreachable_database_is_a_clear_error(tmp_path):
    config = tmp_path / "amur.yaml"
    config.write_text("database_url: 'postgresql+psycopg://amur@127.0.0.1:9/amur'\n")
    (tmp_path / "sources.yaml").write_text("sources: []\n")
    result = CliRunner().invoke(app, ["db", "upgrade", "--config", str(config)])
    assert result.exit_code == 1
    assert "error: database postgresql+psycopg://amur@127.0.0.1:9/amur: OperationalError" in result.output
