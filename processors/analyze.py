"""The processor's work on a batch of articles: the cascade from text to ``Classified``.

1. The cheap pass, on every article: gazetteer matching and :meth:`RulesClassifier.screen`
   — a few hundred microseconds, no model. Most articles of a news stream end here, with
   their gazetteer entities and a negative classification that says why.
2. The candidate path, on the rest: one batched ``nlp.pipe`` per language over their texts
   for sentences, then figures and the full classification; the model's entities for the
   cooperation articles among them (the entity recognizer is most of a candidate's cost, and
   an article the classifier turns away keeps its gazetteer entities, as one the cheap pass
   turned away does).

Each article is read in its own language, with that language's profile
(:mod:`processors.languages`).

::

    analyzer = Analyzer.from_settings(settings.model)        # loads once
    for classified in analyzer.analyze(articles):
        ...
    analyzer.analyze_text("Heilongjiang and Amur Oblast signed ...")   # for `amur classify`
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc

from pipeline.core.messages import Article, Classification, Classified, Figure, article_id, utc_now
from pipeline.core.settings import ModelSettings
from processors.classify import Passage, RulesClassifier, language_config, load_classifier_config
from processors.entities import entity_components, gazetteer_entities, load_pipeline, merge_entities, recognise_entities, sentence_spans
from processors.figures import extract_figures
from processors.gazetteer import Gazetteer, load_gazetteer
from processors.languages import DEFAULT_LANGUAGE, CachedForms, detect_language, load_language_profiles, name_forms, simplified_chinese


def synthetic_article(text: str, title: str = "", url: str = "", source: str = "cli") -> Article:
    """An article for a text that came from no feed; its URL is ``text:<sha256>`` unless given."""
    url = url or f"text:{hashlib.sha256(text.encode('utf-8')).hexdigest()}"
    return Article(id=article_id(url), url=url, source=source, title=title, text=text, fetched_at=utc_now())


WARM_UP_TEXT = "The regional government signed an agreement on a new bridge and a grain terminal."


@dataclass(frozen=True)
class Reader:
    """What the analyzer reads one language with: a spaCy pipeline and a classifier."""

    nlp: Language
    classifier: RulesClassifier


def _loaded_reader(pipeline: str, language: str, classifier: RulesClassifier) -> Reader:
    reader = Reader(load_pipeline(pipeline, language=language), classifier)
    reader.nlp(WARM_UP_TEXT)
    return reader


# Texts per nlp.pipe batch. The model holds a batch's activations at once: 100 news-length
# texts took a processor's peak from ~330 to 600 MiB, 16 keep it under 400 at the speed of 32.
PIPE_BATCH = 16

class Analyzer:
    """Entities, figures and classification for articles, through the cheap-pass cascade.

    Each article is read in its language (:func:`~processors.languages.detect_language`,
    which also fills ``Article.language``): by the reader of that language's profile, or the
    English one for a language without a profile. The gazetteer is one for every language,
    its names in all their forms, so the parties' canonical ids do not depend on the language.

    :param readers: language code → :class:`Reader`; must hold :data:`DEFAULT_LANGUAGE`.
    :param loading: language code → a :class:`Reader` still being loaded (in the background):
        the first article of that language waits for it, the others do not.
    :param batch_size: texts per ``nlp.pipe`` batch (:data:`PIPE_BATCH`).
    :param n_process: worker processes for ``nlp.pipe``; 1 keeps the model in this process,
        which suits a streaming processor (scale out with more processors instead).
    """

    def __init__(
        self, readers: dict[str, Reader], gazetteer: Gazetteer, *, loading: Mapping[str, Future[Reader]] | None = None,
        batch_size: int = PIPE_BATCH, n_process: int = 1,
    ):
        if DEFAULT_LANGUAGE not in readers:
            raise ValueError(f"readers must include the default language {DEFAULT_LANGUAGE!r}")
        self._readers = dict(readers)
        self._loading = dict(loading or {})
        self._lock = threading.Lock()
        self.gazetteer = gazetteer
        self.batch_size = batch_size
        self.n_process = n_process

    @property
    def readers(self) -> dict[str, Reader]:
        """Every language's reader, once loaded."""
        return {language: self.reader(language) for language in [*self._readers, *self._loading]}

    @property
    def classifier(self) -> RulesClassifier:
        """The English classifier (its name is the classifier's name)."""
        return self._readers[DEFAULT_LANGUAGE].classifier

    @property
    def nlp(self) -> Language:
        """The English pipeline: the model named in ``model.name``."""
        return self._readers[DEFAULT_LANGUAGE].nlp

    @classmethod
    def from_settings(cls, model: ModelSettings, **options) -> Analyzer:
        """Load the language profiles, the gazetteer, the classifier's config and the spaCy model once.

        :raises ConfigError: a file is invalid or the model is not installed.
        """
        profiles = load_language_profiles(model.languages_dir)
        forms = CachedForms(name_forms(profiles), model.cache_dir, model.languages_dir)
        gazetteer = load_gazetteer(model.gazetteer_dir, forms)
        forms.save()
        base = load_classifier_config(model.classifier_config)
        readers = {DEFAULT_LANGUAGE: Reader(load_pipeline(model.name), RulesClassifier(base, gazetteer))}
        # Each profile's lexicons are checked now, its pipeline (natasha's models, for Russian)
        # loaded in the background: the first polls' articles meet the default reader meanwhile.
        classifiers = {
            language: RulesClassifier(language_config(base, Path(model.languages_dir) / f"{language}.yaml", language, profile.lexicons()), gazetteer)
            for language, profile in profiles.items()
        }
        loader = ThreadPoolExecutor(1, thread_name_prefix="load-language")
        loading = {
            language: loader.submit(_loaded_reader, profiles[language].pipeline, language, classifier)
            for language, classifier in classifiers.items()
        }
        loader.shutdown(wait=False)  # its thread ends when the last reader is loaded
        return cls(readers, gazetteer, loading=loading, **options)

    def reader(self, language: str) -> Reader:
        """The reader of ``language`` (the default one for a language without a profile),
        waiting for it if it is still being loaded."""
        with self._lock:
            if language in self._loading:
                self._readers[language] = self._loading.pop(language).result()
        return self._readers.get(language) or self._readers[DEFAULT_LANGUAGE]

    def warm_up(self) -> None:
        """Do now what the first articles would otherwise wait for: load the language
        identifier (loaded on first use, half a second) and run the default pipeline once
        (the others are run once as they load)."""
        detect_language(WARM_UP_TEXT)
        for reader in self._readers.values():
            reader.nlp(WARM_UP_TEXT)

    def analyze(self, articles: Sequence[Article]) -> list[Classified]:
        """Classify ``articles``, in order; only the cheap pass's candidates meet a pipeline."""
        articles = [_with_language(article) for article in articles]
        prepared = [(Passage.of(a.title, self.gazetteer), Passage.of(a.text, self.gazetteer)) for a in articles]
        verdicts = [self.reader(a.language).classifier.screen(title, body) for a, (title, body) in zip(articles, prepared, strict=True)]
        docs: dict[int, Doc] = {}
        for language in sorted({a.language for a in articles}):
            nlp = self.reader(language).nlp
            candidates = [i for i, (a, verdict) in enumerate(zip(articles, verdicts, strict=True)) if verdict is None and a.language == language]
            # spaCy refuses texts over nlp.max_length; the rare giant page is read up to the limit.
            texts = (articles[index].text[: nlp.max_length] for index in candidates)
            docs.update(zip(candidates, nlp.pipe(texts, batch_size=self.batch_size, n_process=self.n_process, disable=entity_components(nlp)), strict=True))
        classified: dict[int, tuple[list[Figure], Classification]] = {}
        for index, doc in docs.items():
            article, (title, body) = articles[index], prepared[index]
            sentences = sentence_spans(doc)
            figures = extract_figures(article.text, sentences, article.language)
            classified[index] = (figures, self.reader(article.language).classifier.classify(title, body, sentences, figures))
        for language in sorted({articles[index].language for index in docs}):
            cooperation = [index for index, (_, verdict) in classified.items() if verdict.is_cooperation and articles[index].language == language]
            docs.update(zip(cooperation, recognise_entities(self.reader(language).nlp, [docs[index] for index in cooperation], self.batch_size), strict=True))
        results = []
        for index, (article, (_, body)) in enumerate(zip(articles, prepared, strict=True)):
            if index in classified:
                figures, classification = classified[index]
                entities = merge_entities(docs[index], body.mentions)
            else:
                entities, figures = gazetteer_entities(body.mentions), []
                classification = self.reader(article.language).classifier.reject(verdicts[index])
            results.append(Classified(
                id=article.id, article=article, entities=entities, figures=figures,
                classification=classification, classified_at=utc_now(),
            ))
        return results

    def analyze_text(self, text: str, title: str = "", url: str = "") -> Classified:
        """Classify one text, as ``amur classify`` does; the article's source is "cli"."""
        return self.analyze([synthetic_article(text, title, url)])[0]


def _with_language(article: Article) -> Article:
    """The article with ``language`` settled (the declared one when the text agrees, else
    detected), and Chinese in Simplified characters, as every later step reads it."""
    language = detect_language(f"{article.title}\n{article.text}", article.language)
    update: dict = {} if language == article.language else {"language": language}
    if language == "zh":
        texts = {"title": article.title, "text": article.text, "summary": article.summary}
        update |= {field: simplified for field, text in texts.items() if (simplified := simplified_chinese(text)) != text}
    return article.model_copy(update=update) if update else article
