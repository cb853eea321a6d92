"""The canonical spelling of a URL, which an article's id is made from."""

from __future__ import annotations

import pytest

from connectors.urls import canonical_url


@pytest.mark.parametrize(("url", "expected"), [
    ("HTTP://News.Example.ORG/Path/Story", "http://news.example.org/Path/Story"),
    ("https://news.example:443/a", "https://news.example/a"),
    ("http://news.example:80/a", "http://news.example/a"),
    ("http://news.example:8080/a", "http://news.example:8080/a"),
    ("http://news.example:443/a", "http://news.example:443/a"),
    ("https://news.example", "https://news.example/"),
    ("https://news.example?b=1", "https://news.example/?b=1"),
    ("https://news.example/a/#section-2", "https://news.example/a/"),
    ("https://news.example/a/", "https://news.example/a/"),
    ("https://news.example/a?utm_source=rss&utm_Medium=x&id=7&fbclid=abc&gclid=1", "https://news.example/a?id=7"),
    ("https://news.example/a?yclid=1&mc_cid=2&mc_eid=3&ref=home&from=rss&rss=1", "https://news.example/a"),
    ("https://news.example/a?z=1&a=2&m=3", "https://news.example/a?a=2&m=3&z=1"),
    ("https://news.example/a?q=%D0%BC%D0%BE%D1%81%D1%82&x=a+b", "https://news.example/a?q=%D0%BC%D0%BE%D1%81%D1%82&x=a+b"),
    ("https://news.example/a?", "https://news.example/a"),
    ("http://[::1]:80/a", "http://[::1]/a"),
    ("  https://news.example/a  ", "https://news.example/a"),
])
def test_canonical_url(url, expected):
    assert canonical_url(url) == expected


def test_canonical_url_keeps_what_it_cannot_parse():
    assert canonical_url("http://news.example:notaport/a") == "http://news.example:notaport/a"
    assert canonical_url("mailto:desk@news.example") == "mailto:desk@news.example"
