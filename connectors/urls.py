"""The one spelling of an article's URL, which its id is made from, and which site a URL is of."""

from __future__ import annotations

from urllib.parse import unquote_plus, urlsplit, urlunsplit

import courlan

__all__ = ["HTTP_SCHEMES", "TRACKING_PARAMETERS", "TRACKING_PREFIXES", "canonical_url", "same_site"]

HTTP_SCHEMES = ("http", "https")
# Query parameters that only say where a click came from; dropped so one article has one id.
TRACKING_PARAMETERS = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "ysclid", "twclid",
    "igshid", "mc_cid", "mc_eid", "_ga", "_gl", "_openstat", "ref", "ref_src", "ref_url",
    "referrer", "from", "rss", "rss_source", "cmpid", "ocid", "smid", "spm", "share",
    "at_medium", "at_campaign", "at_custom1", "at_custom2", "oly_anon_id", "oly_enc_id",
    "vero_id", "wt.mc_id", "s_cid", "feature", "xtor",
})
TRACKING_PREFIXES = ("utm_", "mtm_", "pk_", "_hs", "hsa_")  # Google/Urchin, Matomo, Piwik, HubSpot


def canonical_url(url: str) -> str:
    """The one spelling of ``url`` that Amur hashes into an article id.

    courlan normalises the URL (lower-cased scheme and host, no default port, sorted query
    parameters, its own list of tracking parameters); on top of that the fragment goes, so
    do the tracking parameters of :data:`TRACKING_PARAMETERS` and any starting with
    :data:`TRACKING_PREFIXES`, and an empty path becomes ``/``; other paths, trailing slash
    included, are kept as they are. Never raises: a URL it cannot understand comes back
    stripped and otherwise unchanged.

    >>> canonical_url("HTTPS://News.Example:443/a/?utm_source=x&b=2&a=1#top")
    'https://news.example/a/?a=1&b=2'
    """
    url = url.strip()
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
        parts = urlsplit(courlan.normalize_url(url)) if parts.scheme in HTTP_SCHEMES and parts.netloc else parts
    except ValueError:
        return url
    netloc = parts.netloc
    default_port = {"http": ":80", "https": ":443"}.get(parts.scheme)
    if default_port and netloc.endswith("]" + default_port):  # courlan keeps it after an IPv6 literal
        netloc = netloc.removesuffix(default_port)
    path = parts.path or ("/" if netloc else "")
    kept = [pair for pair in parts.query.split("&") if pair and not _is_tracking(pair)]
    return urlunsplit((parts.scheme, netloc, path, "&".join(kept), ""))


def same_site(url: str, other: str) -> bool:
    """Whether two http(s) URLs belong to one site (one registered domain, www. or not)."""
    both_http = all(urlsplit(candidate).scheme in HTTP_SCHEMES for candidate in (url, other))
    return both_http and not courlan.is_external(url, other, ignore_suffix=False)


def _is_tracking(pair: str) -> bool:
    name = unquote_plus(pair.partition("=")[0]).lower()
    return name in TRACKING_PARAMETERS or name.startswith(TRACKING_PREFIXES)
