"""How Amur behaves towards each host it fetches from: a delay between requests, a bound on
the requests in flight, and the host's robots.txt. :class:`~connectors.fetch.Fetcher` asks
these before every request; all are shared by the threads of one process."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

from pipeline.core.errors import FetchError

__all__ = ["ROBOTS_RETRY_SECONDS", "ROBOTS_TTL_SECONDS", "HostTurns", "RobotsRules"]

log = logging.getLogger(__name__)

ROBOTS_TTL_SECONDS = 86_400.0  # a host's robots.txt is read again after a day
ROBOTS_RETRY_SECONDS = 600.0  # or after ten minutes, when it could not be read
FORGET_AFTER_HOSTS = 10_000  # past this many hosts, those long done with are forgotten


class HostTurns:
    """At least ``delay`` seconds between the starts of two requests to one host name, and at
    most ``connections`` requests in flight to it; the first request to a host does not wait."""

    def __init__(self, delay: float, connections: int):
        self.delay = delay
        self.connections = connections
        self._lock = threading.Lock()
        self._next_start: dict[str, float] = {}  # host → earliest monotonic start of its next request
        self._slots: dict[str, threading.BoundedSemaphore] = {}

    def wait_turn(self, url: str) -> None:
        """Block until a request to ``url`` may start without breaking the host's delay."""
        if self.delay <= 0:
            return
        host = urlsplit(url).hostname or ""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start.get(host, now))
            # Reserve the slot before sleeping, so concurrent callers queue up behind it.
            self._next_start[host] = start + self.delay
            if len(self._next_start) > FORGET_AFTER_HOSTS:
                self._next_start = {h: t for h, t in self._next_start.items() if t > now}
        if start > now:
            time.sleep(start - now)

    def slot(self, url: str) -> threading.BoundedSemaphore:
        """The semaphore bounding the requests in flight to ``url``'s host."""
        host = urlsplit(url).hostname or ""
        with self._lock:
            if host not in self._slots:
                self._slots[host] = threading.BoundedSemaphore(self.connections)
            return self._slots[host]


class RobotsRules:
    """Each site's robots.txt, read through ``read`` (a GET returning the text) once a day.

    :param user_agent: the agent the rules are asked about.
    :param read: fetches a URL's text, raising :class:`FetchError` as the fetcher does.
    """

    def __init__(self, user_agent: str, read: Callable[[str], str]):
        self.user_agent = user_agent
        self._read = read
        self._lock = threading.Lock()
        self._rules: dict[str, tuple[float, RobotFileParser | str]] = {}  # scheme://host → (read at, rules or why unreadable)

    def check(self, url: str) -> None:
        """Refuse ``url`` unless its site's robots.txt lets our user agent fetch it. No
        robots.txt (4xx) allows everything. One that cannot be read now (a 5xx, a network
        error) disallows everything until it answers, as RFC 9309 asks, and is asked again
        after :data:`ROBOTS_RETRY_SECONDS`: the page waits, retryable.

        :raises FetchError: disallowed (not retryable), or robots.txt unreachable (retryable).
        """
        parts = urlsplit(url)
        site = f"{parts.scheme}://{parts.netloc}"
        now = time.monotonic()
        with self._lock:
            cached = self._rules.get(site)
        if cached is None or now - cached[0] > ROBOTS_TTL_SECONDS:
            rules, read_at = self._rules_of(site), now
            if isinstance(rules, str):
                read_at = now - ROBOTS_TTL_SECONDS + ROBOTS_RETRY_SECONDS
            with self._lock:
                self._rules[site] = (read_at, rules)
                if len(self._rules) > FORGET_AFTER_HOSTS:
                    self._rules = {key: value for key, value in self._rules.items() if now - value[0] <= ROBOTS_TTL_SECONDS}
            cached = (read_at, rules)
        rules = cached[1]
        if isinstance(rules, str):
            raise FetchError(url, f"waiting: the site's robots.txt cannot be read now ({rules}), so nothing of it is fetched", retryable=True)
        if not rules.can_fetch(self.user_agent, url):
            raise FetchError(url, "refused: the site's robots.txt disallows this page for our user agent")

    def _rules_of(self, site: str) -> RobotFileParser | str:
        """The rules of ``site``'s robots.txt, or why it cannot be read now."""
        rules = RobotFileParser()
        try:
            text = self._read(f"{site}/robots.txt")
        except FetchError as exc:
            if exc.retryable:
                log.info("robots.txt of %s unreadable for now (%s); none of its pages is fetched meanwhile", site, exc.reason)
                return exc.reason
            rules.parse([])  # 404 and the like: no rules, everything allowed
            return rules
        rules.parse(text.splitlines())
        return rules
