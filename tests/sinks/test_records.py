import pytest
import sqlalchemy as sa

from pipeline.core.db import make_engine
from pipeline.core.errors import SinkError
from sinks.records import RecordsSink, articles
from tests.support.messages import make_article, make_classified


def test_upsert_by_article_id_makes_replays_harmless(database_url):
    engine = make_engine(database_url)
    sink = RecordsSink(engine)
    sink.setup()
    story = make_classified(make_article("https://news.example/a"))
    other = make_classified(make_article("https://news.example/b"), cooperation=False, score=0.1)
    sink.add(story)
    sink.add(other)
    sink.flush()
    sink.add(story)  # redelivered after a crash
    sink.flush()
    with engine.connect() as connection:
        flags = connection.execute(sa.select(articles.c.is_cooperation).order_by(articles.c.url)).scalars().all()
        row = connection.execute(sa.select(articles).where(articles.c.id == story.id)).mappings().one()
    assert flags == [True, False]
    assert row["chinese_parties"] == ["CN-HL"]
    assert row["entities"][0]["canonical_id"] == "RU-IRK"
    assert row["classification"]["reason"] == "test verdict"
    sink.close()


def test_a_failed_write_raises_sink_error_and_keeps_nothing_pending(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    sink = RecordsSink(engine)  # no setup(): the table does not exist
    sink.add(make_classified())
    with pytest.raises(SinkError, match="records: cannot write 1 article"):
        sink.flush()
    sink.flush()  # the failed batch is not written twice; the stage redelivers it
