"""Clustering cost per article with 0, 10k and 100k open stories in the index, in one run.

The index is filled with stories whose signatures are random (as unrelated stories' are to
each other), through the same tables the stories stage uses; then the same batches of
synthetic cooperation articles (half of them copies of one another) are added at each size.
The cost per article should not grow with the index: candidates come from indexed band rows.
Statistics are refreshed after each fill, as autovacuum does on a running PostgreSQL.

    .venv/bin/python -m benchmarks.bench_stories [--articles 300] [--database-url URL]

``--database-url`` must name an empty database (or schema): the benchmark fills it.

Prints a table; asserts nothing (benchmarks are never tests).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from tests.support.corpus import synthetic_articles
from pipeline.db import make_engine
from pipeline.messages import Classification, Classified, utc_now
from pipeline.settings import StorySettings
from processors.analyze import synthetic_article
from processors.gazetteer import load_gazetteer
from processors.stories import NUM_PERM, StoryIndex, alert_for, bands, signature, stories, story_bands

SIZES = (0, 10_000, 100_000)
FILL_CHUNK = 5_000
VOCABULARY = ("port", "rail", "grain", "bridge", "yuan", "forum", "plant", "road", "school", "museum", "clinic", "farm")


def cooperation(title: str, text: str, url: str) -> Classified:
    return Classified(
        id=synthetic_article(text, title, url).id, article=synthetic_article(text, title, url, source="bench"),
        classification=Classification(
            is_cooperation=True, score=0.9, russian_parties=["RU-AMU"], chinese_parties=["CN-HL"],
            reason="bench", classifier="bench",
        ),
        classified_at=utc_now(),
    )


def fill(engine: sa.Engine, count: int, seed: int) -> None:
    """Add ``count`` stories with random signatures."""
    rng = random.Random(seed)
    template = alert_for(cooperation("An older story", "text " * 50, "https://bench.invalid/old")).model_dump(mode="json")
    now = utc_now()
    for start in range(0, count, FILL_CHUNK):
        story_rows, band_rows = [], []
        for number in range(start, min(count, start + FILL_CHUNK)):
            story_id = f"{seed:04d}{number:028d}"
            minhash = signature("")
            minhash.hashvalues[:] = [rng.getrandbits(32) for _ in range(NUM_PERM)]
            story_rows.append({
                "id": story_id, "version": 1, "signature": [int(v) for v in minhash.hashvalues],
                "alert": {**template, "id": story_id}, "created_at": now, "updated_at": now,
            })
            band_rows.extend({"band": band, "story_id": story_id} for band in bands(minhash))
        with engine.begin() as connection:
            connection.execute(sa.insert(stories), story_rows)
            connection.execute(sa.insert(story_bands), band_rows)
    # A bulk load outruns the statistics autovacuum (or SQLite's ANALYZE) keeps in a running
    # system; without them PostgreSQL plans the band lookup for a tiny table.
    with engine.begin() as connection:
        connection.execute(sa.text("ANALYZE"))


def batches(count: int, seed: int) -> list[list[Classified]]:
    """``count`` articles: pairs of one story as two outlets print it, each story its own."""
    rng = random.Random(seed)
    corpus = synthetic_articles(count // 2, 1.0, seed=seed)
    articles = []
    for number, (title, text, _) in enumerate(corpus):
        # The corpus's stories come from a few templates; a paragraph of their own tells them apart.
        own = " ".join(rng.choice(VOCABULARY) + str(rng.randrange(1000)) for _ in range(400))
        story = f"{text}\n\n{own}"
        articles.append(cooperation(title, story, f"https://bench.invalid/{seed}/{number}/a"))
        articles.append(cooperation(title, "Reprinted from a partner. " + story, f"https://bench.invalid/{seed}/{number}/b"))
    return [articles[start:start + 100] for start in range(0, len(articles), 100)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    options = parser.parse_args()
    gazetteer = load_gazetteer(Path("config/gazetteer"))
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
            fill(engine, size - filled, seed=round_)
            filled = size
            work = batches(options.articles, seed=100 + round_)
            started = time.perf_counter()
            made = {alert.id for batch in work for alert in index.add(batch)}
            per_article = (time.perf_counter() - started) * 1000 / sum(map(len, work))
            baseline = baseline or per_article
            print(f"{size:>17,}  {per_article:>14.2f}  {per_article / baseline:>13.2f}×  {len(made):>12}")
        engine.dispose()


if __name__ == "__main__":
    main()
