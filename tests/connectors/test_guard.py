"""The destination guard: no fetch reaches a loopback, private, link-local or reserved
address unless fetch.allow_networks opens it — at the first request, at every redirect hop
and after a DNS answer changes.

No packet leaves the machine here. Names resolve through a resolver seam, and every
connection goes through a dialer seam that records the address it was asked for and connects
only to 127.0.0.1 (anything else is refused and recorded, so a broken guard fails the test
instead of reaching out). The real-socket cases use a second loopback address, 127.0.0.2,
left outside the allowed range.
"""

from __future__ import annotations

import ipaddress

import httpcore
import httpx
import pytest

from connectors.feed import FeedConnector
from connectors.fetch import Fetcher
from pipeline.core.errors import FetchError
from pipeline.core.guard import AddressPolicy, GuardedTransport
from pipeline.core.settings import FetchSettings, SourceConfig
from tests.support.local_site import redirect_to

ONLY_THE_SITE = ["127.0.0.1/32"]
NAMES = {"intranet.test": ["10.0.0.1"], "metadata.test": ["169.254.169.254"], "mixed.test": ["10.1.2.3", "127.0.0.1"]}


class Network:
    """The resolver and dialer seams: answers from a table, connections recorded."""

    def __init__(self, names: dict[str, list] | None = None):
        self.names = dict(NAMES, **(names or {}))
        self.lookups: list[str] = []
        self.dialled: list[str] = []

    def resolve(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        answers = self.names.get(host)
        if answers is None:
            raise httpcore.ConnectError(f"getaddrinfo failed: [Errno -2] Name or service not known ({host})")
        return answers.pop(0) if answers and isinstance(answers[0], list) else answers

    def dial(self, address: str, port: int, **options) -> httpcore.NetworkStream:
        self.dialled.append(address)
        if address != "127.0.0.1":
            raise httpcore.ConnectError(f"the test network refuses {address}: only 127.0.0.1 is reachable")
        return httpcore.SyncBackend().connect_tcp(address, port, **options)


def guarded_fetcher(network: Network, allow=ONLY_THE_SITE) -> Fetcher:
    settings = FetchSettings(timeout_seconds=2, per_host_delay_seconds=0, allow_networks=allow)
    transport = GuardedTransport(AddressPolicy(settings.allow_networks), network.resolve, network.dial)
    return Fetcher(settings, httpx.Client(transport=transport, follow_redirects=False))


def refusal(fetcher: Fetcher, url: str) -> FetchError:
    with pytest.raises(FetchError) as caught:
        fetcher.fetch(url)
    assert caught.value.retryable is False
    return caught.value


@pytest.mark.parametrize(("url", "expected"), [
    ("http://127.0.0.1/", "refused: 127.0.0.1 is a loopback address (fetch.allow_networks to allow)"),
    ("http://10.0.0.1/admin", "refused: 10.0.0.1 is a private address (fetch.allow_networks to allow)"),
    ("http://169.254.169.254/latest/meta-data/", "refused: 169.254.169.254 is a link-local address"),
    ("http://[fd00::1]/", "refused: fd00::1 is a private address"),
    ("http://[::ffff:192.168.1.1]/", "refused: ::ffff:192.168.1.1 is a private address"),
    ("http://224.0.0.1/", "refused: 224.0.0.1 is a multicast address"),
    ("http://0.0.0.0/", "refused: 0.0.0.0 is an unspecified address"),
    ("http://240.0.0.1/", "refused: 240.0.0.1 is a reserved address"),
    ("http://intranet.test/wiki", "refused: intranet.test resolves to 10.0.0.1, a private address"),
    ("http://metadata.test/", "refused: metadata.test resolves to 169.254.169.254, a link-local address"),
])
def test_non_public_destinations_are_refused_before_any_connection(url, expected):
    network = Network()
    error = refusal(guarded_fetcher(network, allow=[]), url)
    assert expected in str(error)
    assert network.dialled == []


def test_a_redirect_from_an_allowed_site_to_a_private_one_is_refused_at_that_hop(local_site):
    network = Network()
    local_site.add_handler("/story", redirect_to("http://metadata.test/latest/meta-data/iam"))
    error = refusal(guarded_fetcher(network), local_site.url("/story"))
    assert "refused: metadata.test resolves to 169.254.169.254, a link-local address" in str(error)
    assert "(at http://metadata.test/latest/meta-data/iam)" in str(error)
    assert network.dialled == ["127.0.0.1"]  # the site itself, and nothing after it


def test_of_a_name_s_answers_only_an_allowed_one_is_dialled(local_site):
    network = Network()
    local_site.add("/page", b"<html><body>public enough</body></html>")
    port = local_site.base_url.rsplit(":", 1)[1]
    assert guarded_fetcher(network).fetch(f"http://mixed.test:{port}/page").status == 200
    assert network.dialled == ["127.0.0.1"]


def test_a_dns_answer_that_changes_after_the_check_is_never_connected_to(local_site):
    """Rebinding: the name first resolves to the allowed site, then to a private address. The
    connection goes to the address that was checked; the next connection is checked again."""
    network = Network({"rebind.test": [["127.0.0.1"], ["10.0.0.1"]]})
    local_site.add("/one", b"<html>first</html>")
    port = local_site.base_url.rsplit(":", 1)[1]
    fetcher = guarded_fetcher(network)
    assert fetcher.fetch(f"http://rebind.test:{port}/one").status == 200
    fetcher._client.close()  # drop the pooled connection: the next request must connect again
    fetcher._client = httpx.Client(transport=GuardedTransport(
        AddressPolicy(fetcher.settings.allow_networks), network.resolve, network.dial))
    error = refusal(fetcher, f"http://rebind.test:{port}/one")
    assert "rebind.test resolves to 10.0.0.1, a private address" in str(error)
    assert network.dialled == ["127.0.0.1"]


def test_a_second_loopback_address_outside_the_allowed_range_is_refused_over_real_sockets(local_site, fetch_settings):
    port = local_site.base_url.rsplit(":", 1)[1]
    local_site.add_handler("/hop", redirect_to(f"http://127.0.0.2:{port}/other"))
    local_site.add("/ok", b"<html>fine</html>")
    with Fetcher(fetch_settings.model_copy(update={"allow_networks": [ipaddress.ip_network("127.0.0.1/32")]})) as fetcher:
        assert fetcher.fetch(local_site.url("/ok")).status == 200
        error = refusal(fetcher, local_site.url("/hop"))
    assert f"refused: 127.0.0.2 is a loopback address (fetch.allow_networks to allow) (at http://127.0.0.2:{port}/other)" in str(error)


def test_the_default_settings_refuse_loopback_and_a_refusal_is_not_a_dns_error(local_site):
    with Fetcher(FetchSettings(per_host_delay_seconds=0)) as fetcher:
        error = refusal(fetcher, local_site.url("/anything"))
    assert "127.0.0.1 is a loopback address" in str(error)
    assert local_site.requests == []


def test_each_refused_link_fails_its_item_only_and_the_poll_goes_on(local_site, resource, state):
    network = Network()
    port = local_site.base_url.rsplit(":", 1)[1]
    bad_links = {
        f"http://127.0.0.2:{port}/a": "127.0.0.2 is a loopback address",
        "http://10.0.0.1/b": "10.0.0.1 is a private address",
        "http://169.254.169.254/latest/meta-data/": "169.254.169.254 is a link-local address",
        "http://intranet.test/c": "intranet.test resolves to 10.0.0.1, a private address",
    }
    items = "".join(f"<item><title>Bad {n}</title><link>{link}</link></item>" for n, link in enumerate(bad_links))
    good = local_site.url("/articles/ferry-line")
    feed = f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{items}' \
           f"<item><title>Ferry</title><link>{good}</link></item></channel></rss>"
    local_site.add("/feed.rss", feed.encode(), "application/rss+xml")
    local_site.add("/articles/ferry-line", resource("pages/ferry-line.html"))

    source = SourceConfig(name="mixed-links", url=local_site.url("/feed.rss"))
    result = FeedConnector(source, guarded_fetcher(network), state).poll()

    assert [article.url for article in result.articles] == [good]
    reasons = {failure.url: failure.reason for failure in result.failures}
    assert set(reasons) == set(bad_links)
    for link, expected in bad_links.items():
        assert expected in reasons[link] and "fetch.allow_networks" in reasons[link]
    assert all(failure.gave_up for failure in result.failures)  # permanent: not retried
    assert set(network.dialled) == {"127.0.0.1"}
