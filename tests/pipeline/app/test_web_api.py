"""The web application over a database the real sinks filled, on SQLite and on PostgreSQL:
every filter, pagination, 404s and bad parameters, feeds with their validators, the OpenAPI
document, security headers, the access token, health and metrics."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

import feedparser
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from openapi_spec_validator import validate

from pipeline.app.web.app import create_app
from pipeline.app.web.server import make_server
from pipeline.core.db import make_engine
from pipeline.core.errors import ConfigError
from pipeline.core.settings import AmurSettings
from sinks.alerts import AlertsSink
from sinks.records import RecordsSink
from tests.support.messages import make_article, make_classified, make_story

NAMES = {"RU-PRI": "Primorsky Krai", "CN-HL": "Heilongjiang"}
GIST = "Primorsky Krai and Heilongjiang: agreement signed (energy)"


def dated(story, day: int, month: int = 11):
    moment = datetime(2026, month, day, 9, tzinfo=UTC)
    return story.model_copy(update={"published_at": moment, "alerted_at": moment.replace(hour=10)})


STORIES = {
    "power": dated(make_story(
        "https://a.example/power", regions=["RU-PRI", "CN-HL"], sectors=["energy"], level="interregional", score=0.9,
        language="en", sources=["tass", "xinhua"], title="Primorye and Heilongjiang agree a power line",
        summary="The two regions signed a grid link.", names=NAMES).model_copy(update={"gist_en": GIST}), 2),
    "buses": dated(make_story(
        "https://a.example/buses", regions=["RU-PRI", "CN-JL"], sectors=["tourism"], level="municipal", score=0.6,
        language="ru", sources=["vl-news"], title="Туристические автобусы пойдут в Хуньчунь"), 10),
    "bridge": dated(make_story(
        "https://a.example/bridge", regions=["RU-AMU", "CN-HL"], sectors=["transport_logistics"], level="national",
        score=0.4, language="en", sources=["kremlin"], title="A second rail bridge over the Amur"), 20, 10),
    "grain": dated(make_story(
        "https://a.example/grain", regions=["RU-ZAB", "CN-NM"], sectors=["agriculture", "trade"], level="corporate",
        score=0.75, language="zh", sources=["xinhua"], title="外贝加尔粮食经满洲里出口"), 20),
    "campus": dated(make_story(
        "https://a.example/campus", regions=["RU-KHA", "CN-HL"], sectors=["education"], level="interregional",
        score=0.8, language="en", sources=["tass"], title="Khabarovsk and Harbin universities open a joint campus"), 25),
    "script": dated(make_story(
        "https://a.example/script", regions=["RU-PRI", "CN-HL"], sectors=["energy", "trade"], level="corporate",
        score=0.7, language="en", sources=["vl-news", "tass"],
        title="<script>alert(1)</script> Primorye buys <img src=x onerror=alert(2)> power from Heilongjiang",
        summary="A utility deal."), 26),
}
NEWEST_FIRST = ["script", "campus", "grain", "buses", "power", "bridge"]
SUBSCRIPTIONS = """\
subscriptions:
  - name: all
  - name: campus-news
    filters: {regions: [CN-HL], keywords: [campus]}
"""


@pytest.fixture
def served(database_url, tmp_path):
    """A client of the application over a database filled by the atom and records sinks."""
    engine = make_engine(database_url)
    stories = AlertsSink(engine)
    stories.setup()
    for story in STORIES.values():
        stories.add(story)
    assert stories.flush() == []
    records = RecordsSink(engine)
    records.setup()
    records.add(make_classified(make_article(STORIES["power"].url)))
    assert records.flush() == []
    (tmp_path / "sources.yaml").write_text("sources:\n  - name: tass\n    url: https://tass.example/rss\n")
    (tmp_path / "subscriptions.yaml").write_text(SUBSCRIPTIONS)
    settings = AmurSettings(database_url=database_url, embedded={"path": str(tmp_path / "log.sqlite")})
    client = TestClient(create_app(settings, tmp_path / "amur.yaml"), base_url="http://127.0.0.1")
    client.stories_sink = stories
    yield client
    engine.dispose()


def titles_of(response) -> list[str]:
    assert response.status_code == 200, response.text
    by_title = {story.title: name for name, story in STORIES.items()}
    return [by_title[story["title"]] for story in response.json()["stories"]]


@pytest.mark.parametrize(("query", "expected"), [
    ("", NEWEST_FIRST),
    ("region=CN-HL", ["script", "campus", "power", "bridge"]),
    ("region=RU-PRI&region=RU-ZAB", ["script", "grain", "buses", "power"]),
    ("pair=RU-PRI:CN-HL", ["script", "power"]),
    ("pair=RU-PRI:CN-JL&pair=RU-KHA:CN-HL", ["campus", "buses"]),
    ("pair=RU-ZAB:CN-HL", []),
    ("sector=energy", ["script", "power"]),
    ("sector=trade&sector=education", ["script", "campus", "grain"]),
    ("level=corporate", ["script", "grain"]),
    ("level=national&level=municipal", ["buses", "bridge"]),
    ("min_score=0.75", ["campus", "grain", "power"]),
    ("language=ru&language=zh", ["grain", "buses"]),
    ("source=xinhua", ["grain", "power"]),
    ("since=2026-11-20", ["script", "campus", "grain"]),
    ("until=2026-11-02", ["power", "bridge"]),
    ("since=2026-11-02&until=2026-11-10", ["buses", "power"]),
    ("q=POWER", ["script", "power"]),
    ("q=grid", ["power"]),
    ("q=100%25", []),
    ("region=CN-HL&sector=energy&min_score=0.8", ["power"]),
])
def test_every_filter_selects_exactly_the_matching_stories(served, query, expected):
    assert titles_of(served.get(f"/api/stories?{query}")) == expected


def test_pages_walk_every_story_once_newest_first(served):
    seen, cursor = [], None
    while True:
        response = served.get("/api/stories", params={"limit": 4, **({"cursor": cursor} if cursor else {})})
        seen += titles_of(response)
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == NEWEST_FIRST
    first = served.get("/api/stories?limit=2&region=CN-HL").json()
    assert titles_of(served.get(f"/api/stories?limit=2&region=CN-HL&cursor={first['next_cursor']}")) == ["power", "bridge"]


@pytest.mark.parametrize(("query", "parameter"), [
    ("min_score=2", "min_score"),
    ("min_score=high", "min_score"),
    ("region=Primorye", "region"),
    ("pair=RU-PRI", "pair"),
    ("level=regional", "level"),
    ("since=yesterday", "since"),
    ("limit=0", "limit"),
    ("limit=100000", "limit"),
    ("cursor=not-a-cursor", "cursor"),
    ("regoin=RU-PRI", "regoin"),
    ("sector=energyy", "sector"),
])
def test_a_bad_parameter_is_a_422_naming_it(served, query, parameter):
    response = served.get(f"/api/stories?{query}")
    assert response.status_code == 422
    assert [error["parameter"] for error in response.json()["errors"]] == [parameter]
    assert parameter in response.json()["detail"]


@pytest.mark.parametrize(("path", "parameter", "said"), [
    ("/api/stories?region=RU-KHB", "region", "unknown region 'RU-KHB'; nearest: "),
    ("/api/stories?pair=RU-PRI:CN-HX", "pair", "unknown region 'CN-HX'"),
    ("/api/stories?language=jp", "language", "unknown language 'jp'"),
    ("/api/stories?sector=transport", "sector", "did you mean transport_logistics?"),
    ("/api/stories?level=nationl", "level", "did you mean national"),
    ("/api/pairs?region=RU-KHB", "region", "RU-KHA (Khabarovsk Krai)"),
    ("/feeds/filter.atom?region=RU-KHB", "region", "RU-KHA (Khabarovsk Krai)"),
])
def test_a_value_that_does_not_exist_is_a_422_with_the_nearest_valid_ones(served, path, parameter, said):
    response = served.get(path, headers={"Accept": "application/json"})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["parameter"] == parameter and said in error["message"], error


def test_the_dashboard_says_which_filter_value_does_not_exist(served):
    response = served.get("/?region=RU-KHB")
    assert response.status_code == 422 and "RU-KHA (Khabarovsk Krai)" in response.text

def test_dates_in_the_wrong_order_are_refused(served):
    response = served.get("/api/stories?since=2026-11-20&until=2026-11-01")
    assert response.status_code == 422
    assert "since must not be after until" in response.json()["detail"]


def test_a_story_with_its_versions_and_unknown_ids(served):
    power = STORIES["power"]
    served.stories_sink.add(power.model_copy(update={"version": 2, "sectors": ["energy", "industry"]}))
    assert served.stories_sink.flush() == []
    body = served.get(f"/api/stories/{power.id}").json()
    assert body["story"]["title"] == power.title
    assert body["story"]["sectors"] == ["energy", "industry"]
    assert [version["version"] for version in body["versions"]] == [1, 2]
    assert body["versions"][0]["outlets"] == ["tass", "xinhua"]
    assert served.get("/api/stories?sector=industry").json()["stories"][0]["id"] == power.id
    assert served.get(f"/api/stories/{'0' * 32}").status_code == 404
    assert served.get("/api/stories/not-an-id").status_code == 422


def test_a_region_page_shows_its_partners_sectors_weeks_latest_stories_and_feed(served):
    page = served.get("/regions/RU-PRI")
    assert page.status_code == 200
    html = page.text
    # Primorye's partners: Heilongjiang in two stories (power, script), Jilin in one (buses).
    partners = re.findall(r'<tr data-partner="(CN-[A-Z]+)"><td><a class="tag region" href="/regions/\1"[^>]*>([^<]+)</a></td><td><a href="([^"]+)">(\d+)</a>', html)
    assert [(region, int(count)) for region, _, _, count in partners] == [("CN-HL", 2), ("CN-JL", 1)]
    assert partners[0][2] == "/?pair=RU-PRI%3ACN-HL"
    sectors = dict(re.findall(r'<li data-sector="([a-z_]+)">[^:]+: (\d+)</li>', html))
    assert sectors == {"energy": "2", "tourism": "1", "trade": "1"}
    assert 'href="/feeds/filter.atom?region=RU-PRI"' in html and "Russian federal subject" in html
    assert [story for story in NEWEST_FIRST if f'data-story="{STORIES[story].id}"' in html] == ["script", "buses", "power"]
    assert 'data-week=' in html
    # Every region a page names links to its page.
    assert 'href="/regions/CN-HL"' in served.get(f"/stories/{STORIES['power'].id}").text
    assert 'href="/regions/RU-PRI"' in served.get("/").text and 'href="/regions/RU-PRI"' in served.get("/map").text


def test_the_timeline_stacks_each_week_by_main_sector_on_labelled_axes(served):
    html = served.get("/timeline").text
    overall = html[html.index('class="timeline overall"'):html.index("</figure>")]
    segments = re.findall(r'class="sector-([a-z_]+)" x="\d+" y="\d+" width="10" height="\d+" data-week="([\d-]+)" data-sector="\1" data-count="(\d+)"', overall)
    by_week: dict[str, dict[str, int]] = {}
    for sector, week, count in segments:
        by_week.setdefault(week, {})[sector] = int(count)
    # Each story counts once, under its first sector: the newest week's two stories are campus and script.
    assert by_week[max(by_week)] == {"education": 1, "energy": 1}
    assert sum(sum(week.values()) for week in by_week.values()) == len(STORIES)
    assert re.search(r'class="y-label"[^>]*>2</text>', overall) and re.search(r'class="x-label"[^>]*>\d{4}-\d{2}-\d{2}</text>', overall)
    assert '<span class="swatch sector-education"></span>education' in html

def test_a_region_that_does_not_exist_is_a_plain_not_found_page(served):
    response = served.get("/regions/RU-XYZ")
    assert response.status_code == 404 and "there is no such region" in response.text
    assert served.head("/regions/CN-HL").status_code == 200

def test_a_mistyped_story_link_is_a_plain_not_found_page(served):
    for link in ("/stories/not-an-id", f"/stories/{'0' * 32}"):
        response = served.get(link)
        assert response.status_code == 404 and response.headers["content-type"].startswith("text/html")
        assert "no such story" in response.text or "no story" in response.text
        assert "[0-9a-f]" not in response.text


@pytest.mark.parametrize("path", ["/", "/api/stories", "/feeds/all.atom", "/sources", "/healthz", "/static/amur.css"])
def test_head_is_answered_wherever_get_is(served, path):
    get, head = served.get(path), served.head(path)
    assert get.status_code == head.status_code == 200
    assert head.headers["content-type"] == get.headers["content-type"]


def test_an_article_record_and_an_unknown_one(served):
    article = make_article(STORIES["power"].url)
    body = served.get(f"/api/articles/{article.id}").json()
    assert body["url"] == article.url
    assert body["classification"]["is_cooperation"] is True
    assert served.get(f"/api/articles/{'f' * 32}").status_code == 404


def test_pairs_count_stories_and_their_sectors(served):
    pairs = served.get("/api/pairs").json()
    counts = {(pair["russian"], pair["chinese"]): pair["stories"] for pair in pairs}
    assert counts == {
        ("RU-PRI", "CN-HL"): 2, ("RU-PRI", "CN-JL"): 1, ("RU-AMU", "CN-HL"): 1, ("RU-ZAB", "CN-NM"): 1,
        ("RU-KHA", "CN-HL"): 1,
    }
    assert pairs[0]["russian_name"] == "Primorsky Krai" and pairs[0]["chinese_name"] == "Heilongjiang Province"
    assert pairs[0]["sectors"] == {"energy": 2, "trade": 1}
    assert [(p["russian"], p["stories"]) for p in served.get("/api/pairs?sector=energy&limit=1").json()] == [("RU-PRI", 2)]
    assert served.get("/api/pairs?limit=0").status_code == 422


def test_the_filtered_atom_feed_parses_and_holds_only_matching_stories(served):
    response = served.get("/feeds/filter.atom?region=RU-PRI&sector=energy")
    assert response.headers["content-type"].startswith("application/atom+xml")
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.bozo_exception
    assert {entry.link for entry in parsed.entries} == {STORIES["power"].url, STORIES["script"].url}
    assert parsed.feed.links[0].href.endswith("/feeds/filter.atom?region=RU-PRI&sector=energy")
    # The title says what the feed filters, by the names the stories give; categories carry labels.
    assert parsed.feed.title == "Amur: filter — Primorsky Krai; energy"
    assert {(tag.term, tag.label) for tag in parsed.entries[0].tags if tag.scheme == "urn:amur:sector"} >= {("energy", "energy")}
    assert served.get("/feeds/filter.json?region=RU-PRI&sector=energy").json()["items"][0]["url"] == STORIES["script"].url
    assert served.get("/feeds/filter.atom?sector=Energy!").status_code == 422


def test_feeds_answer_their_validators_with_304(served):
    first = served.get("/feeds/all.atom")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert served.get("/feeds/all.atom", headers={"If-None-Match": etag}).status_code == 304
    assert served.get("/feeds/all.atom", headers={"If-Modified-Since": modified}).status_code == 304
    assert served.get("/feeds/all.atom", headers={"If-None-Match": '"other"'}).status_code == 200
    empty = served.get("/feeds/filter.json?region=RU-SAK")
    assert served.get("/feeds/filter.json?region=RU-SAK", headers={"If-None-Match": empty.headers["etag"]}).status_code == 304
    served.stories_sink.add(STORIES["bridge"].model_copy(update={"version": 2, "updated_at": datetime.now(UTC)}))
    assert served.stories_sink.flush() == []
    changed = served.get("/feeds/all.atom", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


def test_subscription_feeds_apply_every_filter_and_unknown_ones_are_404(served):
    feed = served.get("/feeds/campus-news.json").json()
    assert [item["url"] for item in feed["items"]] == [STORIES["campus"].url]
    assert len(feedparser.parse(served.get("/feeds/all.atom").content).entries) == len(STORIES)
    missing = served.get("/feeds/nobody.atom")
    assert missing.status_code == 404 and "campus-news" in missing.json()["detail"]


def test_the_openapi_document_is_valid_and_documents_every_filter(served):
    document = served.get("/openapi.json").json()
    validate(document)
    assert {"/api/stories", "/api/stories/{story_id}", "/api/articles/{article_id}", "/api/pairs"} <= set(document["paths"])
    parameters = {parameter["name"] for parameter in document["paths"]["/api/stories"]["get"]["parameters"]}
    assert parameters == {"region", "pair", "sector", "level", "min_score", "language", "source", "since", "until",
                          "q", "cursor", "limit"}
    assert all(not path.startswith(("/map", "/stories")) for path in document["paths"])


def test_pages_escape_web_text_under_a_strict_content_security_policy(served):
    page = served.get("/")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "<script>alert(1)</script>" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    story = served.get(f"/stories/{STORIES['script'].id}")
    assert story.status_code == 200 and "&lt;img src=x onerror=alert(2)&gt;" in story.text
    assert served.get(f"/stories/{'0' * 32}").status_code == 404
    assert served.get("/?min_score=7").status_code == 422


def test_the_server_changes_nothing(served):
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert served.request(method, "/api/stories").status_code == 405
        assert served.request(method, f"/api/stories/{STORIES['power'].id}").status_code == 405
    assert len(served.get("/api/stories").json()["stories"]) == len(STORIES)


def test_health_and_metrics(served):
    health = served.get("/healthz").json()
    assert health["status"] == "ok" and health["lag_seconds"]["alerts"] >= 0
    assert health["lag_records"].startswith("no embedded log yet")  # and the server made none
    served.get("/api/stories")
    metrics = served.get("/metrics").text
    assert "amur_stories 6.0" in metrics
    assert 'amur_sources{status="never polled"} 1.0' in metrics
    assert 'amur_http_requests_total{route="/api/stories",status="200"}' in metrics
    served.app.state.amur.engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2")
    down = served.get("/healthz")
    assert down.status_code == 503 and "unreachable" in down.json()["database"]


def test_a_configured_token_guards_everything_but_healthz(database_url, tmp_path):
    engine = make_engine(database_url)
    AlertsSink(engine).setup()
    (tmp_path / "sources.yaml").write_text("sources: []\n")
    client = TestClient(
        create_app(AmurSettings(database_url=database_url), tmp_path / "amur.yaml", access_token="s3cret"), base_url="http://127.0.0.1",
    )
    assert client.get("/api/stories").status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/stories", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    basic = base64.b64encode(b"anyone:s3cret").decode()
    assert client.get("/map", headers={"Authorization": f"Basic {basic}"}).status_code == 200
    assert client.get("/healthz").status_code == 200
    engine.dispose()


def test_binding_beyond_loopback_needs_a_token_and_an_old_schema_is_refused(tmp_path):
    settings = AmurSettings(database_url=f"sqlite:///{tmp_path / 'amur.sqlite'}")
    with pytest.raises(ConfigError) as refused:
        make_server(settings, tmp_path / "amur.yaml", host="0.0.0.0", environ={})
    assert refused.value.problems[0].key == "serve.host" and "AMUR_SERVE_TOKEN" in refused.value.problems[0].hint
    with pytest.raises(ConfigError) as old:
        make_server(settings, tmp_path / "amur.yaml", environ={})
    assert "amur db upgrade" in old.value.problems[0].hint
    engine = make_engine(settings.database_url)
    with engine.connect() as connection:
        assert sa.inspect(connection).get_table_names() == []  # the server created nothing
    engine.dispose()


def test_the_english_gist_is_beside_the_title_in_the_api_the_pages_and_the_feeds(served):
    story_id = STORIES["power"].id
    assert served.get(f"/api/stories/{story_id}").json()["story"]["gist_en"] == GIST
    assert GIST in served.get(f"/stories/{story_id}").text
    assert GIST in served.get("/").text
    feed = feedparser.parse(served.get("/feeds/filter.atom?region=RU-PRI").content)
    assert any(GIST in entry.content[0].value for entry in feed.entries)
