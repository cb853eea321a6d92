"""The analyzer's warm-up: what a processor does before it joins its group."""

import pytest

from processors import languages


@pytest.mark.slow
def test_warm_up_loads_the_language_identifier_so_the_first_article_does_not_wait_for_it(analyzer):
    languages._identifier.cache_clear()
    analyzer.warm_up()
    assert languages._identifier.cache_info().currsize == 1
    loads = languages._identifier.cache_info().misses
    analyzer.analyze_text("A trade fair opened in the harbour town on Monday.")
    assert languages._identifier.cache_info().misses == loads
