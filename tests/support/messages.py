"""Builders of valid topic messages for tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from pipeline.core.messages import Alert, Article, Classification, Classified, Entity, Outlet, article_id
from processors.stories import alert_for


def make_article(url: str = "https://news.example/irkutsk-harbin-deal", **fields) -> Article:
    values = {
        "id": article_id(url),
        "url": url,
        "source": "test-feed",
        "title": "Irkutsk and Heilongjiang sign a timber processing accord",
        "text": "The Irkutsk region government and Heilongjiang province signed an agreement on timber processing.",
        "published_at": datetime(2026, 11, 20, 8, 30, tzinfo=UTC),
        "fetched_at": datetime(2026, 11, 20, 8, 31, tzinfo=UTC),
    }
    values.update(fields)
    return Article(**values)


def make_classified(article: Article | None = None, *, cooperation: bool = True, score: float = 0.9) -> Classified:
    article = article or make_article()
    return Classified(
        id=article.id,
        article=article,
        entities=[Entity(text="Irkutsk region", label="GPE", start=4, end=18, canonical_id="RU-IRK", country="RU")],
        classification=Classification(
            is_cooperation=cooperation,
            score=score,
            level="interregional" if cooperation else None,
            sectors=["forestry_timber"] if cooperation else [],
            russian_parties=["RU-IRK"] if cooperation else [],
            chinese_parties=["CN-HL"] if cooperation else [],
            evidence=[article.text] if cooperation else [],
            reason="test verdict",
            classifier="test",
        ),
        classified_at=datetime(2026, 11, 20, 8, 32, tzinfo=UTC),
    )


def make_story(
    url: str, *, regions: list[str], sectors: list[str], level: str, score: float, language: str, sources: list[str],
    title: str, summary: str = "", names: dict[str, str] | None = None,
) -> Alert:
    """A story alert with its regions (both parties' too), sectors and one outlet per source."""
    base = alert_for(make_classified(make_article(url, title=title, summary=summary, language=language)), regions=regions)
    outlets = [
        Outlet(article_id=f"{n:032d}", source=source, url=f"{url}/{n}", title=title) for n, source in enumerate(sources)
    ]
    return base.model_copy(update={
        "sectors": sectors, "level": level, "score": score, "outlets": outlets, "source": sources[0],
        "russian_parties": [region for region in regions if region.startswith("RU")],
        "chinese_parties": [region for region in regions if region.startswith("CN")],
        "names": names or {}, "summary": summary or base.summary,
    })


def backdate_emissions(store, source: str, moments) -> None:
    """Record one emitted article of ``source`` first seen at each of ``moments`` (a history)."""
    import sqlalchemy as sa

    from pipeline.core.state import seen_articles

    items = [(f"{index:032x}", f"https://history.example/{source}/{index}") for index, _ in enumerate(moments)]
    store.mark_emitted(source, items)
    with store.engine.begin() as connection:
        for (key, _), moment in zip(items, moments, strict=True):
            connection.execute(
                sa.update(seen_articles).where(seen_articles.c.source == source, seen_articles.c.article_id == key)
                .values(first_seen_at=moment, updated_at=moment)
            )


def discard(articles: Sequence[Article]) -> None:
    """An ``emit`` that sends the articles nowhere: for a connector under test, they count as
    produced and flushed, so the connector records them as emitted."""
