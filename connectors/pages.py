"""An article page, from an item's link to an :class:`~pipeline.core.messages.Article`.

Shared by every connector whose items link to article pages. The article's URL, and so its
id, is where the page really is: the last URL of the redirect chain, or the page's own
canonical address (``<link rel=canonical>`` or ``og:url``, as trafilatura reports it) when
that is on the same site. One article reached through two links thus gets one id; a page
claiming to be another site's article is not believed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Self
from urllib.parse import urljoin

from connectors.extract import Extracted, extract_article, shared_extractor
from connectors.fetch import ACCEPT_HTML, Fetcher, shared_fetcher
from connectors.urls import canonical_url, same_site
from pipeline.core.connector import ConnectorContext, Item, PollingConnector, plausible_publication
from pipeline.core.messages import Article, article_id, utc_now
from pipeline.core.settings import SourceConfig
from pipeline.core.state import StateStore

__all__ = ["MAX_DATE_LAG", "PageConnector", "article_from_page", "article_url", "publication_date"]

MAX_DATE_LAG = timedelta(days=365)

log = logging.getLogger(__name__)


def article_url(final_url: str, declared: str | None) -> str:
    """The canonical URL of a page fetched from ``final_url`` that declares itself ``declared``."""
    if declared:
        candidate = urljoin(final_url, declared.strip())
        if same_site(candidate, final_url):
            return canonical_url(candidate)
        log.info("canonical link to another site ignored: page=%s declared=%s", final_url, candidate)
    return canonical_url(final_url)


def article_from_page(
    fetcher: Fetcher, item: Item, source: str, extract: Callable[[str, str], Extracted] = extract_article,
) -> Article:
    """Fetch and extract the page behind ``item``; the item's own fields fill what the page lacks.

    :param extract: what reads the page (:func:`~connectors.extract.extract_article`, or an
        :class:`~connectors.extract.ExtractorProcesses`' ``extract``).
    :raises SourceError: the page cannot be fetched (its robots.txt disallows it, say), or has no article text.
    """
    fetcher.check_robots(item.url)
    page = fetcher.fetch(item.url, accept=ACCEPT_HTML)
    extracted = extract(page.text, page.final_url)
    url = article_url(page.final_url, extracted.canonical_url)
    return Article(
        id=article_id(url),
        url=url,
        source=source,
        title=extracted.title or item.title,
        text=extracted.text,
        summary=item.summary or extracted.summary,
        language=extracted.language or item.language,
        authors=extracted.authors or list(item.authors),
        site_name=extracted.site_name,
        published_at=publication_date(item.published_at, extracted.published_at, utc_now()),
        fetched_at=utc_now(),
    )


class PageConnector(PollingConnector):
    """A polling connector whose items link to article pages (a feed's, a sitemap's).

    :param source: the source's entry in ``sources.yaml``.
    :param fetcher: the shared HTTP client.
    :param state: the shared state store (tables set up).
    :param extract: what reads an article page; :meth:`from_source` gives the connectors
        process's shared extractor processes.
    """

    def __init__(
        self, source: SourceConfig, fetcher: Fetcher, state: StateStore, extract: Callable[[str, str], Extracted] = extract_article,
    ):
        super().__init__(source, state)
        self.fetcher = fetcher
        self.extract = extract

    @classmethod
    def from_source(cls, source: SourceConfig, context: ConnectorContext) -> Self:
        return cls(source, shared_fetcher(context), context.state, shared_extractor(context).extract)

    def fetch_article(self, item: Item) -> Article:
        return article_from_page(self.fetcher, item, self.name, self.extract)


def publication_date(listed: datetime | None, stated: datetime | None, now: datetime) -> datetime | None:
    """When an article was published: the date its page states, else the date its listing gives.

    The page's own date comes first, since a feed's date is often when the item was updated or
    syndicated. Neither is believed when it cannot be a publication date
    (:func:`~pipeline.core.connector.plausible_publication`: before 1990, or ahead of ``now``
    beyond a clock's skew), and the page's is not when it falls more than
    :data:`MAX_DATE_LAG` before the listing's: an extractor that picked up a copyright year
    or an older story's date.
    """
    stated, listed = plausible_publication(stated, now), plausible_publication(listed, now)
    if stated is not None and (listed is None or stated >= listed - MAX_DATE_LAG):
        return stated
    if stated is not None:
        log.debug("page date %s not believed (listed %s, now %s)", stated.isoformat(), listed, now.isoformat())
    return listed
