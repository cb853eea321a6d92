"""The polling logic every connector shares, shown with a connector that only lists items.

``MemoryConnector`` says how to list a source and how to turn an item into an article, as a
sitemap or replay connector would; dedup, the per-poll cap, retries and giving up, and the
validators are the base's. It runs through the registry and the connectors role.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.app.roles import make_connector_factory
from pipeline.core import registry
from pipeline.core.connector import EMIT_BATCH, ConnectorContext, Item, Listing, PollingConnector
from pipeline.core.db import make_engine
from pipeline.core.errors import FetchError
from pipeline.core.messages import Article, DeadLetter, article_id, decode, utc_now
from pipeline.core.polling import ConnectorRunner
from pipeline.core.settings import AmurSettings, SourceConfig, UrlOptions
from pipeline.core.state import StateStore
from pipeline.core.topology import Topics
from pipeline.core.transport.embedded import EmbeddedTransport
from tests.support.messages import discard

TOPICS = Topics("t.")
LISTINGS: dict[str, Listing] = {}
BROKEN = {"https://memory.example/broken"}


class MemoryConnector(PollingConnector):
    Options = UrlOptions

    @classmethod
    def from_source(cls, source, context):
        return cls(source, context.state)

    def list_items(self, etag, last_modified):
        listing = LISTINGS[self.name]
        return Listing(not_modified=True) if etag is not None and etag == listing.etag else listing

    def fetch_article(self, item):
        if item.url in BROKEN:
            raise FetchError(item.url, "HTTP 503", retryable=True, status=503)
        return Article(
            id=article_id(item.url), url=item.url, source=self.name, title=item.title, text="text",
            published_at=item.published_at, fetched_at=utc_now(),
        )


@pytest.fixture
def memory_kind():
    registry.connectors.register("memory")(MemoryConnector)
    yield
    registry.connectors.unregister("memory")
    LISTINGS.clear()


def items(*names: str) -> list[Item]:
    return [
        Item(url=f"https://memory.example/{name}", title=name, published_at=datetime(2026, 12, 1, n, tzinfo=UTC))
        for n, name in enumerate(names)
    ]


def runner_for(tmp_path, *sources: SourceConfig):
    log = EmbeddedTransport(str(tmp_path / "log.sqlite"))
    log.ensure_topics(TOPICS.all())
    context = ConnectorContext(AmurSettings(), StateStore(make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")))
    context.state.setup()
    return ConnectorRunner(make_connector_factory(context), sources, log.producer(), TOPICS, on_stop=context.close), log


def topic_values(log, topic, model):
    consumer = log.consumer("reader", [topic])
    values = [decode(model, record.value) for record in consumer.poll(1000, 0.1)]
    consumer.close()
    return values


def test_a_listing_connector_gets_dedup_retries_and_dead_letters_from_the_base(memory_kind, tmp_path):
    LISTINGS["mem"] = Listing(items("a", "broken", "b"), etag='"v1"')
    runner, log = runner_for(tmp_path, SourceConfig(name="mem", kind="memory", url="https://memory.example/"))

    summaries = [runner.poll_all_once()[0] for _ in range(4)]

    assert [(s.emitted, s.failed_items) for s in summaries] == [(2, 1), (0, 1), (0, 1), (0, 0)]
    assert sorted(article.title for article in topic_values(log, TOPICS.articles, Article)) == ["a", "b"]
    (letter,) = topic_values(log, TOPICS.dlq, DeadLetter)
    assert letter.payload == "https://memory.example/broken" and "HTTP 503" in letter.reason
    runner.stop()


def test_the_per_poll_cap_holds_the_validators_back_until_every_item_is_done(memory_kind, tmp_path):
    LISTINGS["mem"] = Listing(items("a", "b", "c"), etag='"v1"')
    source = SourceConfig(name="mem", kind="memory", url="https://memory.example/", max_articles_per_poll=2)
    runner, log = runner_for(tmp_path, source)

    first, second, third = (runner.poll_all_once()[0] for _ in range(3))

    assert (first.emitted, second.emitted, third.emitted) == (2, 1, 0)  # newest first: c, b, then a
    assert [article.title for article in topic_values(log, TOPICS.articles, Article)] == ["c", "b", "a"]
    runner.stop()


def test_a_burst_is_flushed_and_recorded_a_batch_at_a_time_each_batch_once_flushed(memory_kind, tmp_path):
    """One flush and one write of the seen store serve up to EMIT_BATCH articles; what a batch
    holds is recorded as emitted only after its emit returned."""
    names = [f"n{n:02}" for n in range(EMIT_BATCH + 4)]
    LISTINGS["mem"] = Listing(items(*names))
    state = StateStore(make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}"))
    state.setup()
    connector = MemoryConnector(SourceConfig(name="mem", kind="memory", url="https://memory.example/"), state)
    handed: list[list[str]] = []

    def emit(articles):
        recorded = state.item_statuses("mem")
        assert all(recorded.get(article.id) != "emitted" for article in articles)  # not before its flush
        handed.append([article.title for article in articles])

    result = connector.poll(emit)

    assert [len(batch) for batch in handed] == [EMIT_BATCH, 4]
    assert sorted(title for batch in handed for title in batch) == names == sorted(article.title for article in result.articles)
    assert set(state.item_statuses("mem").values()) == {"emitted"}


def adaptive_connector(tmp_path, name: str, **intervals) -> MemoryConnector:
    state = StateStore(make_engine(f"sqlite:///{tmp_path / f'{name}.sqlite'}"))
    state.setup()
    source = SourceConfig(name=name, kind="memory", url="https://memory.example/feed", poll_interval_seconds=600,
                          **intervals)
    return MemoryConnector(source, state)


def run_polls(connector: MemoryConnector, polls: int, new_per_poll: int, hint: float | None = None) -> list[float]:
    """``polls`` polls, each listing ``new_per_poll`` items never seen before; the intervals chosen."""
    chosen = []
    for number in range(polls):
        LISTINGS[connector.name] = Listing(items(*(f"{connector.name}-{number}-{n}" for n in range(new_per_poll))),
                                           update_hint=hint)
        connector.poll(discard)
        connector.commit()
        chosen.append(connector.state.get(connector.name).interval_seconds)
        assert 0.9 * chosen[-1] <= connector.next_poll_in <= 1.1 * chosen[-1]  # jittered around it
    return chosen


def test_the_interval_of_a_busy_source_shrinks_to_the_minimum_and_a_quiet_one_grows_to_the_maximum(memory_kind, tmp_path):
    busy = run_polls(adaptive_connector(tmp_path, "busy", min_interval_seconds=60, max_interval_seconds=3600), 8, 3)
    quiet = run_polls(adaptive_connector(tmp_path, "quiet", min_interval_seconds=60, max_interval_seconds=3600), 12, 0)
    steady = run_polls(adaptive_connector(tmp_path, "steady", min_interval_seconds=60, max_interval_seconds=3600), 5, 1)
    assert busy[0] == 300 and busy[-1] == 60 and busy == sorted(busy, reverse=True)
    assert quiet[0] == 900 and quiet[-1] == 3600 and quiet == sorted(quiet)
    assert steady == [600.0] * 5


def test_a_feed_s_own_hint_floors_the_interval_and_a_fixed_source_never_moves(memory_kind, tmp_path):
    hinted = run_polls(adaptive_connector(tmp_path, "hinted", min_interval_seconds=60, max_interval_seconds=7200), 6, 3,
                       hint=1800)
    assert hinted == [1800.0] * 6  # it says it changes every 30 min: polling faster is waste
    fixed = adaptive_connector(tmp_path, "fixed")
    LISTINGS["fixed"] = Listing(items("a", "b", "c"))
    fixed.poll(discard)
    fixed.commit()
    assert fixed.next_poll_in == 600 and fixed.state.get("fixed").interval_seconds == 600


def test_ignore_validators_always_fetches_the_listing_in_full(memory_kind, tmp_path):
    connector = adaptive_connector(tmp_path, "liar")
    LISTINGS["liar"] = Listing(items("first"), etag='"same"')
    connector.poll(discard)
    connector.commit()
    LISTINGS["liar"] = Listing(items("first", "second"), etag='"same"')  # changed, but the ETag did not
    assert connector.poll().articles == []  # the stored ETag hides the change: a 304
    honest = MemoryConnector(connector.source.model_copy(update={"ignore_validators": True}), connector.state)
    assert [article.title for article in honest.poll().articles] == ["second"]


def test_intervals_out_of_order_are_a_config_error():
    with pytest.raises(ValueError, match="min_interval_seconds ≤ poll_interval_seconds ≤ max_interval_seconds"):
        SourceConfig(name="x", url="https://x.example/rss", poll_interval_seconds=60, min_interval_seconds=120,
                     max_interval_seconds=600)
