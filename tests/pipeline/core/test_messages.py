import pytest

from pipeline.core.errors import MessageError
from pipeline.core.messages import Article, DeadLetter, article_id, decode, encode, utc_now
from pipeline.core.schemas import SCHEMA_DIR, export_schemas
from pipeline.core.topology import Topics
from processors.stories import alert_for
from tests.support.contracts import assert_matches_schema
from tests.support.messages import make_article, make_classified


def test_committed_schemas_match_the_models():
    assert export_schemas(SCHEMA_DIR, check=True) == [], "run: amur schemas export"


@pytest.mark.parametrize("kind, message", [
    ("articles", make_article()),
    ("classified", make_classified()),
    ("alerts", alert_for(make_classified())),
    ("dlq", DeadLetter(id="amur.articles:0:7", stage="processors", error_type="MessageError",
                       reason="bad", topic="amur.articles", partition=0, offset=7, failed_at=utc_now())),
])
def test_every_message_type_validates_against_its_schema(kind, message):
    key, value = encode(message)
    document = assert_matches_schema(kind, value)
    assert key == message.id.encode()
    assert document["schema_version"] == (4 if kind == "alerts" else 1)  # alerts: v2 whole stories, v3 bounded, v4 merges


def test_timestamps_are_utc_iso8601():
    from datetime import datetime, timedelta, timezone

    moscow = timezone(timedelta(hours=3))
    article = make_article(fetched_at=datetime(2026, 11, 20, 11, 0, tzinfo=moscow))
    _, value = encode(article)
    assert b'"fetched_at":"2026-11-20T08:00:00Z"' in value


def test_round_trip_and_stable_ids():
    article = make_article()
    assert decode(Article, encode(article)[1]) == article
    assert article_id("https://news.example/a") == article_id("https://news.example/a")
    assert len(article_id("https://news.example/a")) == 32


@pytest.mark.parametrize("value, fragment", [
    (b"\xff\xfe not json", "not a valid Article message"),
    (b'{"id": "x"}', "id"),
    (b"[]", "not a valid Article message"),
])
def test_poison_values_raise_message_error(value, fragment):
    with pytest.raises(MessageError, match=fragment):
        decode(Article, value)


def test_naive_timestamps_are_refused():
    with pytest.raises(MessageError, match="fetched_at"):
        decode(Article, encode(make_article())[1].replace(b'08:31:00Z"', b'08:31:00"'))


def test_topic_names_share_the_prefix():
    topics = Topics("staging.amur.")
    assert topics.all() == ["staging.amur.articles", "staging.amur.classified", "staging.amur.alerts", "staging.amur.dlq"]
    assert topics.model_for("staging.amur.articles") is Article
