"""Throughput of the processor's Analyzer against a bare spaCy pipeline, in one run.

Two streams of synthetic news-length articles (``benchmarks.corpus``):

* a mix where 5 % are Russia–China stories — what a general news stream looks like; the
  cheap pass should keep ~95 % of it away from the model (target: ≥ 10× the bare rate);
* candidates only — every article goes to the model (target: ≥ 0.8× the bare rate);
* and the candidate path in Russian and in Chinese, beside English's (Russian within 2×).

"Bare" is ``nlp.pipe`` of the full model as shipped (all components) over the same texts.
Both run in this one process, single-threaded. Peak memory is the process's maximum resident
set size right after the Analyzer's runs in every language, before the bare model is loaded.

    .venv/bin/python -m benchmarks.bench_processor [--articles 400] [--candidates 60]

Prints a table; asserts nothing (benchmarks are never tests).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import spacy
from spacy.language import Language

from pipeline.core.messages import Article
from pipeline.core.settings import ModelSettings
from processors.analyze import PIPE_BATCH, Analyzer, synthetic_article
from tests.support.corpus import synthetic_articles

BATCH = 100  # the runtime's default batch_size: articles per analyze()
LANGUAGE_ARTICLES = Path(__file__).resolve().parents[1] / "tests" / "resources" / "languages"
NOT_CANDIDATES = {"ru-seed-003", "ru-japan-lng", "zh-smuggling", "zh-belarus"}  # the cheap pass turns these away


def articles(count: int, candidate_share: float, seed: int) -> list[Article]:
    corpus = synthetic_articles(count, candidate_share, seed=seed)
    return [synthetic_article(text, title, url=f"https://bench.invalid/{seed}/{n}", source="bench") for n, (title, text, _) in enumerate(corpus)]


def timed(work: Callable[..., list], *args) -> tuple[list, float]:
    """What ``work(*args)`` returns, and the seconds it took."""
    started = time.perf_counter()
    result = work(*args)
    return result, time.perf_counter() - started


def analyze_all(analyzer: Analyzer, stream: Sequence[Article]) -> list:
    return [result for start in range(0, len(stream), BATCH) for result in analyzer.analyze(stream[start : start + BATCH])]


def bare_pipe(nlp: Language, texts: list[str]) -> list:
    return list(nlp.pipe(texts, batch_size=PIPE_BATCH))  # as the Analyzer pipes its candidates


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB elsewhere


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=400, help="articles in the 5%% mix")
    parser.add_argument("--candidates", type=int, default=60, help="articles in the candidates-only stream")
    parser.add_argument("--model", default=ModelSettings().name)
    args = parser.parse_args()

    streams = {"mix, 5% candidates": articles(args.articles, 0.05, seed=11), "candidates only": articles(args.candidates, 1.0, seed=12)}
    analyzer = Analyzer.from_settings(ModelSettings(name=args.model))
    analyze_all(analyzer, streams["candidates only"][:5])  # warm-up
    measured = {}
    for name, stream in streams.items():
        results, seconds = timed(analyze_all, analyzer, stream)
        to_model = sum(1 for r in results if not r.classification.reason.startswith("cheap pass"))
        positive = sum(1 for r in results if r.classification.is_cooperation)
        measured[name] = [len(stream) / seconds, to_model, positive]
    # The candidate path per language, side by side: the same number of articles of about the
    # same length, every one a candidate. Target: Russian within 2× of English.
    english = streams["candidates only"]
    length = sum(len(a.text) for a in english) / len(english)
    rates = {"en": measured["candidates only"][0]}
    for language in ("ru", "zh"):
        stream = language_stream(language, len(english), length)
        analyze_all(analyzer, stream[:5])  # warm-up
        results, seconds = timed(analyze_all, analyzer, stream)
        assert all(r.article.language == language for r in results)
        rates[language] = len(stream) / seconds
    processor_peak = peak_rss_mib()  # every language's pipeline loaded and run

    bare = spacy.load(args.model)
    bare_pipe(bare, [a.text for a in streams["candidates only"][:5]])  # warm-up
    for name, stream in streams.items():
        _, seconds = timed(bare_pipe, bare, [a.text for a in stream])
        measured[name].append(len(stream) / seconds)

    print(f"\nAmur processor benchmark — model {args.model} ({', '.join(analyzer.nlp.pipe_names)} on the candidate path; "
          f"bare: {', '.join(bare.pipe_names)}), one process, {BATCH} articles per analyze, {PIPE_BATCH} texts per pipe batch\n")
    print(f"{'stream':<22}{'articles':>9}{'to model':>10}{'positive':>10}{'Analyzer/s':>12}{'bare/s':>9}{'ratio':>8}{'target':>9}")
    targets = {"mix, 5% candidates": 10.0, "candidates only": 0.8}
    for name, (analyzer_rate, to_model, positive, bare_rate) in measured.items():
        ratio = analyzer_rate / bare_rate
        verdict = "ok" if ratio >= targets[name] else "MISSED"
        print(f"{name:<22}{len(streams[name]):>9}{to_model:>10}{positive:>10}{analyzer_rate:>12.1f}{bare_rate:>9.1f}"
              f"{ratio:>7.1f}×{'≥ ' + format(targets[name], 'g') + '×':>9} {verdict}")
    print(f"\nprocessor peak memory (max RSS after the Analyzer's runs in every language): {processor_peak:.0f} MiB (target ≤ 450)")

    print(f"\ncandidate path by language ({len(english)} articles of ~{length:.0f} characters each)")
    print(f"{'language':<10}{'Analyzer/s':>12}{'× English':>11}")
    for language, rate in rates.items():
        print(f"{language:<10}{rate:>12.1f}{rate / rates['en']:>10.2f}×")
    print("target: Russian ≥ 0.5× English" + (" ok" if rates["ru"] >= rates["en"] / 2 else " MISSED"))


def language_stream(language: str, count: int, length: float) -> list[Article]:
    """``count`` candidate articles in ``language``, made of our own articles in
    tests/resources/languages, each paragraph repeated to about ``length`` characters."""
    sources = [path for path in sorted(LANGUAGE_ARTICLES.glob(f"{language}-*.txt")) if path.stem not in NOT_CANDIDATES]
    stream = []
    for number in range(count):
        title, _, body = sources[number % len(sources)].read_text(encoding="utf-8").partition("\n\n")
        paragraphs = [line for line in body.splitlines() if line.strip()]
        text = "\n".join(paragraphs * max(1, round(length / max(len(body), 1))))
        stream.append(synthetic_article(text, title.strip(), url=f"https://bench.invalid/{language}/{number}", source="bench"))
    return stream


if __name__ == "__main__":
    main()
