"""The dashboard in headless Chromium, over a database a real pipeline run filled.

``amur run --once`` reads a local feed of four Russia–China stories and one unrelated
article, then ``amur serve`` serves the result; the browser lists, filters, opens stories,
reads the map and clicks it, and meets a title that tries to run a script.
"""

from __future__ import annotations

import httpx
import pytest
from selenium.common.exceptions import NoAlertPresentException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.support.dashboard import ServedDeployment, chrome

pytestmark = [pytest.mark.slow, pytest.mark.browser]

FREIGHT = "Amur Region and Heilongjiang agree to double freight over the Blagoveshchensk bridge"
TOURISM = "Primorye and Jilin launch yuan settlements for tourism operators"
CAMPUS = "Khabarovsk and Harbin universities open a joint engineering campus"
POWER = ('<script>alert(1)</script> Amur Region and Heilongjiang sign a power deal '
         '<img src=x onerror="window.amurXss=1">')


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    with ServedDeployment(tmp_path_factory.mktemp("dashboard")) as served:
        yield served


@pytest.fixture(scope="module")
def browser():
    driver = chrome()
    yield driver
    driver.quit()


def listed(browser) -> set[str]:
    return {link.text for link in browser.find_elements(By.CSS_SELECTOR, "li.story a.title")}


def follow(browser, element) -> None:
    """Click ``element`` and wait until the page it leads to has replaced this one."""
    page = browser.find_element(By.TAG_NAME, "html")
    element.click()

    def replaced(_driver) -> bool:
        try:
            page.is_enabled()
        except WebDriverException:
            # Stale, or, while the new document loads, "Node with given id does not belong to the
            # document": Chromium reports the old page's node gone either way.
            return True
        return False

    WebDriverWait(browser, 10).until(replaced)


def submit_filters(browser) -> None:
    follow(browser, browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]"))


def no_script_ran(browser) -> None:
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - reading it is the check
    assert browser.execute_script("return window.amurXss === undefined")


def test_the_dashboard_lists_the_run_s_stories_and_not_the_unrelated_article(deployment, browser):
    browser.get(f"{deployment.url}/")
    assert listed(browser) == {FREIGHT, TOURISM, CAMPUS, POWER}
    assert "salmon" not in browser.page_source.lower()


def test_a_region_filter_then_a_sector_filter_narrow_the_list_to_exactly_the_matching_stories(deployment, browser):
    browser.get(f"{deployment.url}/")
    Select(browser.find_element(By.NAME, "region")).select_by_value("RU-AMU")
    submit_filters(browser)
    assert "region=RU-AMU" in browser.current_url  # the view is a URL that can be shared
    assert listed(browser) == {FREIGHT, POWER}

    Select(browser.find_element(By.NAME, "region")).select_by_value("")
    Select(browser.find_element(By.NAME, "sector")).select_by_value("tourism")
    submit_filters(browser)
    assert listed(browser) == {TOURISM}

    browser.get(f"{deployment.url}/?region=CN-HL&sector=education")
    assert listed(browser) == {CAMPUS}


def test_a_pair_chosen_side_by_side_and_a_language_narrow_the_list_and_the_count_follows(deployment, browser):
    browser.get(f"{deployment.url}/")
    assert browser.find_element(By.ID, "count").text == "4 stories"
    Select(browser.find_element(By.NAME, "pair_russian")).select_by_value("RU-AMU")
    Select(browser.find_element(By.NAME, "pair_chinese")).select_by_value("CN-HL")
    submit_filters(browser)
    assert listed(browser) == {FREIGHT, POWER}
    assert browser.find_element(By.ID, "count").text == "2 stories"
    # The form shows the pair it filters by, and a language picked from a list keeps it.
    assert Select(browser.find_element(By.NAME, "pair_russian")).first_selected_option.get_attribute("value") == "RU-AMU"
    Select(browser.find_element(By.NAME, "language")).select_by_value("ru")
    submit_filters(browser)
    assert listed(browser) == set() and browser.find_element(By.ID, "count").text == "0 stories"

def test_a_story_page_shows_its_evidence_marked_in_the_text_and_its_outlets(deployment, browser):
    browser.get(f"{deployment.url}/?region=RU-KHA")
    follow(browser, browser.find_element(By.LINK_TEXT, CAMPUS))
    assert browser.find_element(By.ID, "story-title").text == CAMPUS
    evidence = [item.text for item in browser.find_elements(By.CSS_SELECTOR, "#evidence li")]
    assert evidence and all(sentence for sentence in evidence)
    marked = [mark.text for mark in browser.find_elements(By.CSS_SELECTOR, "#text mark")]
    assert marked and set(marked) <= set(evidence)
    outlets = browser.find_elements(By.CSS_SELECTOR, "#outlets tbody tr")
    assert len(outlets) == 1 and outlets[0].text.startswith("borderland")
    assert outlets[0].find_element(By.TAG_NAME, "a").get_attribute("href").endswith("/news/khabarovsk-harbin-campus.html")
    regions = browser.find_element(By.ID, "regions").text
    assert "Khabarovsk" in regions and "Heilongjiang" in regions
    assert [row.text.split()[0] for row in browser.find_elements(By.CSS_SELECTOR, "#versions tbody tr")] == ["1"]


def test_the_map_shows_the_cell_counts_and_a_click_lists_the_cell_s_stories(deployment, browser):
    browser.get(f"{deployment.url}/map")
    cells = {
        cell.get_attribute("data-pair"): int(cell.get_attribute("data-count"))
        for cell in browser.find_elements(By.CSS_SELECTOR, "#matrix td.cell")
    }
    assert {pair: count for pair, count in cells.items() if count} == {
        "RU-AMU:CN-HL": 2, "RU-PRI:CN-JL": 1, "RU-KHA:CN-HL": 1,
    }
    header = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#matrix tbody th")]
    assert header[0].startswith("Amur")  # the busiest pair's row comes first
    follow(browser, browser.find_element(By.CSS_SELECTOR, '#matrix td[data-pair="RU-AMU:CN-HL"] a'))
    assert "pair=RU-AMU%3ACN-HL" in browser.current_url
    assert listed(browser) == {FREIGHT, POWER}


def test_a_region_name_leads_to_its_page_and_a_partner_to_the_partner_s(deployment, browser):
    browser.get(f"{deployment.url}/?region=RU-KHA")
    follow(browser, browser.find_element(By.LINK_TEXT, CAMPUS))
    follow(browser, browser.find_element(By.CSS_SELECTOR, '#regions a[data-region="CN-HL"]'))
    assert browser.find_element(By.ID, "region").text.startswith("Heilongjiang")
    partners = {
        row.get_attribute("data-partner"): int(row.find_elements(By.TAG_NAME, "td")[1].text)
        for row in browser.find_elements(By.CSS_SELECTOR, "#partners tbody tr")
    }
    assert partners == {"RU-AMU": 2, "RU-KHA": 1}
    assert {item.get_attribute("data-sector") for item in browser.find_elements(By.CSS_SELECTOR, "#sectors li")} >= {"education"}
    assert sum(int(bar.get_attribute("data-count")) for bar in browser.find_elements(By.CSS_SELECTOR, "figure.overall rect")) == 3
    assert {link.text for link in browser.find_elements(By.CSS_SELECTOR, "#stories a.title")} == {FREIGHT, POWER, CAMPUS}
    follow(browser, browser.find_element(By.CSS_SELECTOR, '#partners a[data-region="RU-AMU"]'))
    assert browser.find_element(By.ID, "region").text.startswith("Amur")
    assert [row.get_attribute("data-partner") for row in browser.find_elements(By.CSS_SELECTOR, "#partners tbody tr")] == ["CN-HL"]

def test_the_geographic_map_draws_partners_at_their_centres_and_links_them(deployment, browser):
    browser.get(f"{deployment.url}/map")
    lines = {line.get_attribute("data-pair"): int(line.get_attribute("data-count")) for line in browser.find_elements(By.CSS_SELECTOR, "#geo line.pair")}
    assert lines == {"RU-AMU:CN-HL": 2, "RU-PRI:CN-JL": 1, "RU-KHA:CN-HL": 1}
    places = {place.get_attribute("data-region"): place for place in browser.find_elements(By.CSS_SELECTOR, "#geo circle.place")}
    assert len(places) == 123  # every federal subject and province, at its centre
    amur, harbin, vladivostok = (places[region] for region in ("RU-AMU", "CN-HL", "RU-PRI"))
    assert int(harbin.get_attribute("data-count")) == 3 and int(amur.get_attribute("data-count")) == 2
    # Blagoveshchensk is north of Harbin, Vladivostok south-east of it: the map is a map.
    assert float(amur.get_attribute("cy")) < float(harbin.get_attribute("cy")) < float(vladivostok.get_attribute("cy"))
    assert float(vladivostok.get_attribute("cx")) > float(harbin.get_attribute("cx"))
    line = browser.find_element(By.CSS_SELECTOR, '#geo line[data-pair="RU-AMU:CN-HL"]')
    browser.get(deployment.url + line.find_element(By.XPATH, "..").get_dom_attribute("href"))  # an SVG link's own href
    assert listed(browser) == {FREIGHT, POWER}

def test_a_title_with_a_script_and_an_onerror_image_is_shown_as_text_and_runs_nothing(deployment, browser):
    browser.get(f"{deployment.url}/")
    assert POWER in listed(browser)
    no_script_ran(browser)
    follow(browser, browser.find_element(By.PARTIAL_LINK_TEXT, "sign a power deal"))
    assert browser.find_element(By.ID, "story-title").text == POWER
    assert browser.find_elements(By.CSS_SELECTOR, "main img") == []
    no_script_ran(browser)


def test_health_reports_that_every_role_has_committed_everything(deployment):
    health = httpx.get(f"{deployment.url}/healthz", timeout=10).json()
    assert health["database"] == "ok"
    assert health["lag_records"] == {"processors": 0, "stories": 0, "sinks": 0}


def test_the_timeline_and_the_sources_pages(deployment, browser):
    browser.get(f"{deployment.url}/timeline?region=RU-AMU")
    overall = browser.find_elements(By.CSS_SELECTOR, "figure.overall rect")
    filtered = browser.find_elements(By.CSS_SELECTOR, "figure.filtered rect")
    assert sum(int(bar.get_attribute("data-count")) for bar in overall) == 4
    assert sum(int(bar.get_attribute("data-count")) for bar in filtered) == 2
    browser.get(f"{deployment.url}/sources")
    row = browser.find_element(By.CSS_SELECTOR, "#sources tbody tr").text
    assert row.startswith("borderland ok") and " 5 " in f" {row} "
