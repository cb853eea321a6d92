"""Clustering cost per article with 0, 10k and 100k stories in the index, in one run.

The index is filled with stories whose signatures are random (as unrelated stories' are to
each other) and which name entities drawn from the gazetteer, through the same tables the
stories stage uses, as a stream would have: :data:`STORIES_PER_WEEK` a week, back from now,
so the stories open near a new article are as many at every size while the history grows.
Then the same batches of synthetic cooperation articles (half of them copies of one
another, every one naming entities, so entity matching is on) are added at each size. The
cost per article should not grow with the index: candidates come from indexed band rows and
entity rows by week. Statistics are refreshed after each fill, as autovacuum does on a
running PostgreSQL.

    .venv/bin/python -m benchmarks.bench_stories [--articles 300] [--database-url URL]

``--database-url`` must name an empty database (or schema): the benchmark fills it.

Prints a table; asserts nothing (benchmarks are never tests).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from pipeline.core.db import make_engine
from pipeline.core.messages import Classification, Classified, Entity, utc_now
from pipeline.core.settings import StorySettings
from processors.analyze import synthetic_article
from processors.gazetteer import load_gazetteer
from processors.stories import NUM_PERM, StoryIndex, alert_for, bands, bucket, signature, stories, story_bands, story_entities
from tests.support.corpus import synthetic_articles

SIZES = (0, 10_000, 100_000)
FILL_CHUNK = 5_000
STORIES_PER_WEEK = 5_000
ENTITIES_PER_STORY = 5
VOCABULARY = ("port", "rail", "grain", "bridge", "yuan", "forum", "plant", "road", "school", "museum", "clinic", "farm")


def cooperation(title: str, text: str, url: str, entities: list[str] = ()) -> Classified:
    return Classified(
        id=synthetic_article(text, title, url).id, article=synthetic_article(text, title, url, source="bench"),
        entities=[Entity(text=entity_id, label="ORG", start=0, end=1, canonical_id=entity_id) for entity_id in entities],
        classification=Classification(
            is_cooperation=True, score=0.9, russian_parties=["RU-AMU"], chinese_parties=["CN-HL"],
            reason="bench", classifier="bench",
        ),
        classified_at=utc_now(),
    )


def fill(engine: sa.Engine, count: int, seed: int, entity_pool: list[str], already: int) -> None:
    """Add ``count`` stories with random signatures and entities, older than the ``already`` there."""
    rng = random.Random(seed)
    template = alert_for(cooperation("An older story", "text " * 50, "https://bench.invalid/old")).model_dump(mode="json")
    now = utc_now()
    for start in range(0, count, FILL_CHUNK):
        story_rows, band_rows, entity_rows = [], [], []
        for number in range(start, min(count, start + FILL_CHUNK)):
            story_id = f"{seed:04d}{number:028d}"
            minhash = signature("")
            minhash.hashvalues[:] = [rng.getrandbits(32) for _ in range(NUM_PERM)]
            at = now - timedelta(weeks=(already + number) / STORIES_PER_WEEK)
            entities = sorted(set(rng.sample(entity_pool, ENTITIES_PER_STORY)))
            story_rows.append({
                "id": story_id, "version": 1, "signature": [int(v) for v in minhash.hashvalues],
                "alert": {**template, "id": story_id}, "created_at": at, "updated_at": at,
                "entities": entities, "first_at": at, "last_at": at,
            })
            band_rows.extend({"band": band, "story_id": story_id} for band in bands(minhash))
            entity_rows.extend({"entity_id": entity_id, "bucket": bucket(at), "story_id": story_id} for entity_id in entities)
        with engine.begin() as connection:
            connection.execute(sa.insert(stories), story_rows)
            connection.execute(sa.insert(story_bands), band_rows)
            connection.execute(sa.insert(story_entities), entity_rows)
    # A bulk load outruns the statistics autovacuum (or SQLite's ANALYZE) keeps in a running
    # system; without them PostgreSQL plans the band lookup for a tiny table.
    with engine.begin() as connection:
        connection.execute(sa.text("ANALYZE"))


def batches(count: int, seed: int, entity_pool: list[str]) -> list[list[Classified]]:
    """``count`` articles: pairs of one story as two outlets print it, each story its own."""
    rng = random.Random(seed)
    corpus = synthetic_articles(count // 2, 1.0, seed=seed)
    articles = []
    for number, (title, text, _) in enumerate(corpus):
        # The corpus's stories come from a few templates; a paragraph of their own tells them apart.
        own = " ".join(rng.choice(VOCABULARY) + str(rng.randrange(1000)) for _ in range(400))
        story = f"{text}\n\n{own}"
        entities = rng.sample(entity_pool, ENTITIES_PER_STORY)
        articles.append(cooperation(title, story, f"https://bench.invalid/{seed}/{number}/a", entities))
        articles.append(cooperation(title, "Reprinted from a partner. " + story, f"https://bench.invalid/{seed}/{number}/b", entities))
    return [articles[start:start + 100] for start in range(0, len(articles), 100)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    options = parser.parse_args()
    gazetteer = load_gazetteer(Path("config/gazetteer"))
    entity_pool = sorted(entry_id for entry_id, entry in gazetteer.entries.items() if entry.kind != "country")
    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(options.database_url or f"sqlite:///{scratch}/bench.sqlite")
        index = StoryIndex(engine, StorySettings(), gazetteer)
        index.setup()
        with engine.connect() as connection:
            if connection.execute(sa.select(sa.func.count()).select_from(stories)).scalar_one():
                raise SystemExit(f"{engine.url.render_as_string()} already has stories: give the benchmark an empty database")
        print(f"{'stories in index':>17}  {'ms per article':>14}  {'vs empty index':>14}  {'stories made':>12}")
        baseline = None
        filled = 0
        for round_, size in enumerate(SIZES):
            fill(engine, size - filled, seed=round_, entity_pool=entity_pool, already=filled)
            filled = size
            work = batches(options.articles, seed=100 + round_, entity_pool=entity_pool)
            started = time.perf_counter()
            made = {placement.story.id for batch in work for placement in index.add(batch)}
            per_article = (time.perf_counter() - started) * 1000 / sum(map(len, work))
            baseline = baseline or per_article
            print(f"{size:>17,}  {per_article:>14.2f}  {per_article / baseline:>13.2f}×  {len(made):>12}")
        engine.dispose()


if __name__ == "__main__":
    main()
