"""The classify stage: articles in, every result to ``classified``.

Registered as the ``processors`` role (pyproject.toml's ``amur.stages`` entry points); the
stories stage makes alerts of the cooperation articles. An article that cannot be decoded, or that makes the analyzer
fail, becomes a dead letter; the rest of the batch goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pipeline.core.errors import MessageError
from pipeline.core.messages import Article, Classified, decode, encode
from pipeline.core.stages import Stage, StageContext
from pipeline.core.transport.base import Record

log = logging.getLogger(__name__)


class ClassifyStage(Stage):
    """Classifies articles with an :class:`~processors.analyze.Analyzer`.

    :param analyzer: what classifies; by default the settings' model (loading spaCy).
    """

    inputs = ("articles",)
    outputs = {"classified": Classified}

    def __init__(self, context: StageContext, *, analyzer=None):
        super().__init__(context)
        if analyzer is None:
            from processors.analyze import Analyzer  # loads spaCy: only in a process that classifies

            analyzer = Analyzer.from_settings(context.settings.model)
        self.analyzer = analyzer

    def setup(self) -> None:
        self.analyzer.warm_up()

    def handle(self, records: Sequence[Record]) -> None:
        articles: list[tuple[Record, Article]] = []
        for record in records:
            try:
                articles.append((record, decode(Article, record.value)))
            except MessageError as exc:
                self.dead_letters.record(record, exc)
        source_of = {article.id: record for record, article in articles}
        for result in self._analyze(articles):
            self.produce_output(source_of[result.id], self.topics.classified, *encode(result), what=f"article {result.id}")

    def _analyze(self, articles: list[tuple[Record, Article]]) -> list[Classified]:
        try:
            return self.analyzer.analyze([article for _, article in articles])
        except Exception:  # noqa: BLE001 - one bad article must not stop the batch: find it below
            log.exception("stage=%s batch analysis failed; retrying article by article", self.name)
        results = []
        for record, article in articles:
            try:
                results.append(self.analyzer.analyze([article])[0])
            except Exception as exc:  # noqa: BLE001 - the article goes to the DLQ with its error
                self.dead_letters.record(record, exc)
        return results
