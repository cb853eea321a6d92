"""The alerts store: one row per story, every version kept, the newest stored version wins,
written once per batch however many feeds read it."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from pipeline.core.db import make_engine
from pipeline.core.messages import Outlet, encode
from pipeline.core.settings import AmurSettings, SinkConfig, sink_problems
from pipeline.core.stages import SinkStage
from pipeline.core.subscriptions import Filters, SubscriptionsWatcher
from pipeline.core.topology import Topics
from pipeline.core.transport.embedded import EmbeddedTransport
from processors.stories import alert_for
from sinks.alerts import AlertsSink, alert_tags, alert_versions, alerts, newest_matching
from sinks.subscription_feeds import FeedsOptions, SubscriptionFeedsSink
from tests.support.messages import make_article, make_classified, make_story
from tests.support.stages import stage_context

TOPICS = Topics("t.")


def make_store(database_url):
    engine = make_engine(database_url)
    store = AlertsSink(engine)
    store.setup()
    return store, engine


def test_one_row_per_story_even_when_delivered_again_and_the_first_write_keeps_its_times(database_url):
    store, engine = make_store(database_url)
    first = alert_for(make_classified(make_article("https://news.example/bridge")))
    second = alert_for(make_classified(make_article("https://news.example/yuan")))
    for alert in (first, second):
        store.add(alert)
    assert store.flush() == []
    store.add(alert_for(make_classified(make_article("https://news.example/bridge"))))  # a replay
    assert store.flush() == []

    with engine.connect() as connection:
        assert sorted(connection.execute(sa.select(alerts.c.url)).scalars()) == ["https://news.example/bridge", "https://news.example/yuan"]
        assert connection.execute(sa.select(alerts.c.alerted_at).where(alerts.c.id == first.id)).scalar_one() == first.alerted_at
        tags = set(connection.execute(sa.select(alert_tags.c.kind, alert_tags.c.value).where(alert_tags.c.story_id == first.id)))
    assert {("sector", "forestry_timber"), ("region", "RU-IRK"), ("region", "CN-HL")} <= tags


def test_an_update_replaces_the_row_every_version_is_kept_and_a_late_older_version_is_ignored(database_url):
    store, engine = make_store(database_url)
    first = alert_for(make_classified(make_article("https://news.example/bridge")))
    other = Outlet(article_id="b" * 32, source="border-herald", url="https://herald.example/a/1", title="Bridge deal")
    updated = first.model_copy(update={"version": 2, "outlets": [*first.outlets, other]})
    for alert in (first, updated, first):  # the last one: version 1 delivered again, late
        store.add(alert)
        assert store.flush() == []

    with engine.connect() as connection:
        assert connection.execute(sa.select(alerts.c.version)).scalar_one() == 2
        assert [outlet["source"] for outlet in connection.execute(sa.select(alerts.c.outlets)).scalar_one()][-1] == "border-herald"
        assert sorted(connection.execute(sa.select(alert_versions.c.version)).scalars()) == [1, 2]


def test_each_alert_is_written_once_per_batch_whatever_reads_the_store(database_url, tmp_path):
    """The default sinks: the store writes a batch's alerts in one statement; the feeds only read them."""
    (tmp_path / "subscriptions.yaml").write_text(
        "subscriptions:\n  - name: all\n  - name: heilongjiang\n    filters: {regions: [CN-HL]}\n"
    )
    log = EmbeddedTransport(":memory:")
    log.ensure_topics(TOPICS.all())
    producer = log.producer()
    batch = [alert_for(make_classified(make_article(f"https://news.example/story-{number}"))) for number in range(5)]
    for alert in batch:
        producer.produce(TOPICS.alerts, *encode(alert))
    producer.flush()
    engine = make_engine(database_url)
    watcher = SubscriptionsWatcher(tmp_path / "subscriptions.yaml", AmurSettings())
    sinks = [AlertsSink(engine), SubscriptionFeedsSink(engine, FeedsOptions(directory=str(tmp_path / "feeds")), watcher)]
    stage = SinkStage(stage_context(log, TOPICS, "sinks"), sinks=sinks)
    stage.setup()
    writes: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE")) and " alerts " in f" {statement.replace('(', ' ')} ":
            writes.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        assert stage.run(threading.Event(), once=True) == 5
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
        stage.close()
    assert len(writes) == 1, writes
    for feed in ("all", "heilongjiang"):
        assert (tmp_path / "feeds" / f"{feed}.atom").read_bytes().count(b"<entry>") == 5


def test_the_feeds_must_come_after_the_store_they_render_from(tmp_path):
    settings = AmurSettings(sinks=[SinkConfig(type="feeds"), SinkConfig(type="alerts")])
    [problem] = sink_problems(tmp_path / "amur.yaml", settings)
    assert problem.key == "sinks.0" and "reads what the alerts sink writes" in problem.message
    assert problem.hint == "list '- type: alerts' before it under 'sinks:'"


def test_a_subscription_s_newest_stories_are_selected_by_their_tags_and_then_by_their_words(database_url):
    """Stories of other regions written since do not crowd a region's out, and the keywords and
    excluded sources, which no index knows, are checked page by page until enough pass."""
    store, engine = make_store(database_url)
    stories = [
        make_story(f"https://news.example/{n}", regions=["RU-AMU", "CN-HL"] if n % 3 == 0 else ["RU-PRI", "CN-JL"],
                   sectors=["energy"], level="interregional", score=0.8, language="en",
                   sources=["tass"] if n % 2 else ["xinhua"], title=f"Story {n}: power line" if n % 6 == 0 else f"Story {n}")
        for n in range(30)
    ]
    for story in stories:  # one batch each: the written order is the list's
        store.add(story)
        assert store.flush() == []

    wanted = Filters(regions=["CN-HL"], keywords=["power line"], exclude_sources=["tass"])
    with engine.connect() as connection:
        found = newest_matching(connection, wanted, limit=3, page=2)
        everything = newest_matching(connection, Filters(), limit=100, page=7)
        heilongjiang = newest_matching(connection, Filters(regions=["CN-HL"]), limit=4)  # SQL alone: one page of 4
    assert [story.url for story in found] == ["https://news.example/24", "https://news.example/18", "https://news.example/12"]
    assert [story.url for story in everything] == [story.url for story in reversed(stories)]
    assert [story.url for story in heilongjiang] == [f"https://news.example/{n}" for n in (27, 24, 21, 18)]
