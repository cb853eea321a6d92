"""``amur eval``: a labelled file through the whole pipeline, scored as a subscriber meets it.

The lines become a replay archive; ``amur run --once`` reads it on the embedded transport
into a scratch database, with the user's model, gazetteer, classifier and story settings;
then each line's verdict is read from the records and its story from the story index, and
:func:`processors.evaluate.score` compares them with the labels. A subscriber gets stories,
not single verdicts, so the story figures (regions, sectors, clustering) come from the stories
stage exactly as it would alert them.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import sqlalchemy as sa

from connectors.urls import canonical_url
from pipeline.app.roles import Runtime, run_once
from pipeline.core.db import make_engine
from pipeline.core.errors import ConfigError, ConfigProblem
from pipeline.core.messages import article_id
from pipeline.core.settings import AmurSettings, EmbeddedSettings, SinkConfig
from pipeline.core.topology import roles
from processors.evaluate import EvalReport, LabeledArticle, Outcome, StoryTags, read_labeled, score
from processors.stories import stories, story_articles
from sinks.records import articles

log = logging.getLogger(__name__)

SOURCE_NAME = "eval"
MAX_LINES = 1000  # what one poll of the replay source emits: --once polls each source once


def evaluate_pipeline(path: Path, settings: AmurSettings) -> EvalReport:
    """Score ``path`` through every role of the pipeline (see the module docstring).

    :raises ConfigError: the file cannot be read or has malformed lines (each named by number).
    """
    examples = read_labeled(path)
    if len(examples) > MAX_LINES:
        raise ConfigError([ConfigProblem(
            str(path), "(file)", f"{len(examples)} lines; one evaluation reads at most {MAX_LINES}",
            "split the file and evaluate each part",
        )])
    with tempfile.TemporaryDirectory(prefix="amur-eval-") as scratch:
        workdir = Path(scratch)
        urls = _write_archive(workdir / "archive.jsonl", path, examples)
        (workdir / "sources.yaml").write_text(json.dumps({"sources": [{
            "name": SOURCE_NAME, "kind": "replay", "path": str(workdir / "archive.jsonl"),
            "max_articles_per_poll": MAX_LINES,
        }]}), encoding="utf-8")
        database_url = f"sqlite:///{workdir / 'amur.sqlite'}"
        scratch_settings = settings.model_copy(update={
            "transport": "embedded",
            "embedded": EmbeddedSettings(path=str(workdir / "log.sqlite")),
            "database_url": database_url,
            "sources_file": "sources.yaml",
            "subscriptions_file": "subscriptions.yaml",  # absent: the one default subscription
            "sinks": [SinkConfig(type="records")],
            "batch_size": max(settings.batch_size, len(examples)),
        })
        runtime = Runtime.from_settings(scratch_settings, workdir / "amur.yaml")
        try:
            run_once(runtime, roles(), report=log.info)
        finally:
            runtime.close()
        engine = make_engine(database_url)
        try:
            outcomes, story_tags, classifier = _read_back(engine, [article_id(canonical_url(url)) for url in urls])
        finally:
            engine.dispose()
    return score(path, classifier, examples, outcomes, story_tags)


def _write_archive(archive: Path, labelled: Path, examples: list[tuple[int, LabeledArticle]]) -> list[str]:
    """One replay line per example; returns each example's URL, in order."""
    urls = []
    with archive.open("w", encoding="utf-8") as out:
        for number, example in examples:
            # A line without a URL (or with one the archive would refuse) gets a unique one of its own.
            url = example.url if example.url.startswith(("http://", "https://")) else f"https://eval.invalid/{labelled.stem}/{number}"
            title = example.title or example.text.strip().splitlines()[0][:200]
            published_at = example.published_at()
            out.write(json.dumps({
                "url": url, "title": title, "text": example.text, "language": example.language,
                "published_at": published_at.isoformat() if published_at else None,
            }, ensure_ascii=False) + "\n")
            urls.append(url)
    return urls


def _read_back(engine: sa.Engine, ids: list[str]) -> tuple[list[Outcome], dict[str, StoryTags], str]:
    with engine.connect() as connection:
        records = {row.id: row for row in connection.execute(sa.select(articles))}
        story_of = dict(connection.execute(sa.select(story_articles.c.article_id, story_articles.c.story_id)).all())
        alerts = {row.id: row.alert for row in connection.execute(sa.select(stories.c.id, stories.c.alert))}
    outcomes, classifier = [], ""
    for identifier in ids:
        record = records.get(identifier)
        if record is None:  # not emitted: a repeated URL, or an entry the archive refused
            outcomes.append(Outcome(False, 0.0, None, [], "not emitted by the replay (see the log)", None, None))
            continue
        verdict = record.classification
        classifier = verdict.get("classifier", classifier)
        outcomes.append(Outcome(
            is_cooperation=record.is_cooperation, score=record.score, level=record.level, sectors=record.sectors,
            reason=verdict.get("reason", ""), language=None,
            story_id=story_of.get(identifier),
        ))
    story_tags = {story_id: StoryTags(alert.get("regions", []), alert.get("sectors", [])) for story_id, alert in alerts.items()}
    return outcomes, story_tags, classifier
