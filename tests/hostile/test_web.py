"""No request can make the server work without bound: list filters, dates and cursors are
bounded and refused with 422, and the timeline draws at most ten years."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from pipeline.app.web.server import make_server
from pipeline.errors import ConfigError
from pipeline.settings import AmurSettings
from tests.pipeline.app.test_web_api import STORIES, dated, served  # noqa: F401 - served: the application over a filled database


@pytest.mark.parametrize("query", [
    "&".join(f"source=s{n}" for n in range(101)),
    "&".join(f"region=RU-P{n % 10}" for n in range(101)),
    "until=9999-12-31",
    "since=0001-01-01",
    "cursor=" + base64.urlsafe_b64encode(f"0001-01-01T00:00:00+00:00|{'a' * 32}".encode()).decode().rstrip("="),
])
def test_an_unbounded_or_absurd_parameter_is_a_422_with_the_security_headers(served, query):
    response = served.get(f"/api/stories?{query}")
    assert response.status_code == 422, response.text
    assert response.headers.get("x-content-type-options") == "nosniff"
    page = served.get(f"/?{query}")
    assert page.status_code in (400, 422) and "Traceback" not in page.text


def test_a_hundred_values_are_still_a_filter(served):
    response = served.get("/api/stories?" + "&".join(f"source=s{n}" for n in range(99)) + "&source=tass")
    assert response.status_code == 200, response.text


def test_a_story_dated_at_year_one_draws_no_two_thousand_years_of_timeline(served):
    ancient = dated(STORIES["power"].model_copy(update={"id": "e" * 32, "url": "https://a.example/ancient"}), 2)
    ancient = ancient.model_copy(update={"published_at": datetime(1, 1, 1, tzinfo=UTC)})
    served.stories_sink.add(ancient)
    assert served.stories_sink.flush() == []
    response = served.get("/timeline")
    assert response.status_code == 200
    assert len(response.content) < 2_000_000


def test_a_short_access_token_is_refused_at_start(tmp_path):
    settings = AmurSettings(database_url=f"sqlite:///{tmp_path / 'amur.sqlite'}")
    with pytest.raises(ConfigError) as refused:
        make_server(settings, tmp_path / "amur.yaml", environ={"AMUR_SERVE_TOKEN": "x"})
    (problem,) = refused.value.problems
    assert problem.key == "serve.access_token_env" and "1 characters" in problem.message and "at least 32" in problem.hint
