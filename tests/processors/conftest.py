"""Fixtures for the processor tests: the gazetteer, the classifier and, once per session,
the spaCy model (tests that use it are marked ``slow``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.core.settings import ModelSettings
from processors.analyze import Analyzer
from processors.classify import Passage, RulesClassifier, load_classifier_config
from processors.gazetteer import Gazetteer, load_gazetteer

REPO = Path(__file__).resolve().parents[2]
GAZETTEER_DIR = REPO / "config" / "gazetteer"
CLASSIFIER_CONFIG = REPO / "config" / "classifier.yaml"
LANGUAGES_DIR = REPO / "config" / "languages"


@pytest.fixture(scope="session")
def gazetteer() -> Gazetteer:
    return load_gazetteer(GAZETTEER_DIR)


@pytest.fixture(scope="session")
def classifier_config_path() -> Path:
    return CLASSIFIER_CONFIG


@pytest.fixture(scope="session")
def classifier(gazetteer: Gazetteer) -> RulesClassifier:
    return RulesClassifier(load_classifier_config(CLASSIFIER_CONFIG), gazetteer)


@pytest.fixture(scope="session")
def analyzer() -> Analyzer:
    """The whole cascade with the real model, loaded once for the session."""
    return Analyzer.from_settings(ModelSettings(
        gazetteer_dir=str(GAZETTEER_DIR), classifier_config=str(CLASSIFIER_CONFIG), languages_dir=str(LANGUAGES_DIR),
    ))


@pytest.fixture(scope="session")
def classify_text(gazetteer: Gazetteer, classifier: RulesClassifier):
    """Classify a short text without the model: sentences end at ". ", "! " or "? "."""

    def classify(text: str, title: str = ""):
        sentences = [(m.start(), m.end()) for m in re.finditer(r"[^.!?]+(?:[.!?]+|$)", text)]
        return classifier.classify(Passage.of(title, gazetteer), Passage.of(text, gazetteer), sentences)

    return classify
