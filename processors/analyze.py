"""The processor's work on a batch of articles: the cascade from text to ``Classified``.

1. The cheap pass, on every article: gazetteer matching and :meth:`RulesClassifier.screen`
   — a few hundred microseconds, no model. Most articles of a news stream end here, with
   their gazetteer entities and a negative classification that says why.
2. The candidate path, on the rest: one batched ``nlp.pipe`` over their texts for entities
   and sentences, then figures and the full classification.

::

    analyzer = Analyzer.from_settings(settings.model)        # loads once
    for classified in analyzer.analyze(articles):
        ...
    analyzer.analyze_text("Heilongjiang and Amur Oblast signed ...")   # for `amur classify`
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from spacy.language import Language

from pipeline.messages import Article, Classified, article_id, utc_now
from pipeline.settings import ModelSettings
from processors.classify import Passage, RulesClassifier, load_classifier_config
from processors.entities import gazetteer_entities, load_pipeline, merge_entities, sentence_spans
from processors.figures import extract_figures
from processors.gazetteer import Gazetteer, load_gazetteer


def synthetic_article(text: str, title: str = "", url: str = "", source: str = "cli") -> Article:
    """An article for a text that came from no feed; its URL is ``text:<sha256>`` unless given."""
    url = url or f"text:{hashlib.sha256(text.encode('utf-8')).hexdigest()}"
    return Article(id=article_id(url), url=url, source=source, title=title, text=text, fetched_at=utc_now())


class Analyzer:
    """Entities, figures and classification for articles, through the cheap-pass cascade.

    :param nlp: a pipeline from :func:`~processors.entities.load_pipeline`.
    :param batch_size: texts per ``nlp.pipe`` batch.
    :param n_process: worker processes for ``nlp.pipe``; 1 keeps the model in this process,
        which suits a streaming processor (scale out with more processors instead).
    """

    def __init__(self, nlp: Language, gazetteer: Gazetteer, classifier: RulesClassifier, *, batch_size: int = 32, n_process: int = 1):
        self.nlp = nlp
        self.gazetteer = gazetteer
        self.classifier = classifier
        self.batch_size = batch_size
        self.n_process = n_process

    @classmethod
    def from_settings(cls, model: ModelSettings, **options) -> Analyzer:
        """Load the gazetteer, the classifier's config and the spaCy model once.

        :raises ConfigError: a file is invalid or the model is not installed.
        """
        gazetteer = load_gazetteer(model.gazetteer_dir)
        classifier = RulesClassifier(load_classifier_config(model.classifier_config), gazetteer)
        return cls(load_pipeline(model.name), gazetteer, classifier, **options)

    def analyze(self, articles: Sequence[Article]) -> list[Classified]:
        """Classify ``articles``, in order; only the cheap pass's candidates meet the model."""
        prepared = [(Passage.of(a.title, self.gazetteer), Passage.of(a.text, self.gazetteer)) for a in articles]
        verdicts = [self.classifier.screen(title, body) for title, body in prepared]
        candidates = [index for index, verdict in enumerate(verdicts) if verdict is None]
        # spaCy refuses texts over nlp.max_length; the rare giant page is read up to the limit.
        texts = (articles[index].text[: self.nlp.max_length] for index in candidates)
        docs = dict(zip(candidates, self.nlp.pipe(texts, batch_size=self.batch_size, n_process=self.n_process), strict=True))
        results = []
        for index, (article, (title, body)) in enumerate(zip(articles, prepared, strict=True)):
            if index in docs:
                sentences = sentence_spans(docs[index])
                entities = merge_entities(docs[index], body.mentions)
                figures = extract_figures(article.text, sentences)
                classification = self.classifier.classify(title, body, sentences)
            else:
                entities, figures = gazetteer_entities(body.mentions), []
                classification = self.classifier.reject(verdicts[index])
            results.append(Classified(
                id=article.id, article=article, entities=entities, figures=figures,
                classification=classification, classified_at=utc_now(),
            ))
        return results

    def analyze_text(self, text: str, title: str = "", url: str = "") -> Classified:
        """Classify one text, as ``amur classify`` does; the article's source is "cli"."""
        return self.analyze([synthetic_article(text, title, url)])[0]
