"""The connectors' state store, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy.exc

from pipeline.core.db import make_engine
from pipeline.core.messages import article_id
from pipeline.core.state import EMITTED, EMITTED_WITHOUT_PAGE, FAILED, MAX_ERROR_CHARS, SourceState, StateStore, done_rows, seen_articles
from tests.support.messages import backdate_emissions
from tests.support.plans import query_plan

NEXT = datetime(2024, 5, 14, 5, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def store(database_url):
    engine = make_engine(database_url)
    store = StateStore(engine)
    store.setup()
    yield store
    engine.dispose()


def ids(*names: str) -> list[str]:
    return [article_id(f"https://courier.example/{name}") for name in names]


# --- source state ----------------------------------------------------------------------------


def test_setup_is_idempotent(store):
    store.setup()
    assert store.health() == []


def test_unknown_source_has_defaults(store):
    assert store.get("valley-courier") == SourceState(name="valley-courier")


def test_success_keeps_validators_and_schedule(store):
    before = datetime.now(UTC)
    store.record_success("valley-courier", '"v1"', "Tue, 14 May 2024 04:30:00 GMT", NEXT)

    state = store.get("valley-courier")

    assert (state.etag, state.last_modified, state.next_poll_at) == ('"v1"', "Tue, 14 May 2024 04:30:00 GMT", NEXT)
    assert state.consecutive_failures == 0 and state.last_error is None
    assert state.last_success_at == state.last_polled_at
    assert state.last_polled_at.tzinfo == UTC and state.last_polled_at >= before - timedelta(seconds=1)


def test_failures_count_up_keep_validators_and_reset_on_success(store):
    store.record_success("valley-courier", '"v1"', None, NEXT)
    first_success = store.get("valley-courier").last_success_at

    store.record_failure("valley-courier", "https://courier.example/rss: HTTP 503 Service Unavailable", NEXT)
    after = store.record_failure("valley-courier", "https://courier.example/rss: read timeout", NEXT + timedelta(hours=1))

    assert after == store.get("valley-courier")
    assert after.consecutive_failures == 2
    assert after.last_error == "https://courier.example/rss: read timeout"
    assert after.etag == '"v1"'
    assert after.last_success_at == first_success
    assert after.next_poll_at == NEXT + timedelta(hours=1)

    store.record_success("valley-courier", '"v2"', None, NEXT)
    assert store.get("valley-courier").consecutive_failures == 0
    assert store.get("valley-courier").last_error is None


def test_failure_of_a_source_never_polled(store):
    state = store.record_failure("new-source", "connection refused", NEXT)

    assert (state.consecutive_failures, state.last_success_at, state.etag) == (1, None, None)


def test_set_validators(store):
    store.record_success("valley-courier", None, None, NEXT)

    store.set_validators("valley-courier", '"v9"', "Wed, 15 May 2024 10:00:00 GMT")
    assert (store.get("valley-courier").etag, store.get("valley-courier").last_modified) == ('"v9"', "Wed, 15 May 2024 10:00:00 GMT")

    store.set_validators("valley-courier", None, None)
    assert store.get("valley-courier").etag is None


def test_health_lists_every_source_by_name(store):
    store.record_success("zeta-news", None, None, NEXT)
    store.record_failure("alpha-news", "HTTP 404 Not Found", NEXT)

    assert [(state.name, state.consecutive_failures) for state in store.health()] == [("alpha-news", 1), ("zeta-news", 0)]


def test_naive_datetimes_are_refused(store):
    with pytest.raises(sqlalchemy.exc.StatementError, match="naive datetime"):
        store.record_success("valley-courier", None, None, datetime(2024, 5, 14, 5, 0))


def test_long_errors_are_cut(store):
    state = store.record_failure("valley-courier", "x" * 10_000, NEXT)

    assert len(state.last_error) == MAX_ERROR_CHARS
    assert len(store.get("valley-courier").last_error) == MAX_ERROR_CHARS


# --- seen articles -----------------------------------------------------------------------------


def test_new_ids_are_unseen_and_emitted_ones_are_not(store):
    ferry, grain, school = ids("ferry", "grain", "school")

    assert store.unseen("valley-courier", [ferry, grain, school]) == {ferry, grain, school}
    store.mark_emitted("valley-courier", [(ferry, "https://courier.example/ferry"), (grain, "https://courier.example/grain")])

    assert store.unseen("valley-courier", [ferry, grain, school]) == {school}
    assert store.unseen("other-source", [ferry, school]) == {school}  # emitted once, whoever listed it
    assert store.unseen("valley-courier", []) == set()



def test_the_seen_lookup_reads_one_index_entry_per_id(store):
    """Not a timing: the plan, for a listing of 50 ids (the planner weighs a long IN list
    against other indexes). Each id is looked up in the article index; nothing reads a
    source's other rows, whose number grows with the store."""
    emitted_at = datetime(2024, 5, 1, tzinfo=UTC)
    with store.engine.begin() as connection:
        connection.execute(seen_articles.insert(), [
            {"source": f"source-{number % 5}", "article_id": article_id(f"https://courier.example/{number}"),
             "url": f"https://courier.example/{number}", "status": "emitted", "first_seen_at": emitted_at, "updated_at": emitted_at}
            for number in range(5_000)
        ])
        if connection.dialect.name == "postgresql":
            connection.execute(sqlalchemy.text("ANALYZE"))  # as autovacuum does; Amur never analyses SQLite
    listing = ids(*(f"story-{number}" for number in range(50)))
    with store.engine.begin() as connection:
        plan = query_plan(connection, done_rows(listing))
    assert "ix_seen_articles_done" in plan, plan
    assert "ix_seen_articles_source_emissions" not in plan and "Seq Scan" not in plan, plan
    assert not any(step.startswith(("SCAN", "MULTI-INDEX OR")) for step in plan.splitlines()), plan

def test_a_failure_stays_the_source_s_own(store):
    [broken] = ids("broken")
    store.record_item_failure("valley-courier", broken, "https://courier.example/broken", "HTTP 404", permanent=True)
    assert store.unseen("valley-courier", [broken]) == set()
    assert store.unseen("other-source", [broken]) == {broken}  # its link may work there


def test_retryable_failures_are_retried_until_max_attempts(store):
    [ferry] = ids("ferry")

    assert store.record_item_failure("valley-courier", ferry, "https://courier.example/ferry", "HTTP 503", permanent=False) is False
    assert store.unseen("valley-courier", [ferry]) == {ferry}
    assert store.record_item_failure("valley-courier", ferry, "https://courier.example/ferry", "read timeout", permanent=False) is False
    assert store.item_statuses("valley-courier") == {ferry: "retrying"}

    assert store.record_item_failure("valley-courier", ferry, "https://courier.example/ferry", "HTTP 503", permanent=False) is True
    assert store.unseen("valley-courier", [ferry]) == set()
    assert store.item_statuses("valley-courier") == {ferry: "failed"}


def test_permanent_failure_gives_up_at_once(store):
    [gone] = ids("gone")

    assert store.record_item_failure("valley-courier", gone, "https://courier.example/gone", "HTTP 404", permanent=True) is True
    assert store.unseen("valley-courier", [gone]) == set()


def test_max_attempts_is_a_parameter(store):
    [ferry] = ids("ferry")
    for _ in range(4):
        assert store.record_item_failure("valley-courier", ferry, "u", "HTTP 503", permanent=False, max_attempts=5) is False
    assert store.record_item_failure("valley-courier", ferry, "u", "HTTP 503", permanent=False, max_attempts=5) is True


def test_retried_article_that_succeeds_is_emitted(store):
    [ferry] = ids("ferry")
    store.record_item_failure("valley-courier", ferry, "https://courier.example/ferry", "HTTP 503", permanent=False)

    store.mark_emitted("valley-courier", [(ferry, "https://courier.example/ferry")])

    assert store.item_statuses("valley-courier") == {ferry: "emitted"}
    assert store.unseen("valley-courier", [ferry]) == set()


def test_a_failure_after_emission_changes_nothing(store):
    [ferry] = ids("ferry")
    store.mark_emitted("valley-courier", [(ferry, "https://courier.example/ferry")])

    assert store.record_item_failure("valley-courier", ferry, "https://courier.example/ferry", "HTTP 404", permanent=True) is False
    assert store.item_statuses("valley-courier") == {ferry: "emitted"}


def test_emitting_twice_is_harmless(store):
    [ferry] = ids("ferry")
    pair = (ferry, "https://courier.example/ferry")

    store.mark_emitted("valley-courier", [pair, pair])
    store.mark_emitted("valley-courier", [pair])
    store.mark_emitted("valley-courier", [])

    assert store.item_statuses("valley-courier") == {ferry: "emitted"}


def test_many_ids_at_once(store):
    many = ids(*(f"story-{n}" for n in range(1_200)))
    store.mark_emitted("valley-courier", [(key, f"https://courier.example/{key}") for key in many[:700]])

    assert store.unseen("valley-courier", many) == set(many[700:])


def test_the_usual_gap_is_the_median_gap_between_polls_that_brought_something_new(store):
    now = datetime.now(UTC)
    hours = [34, 30, 26, 22, 18]  # a new article every 4 h, the last one 18 h ago
    moments = [now - timedelta(hours=h) for h in hours] + [now - timedelta(hours=18, seconds=5)]  # two in one poll
    backdate_emissions(store, "quiet", moments)
    silence = store.silence("quiet", poll_interval_seconds=600)
    assert silence.usual_gap == timedelta(hours=4)
    assert silence.is_silent(now, 600)  # 18 h without news, four times the usual gap is 16 h
    assert not silence.is_silent(now - timedelta(hours=4), 600)
    assert not silence.is_silent(now, poll_interval_seconds=6 * 3600)  # polled every 6 h: 24 h is the bar
    assert store.silence("never-published", 600) is None
    backdate_emissions(store, "young", [now - timedelta(hours=2), now - timedelta(hours=1)])
    assert store.silence("young", 600) is None  # no usual gap yet
    # Health reads every source's at once, each with its own interval and its own newest rows.
    assert store.silences({"quiet": 600, "never-published": 600, "young": 600}) == {
        "quiet": silence, "never-published": None, "young": None,
    }
    assert store.silences({"quiet": 6 * 3600}) == {"quiet": None}  # polled every 6 h, 4 h apart is one poll


# --- retention ---------------------------------------------------------------------------------------


def age_rows(store, moment, *, listed=None) -> None:
    import sqlalchemy as sa

    from pipeline.core.state import seen_articles

    with store.engine.begin() as connection:
        connection.execute(sa.update(seen_articles).values(first_seen_at=moment, updated_at=moment, last_listed_at=listed))


def test_the_retention_forgets_only_what_no_listing_still_shows(database_url):
    store = StateStore(make_engine(database_url), retention=timedelta(days=30))
    store.setup()
    old, listed, recent = ids("old", "still-listed", "recent")
    store.mark_emitted("valley-courier", [(old, "https://courier.example/old"), (listed, "https://courier.example/still-listed")])
    age_rows(store, datetime.now(UTC) - timedelta(days=45))
    store.mark_listed([listed])  # the feed still shows it
    store.mark_emitted("valley-courier", [(recent, "https://courier.example/recent")])

    assert store.forget_old() == 1
    assert store.unseen("valley-courier", [old, listed, recent]) == {old}
    assert store.forget_old() == 0


def test_without_a_retention_nothing_is_forgotten(store):
    [old] = ids("old")
    store.mark_emitted("valley-courier", [(old, "https://courier.example/old")])
    age_rows(store, datetime(2001, 1, 1, tzinfo=UTC))
    assert store.forget_old() == 0 and store.unseen("valley-courier", [old]) == set()


def counted_by_scanning(store) -> dict[str, dict[str, int]]:
    """The tallies as every seen row says them, the slow way."""
    counts: dict[str, dict[str, int]] = {}
    with store.engine.connect() as connection:
        for source, status, last_error in connection.execute(
            sqlalchemy.select(seen_articles.c.source, seen_articles.c.status, seen_articles.c.last_error)
        ):
            tally = EMITTED_WITHOUT_PAGE if status == EMITTED and last_error else status
            counts.setdefault(source, {}).setdefault(tally, 0)
            counts[source][tally] += 1
    return counts


def test_health_counts_follow_every_change_of_an_article(database_url):
    """Health reads counters, not the seen rows: they follow each article from retrying to
    emitted or failed, a page failure, a source of its own, and the retention's deletions."""
    store = StateStore(make_engine(database_url), retention=timedelta(days=30))
    store.setup()
    ferry, grain, school, museum, clinic = ids("ferry", "grain", "school", "museum", "clinic")
    store.mark_emitted("valley-courier", [(ferry, "https://courier.example/ferry"), (grain, "https://courier.example/grain")])
    store.record_item_failure("valley-courier", school, "https://courier.example/school", "HTTP 503", permanent=False)
    store.record_item_failure("valley-courier", museum, "https://courier.example/museum", "HTTP 503", permanent=False)
    store.record_item_failure("valley-courier", museum, "https://courier.example/museum", "HTTP 404", permanent=True)
    store.mark_emitted("valley-courier", [(school, "https://courier.example/school")])  # the retry worked
    store.mark_emitted("river-wire", [(clinic, "https://wire.example/clinic")], page_error="HTTP 500")
    store.mark_emitted("valley-courier", [(ferry, "https://courier.example/ferry")])  # emitted twice: one article

    tallies = store.item_tallies()
    assert {source: {tally: t.count for tally, t in by.items()} for source, by in tallies.items()} == counted_by_scanning(store) == {
        "valley-courier": {EMITTED: 3, FAILED: 1}, "river-wire": {EMITTED_WITHOUT_PAGE: 1},
    }
    assert tallies["valley-courier"][EMITTED].latest >= tallies["valley-courier"][FAILED].latest

    age_rows(store, datetime.now(UTC) - timedelta(days=45))
    store.mark_listed([grain])  # still listed: kept
    assert store.forget_old() == 4
    assert {source: {tally: t.count for tally, t in by.items()} for source, by in store.item_tallies().items()} == {
        "valley-courier": {EMITTED: 1},
    } == counted_by_scanning(store)
