"""Builders of valid topic messages for tests."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.messages import Article, Classification, Classified, Entity, article_id


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
