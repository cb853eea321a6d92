"""What a fetched body is, and its text: binary bodies refused, gzip files opened within a
cap, text decoded with the first charset that works.

The order: a byte-order mark, the ``Content-Type`` charset, the document's own ``<meta
charset>`` / XML declaration, UTF-8, then detection by ``charset_normalizer``; the last
resort is UTF-8 with replacement characters, so a wrong or unknown charset never raises.
"""

from __future__ import annotations

import codecs
import re
import zlib

from pipeline.core.errors import FetchError

try:  # installed with trafilatura; detection is a fallback, so it stays optional
    import charset_normalizer
except ImportError:  # pragma: no cover
    charset_normalizer = None

__all__ = ["BINARY_TYPE_PREFIXES", "GZIP_FILE_TYPES", "GZIP_MAGIC", "decode_body", "gunzipped", "refuse_binary"]

SNIFF_BYTES = 1024
# A declared type that can never be an article or a feed.
BINARY_TYPE_PREFIXES = (
    "image/", "audio/", "video/", "font/", "application/octet-stream", "application/pdf",
    "application/zip", "application/x-zip", "application/gzip", "application/x-gzip",
    "application/x-tar", "application/x-7z", "application/x-rar", "application/x-bzip",
    "application/msword", "application/vnd.ms-", "application/vnd.openxmlformats",
    "application/vnd.oasis.opendocument", "application/java-archive", "application/wasm",
    "application/x-shockwave-flash", "application/x-msdownload",
)
GZIP_MAGIC = b"\x1f\x8b"
GZIP_FILE_TYPES = ("application/gzip", "application/x-gzip", "application/octet-stream")  # how .gz files are served
# Signatures of binary files served under a text type.
MAGIC_BYTES = (
    (b"%PDF-", "application/pdf"), (b"PK\x03\x04", "application/zip"),
    (b"\x89PNG", "image/png"), (b"GIF8", "image/gif"), (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x1f\x8b", "application/gzip"), (b"Rar!", "application/x-rar"),
)

BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([a-zA-Z0-9_.:-]+)["']""", re.IGNORECASE)


def refuse_binary(url: str, body: bytes, mime: str) -> None:
    """Raise :class:`FetchError` when ``body`` is a binary file (by its signature or NUL bytes), whatever it was served as."""
    head = body[:SNIFF_BYTES]
    for magic, kind in MAGIC_BYTES:
        if head.startswith(magic):
            raise FetchError(url, f"binary body ({kind}, served as {mime}), not an article or feed")
    if b"\x00" in head and not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise FetchError(url, f"binary body (NUL bytes in a body served as {mime}), not an article or feed")


def gunzipped(url: str, body: bytes, cap: int) -> bytes:
    """The gzip file ``body`` decompressed, to at most ``cap`` bytes: a gzip bomb stops at the cap."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing
    try:
        data = inflater.decompress(body, cap + 1)
    except zlib.error as exc:
        raise FetchError(url, f"corrupt gzip file: {exc}") from None
    if len(data) > cap:
        raise FetchError(url, f"gzip file too large: more than {cap} bytes once decompressed (stopped)")
    return data


def decode_body(body: bytes, content_type: str | None) -> tuple[str, str]:
    """``body`` as text and the charset used, by the order in the module docstring. Never raises."""
    for bom, encoding in BOMS:
        if body.startswith(bom):
            return body.decode(encoding, errors="replace"), encoding
    candidates = [_header_charset(content_type), _document_charset(body), "utf-8"]
    for charset in candidates:
        if charset and _known_codec(charset):
            try:
                return body.decode(charset), charset
            except (UnicodeDecodeError, LookupError):
                continue
    if charset_normalizer is not None:
        best = charset_normalizer.from_bytes(body[:200_000]).best()
        if best is not None and best.encoding:
            return body.decode(best.encoding, errors="replace"), best.encoding
    return body.decode("utf-8", errors="replace"), "utf-8"


def _header_charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip("\"'") or None
    return None


def _document_charset(body: bytes) -> str | None:
    head = body[:2048]
    match = _XML_ENCODING.search(head) or _META_CHARSET.search(head)
    return match.group(1).decode("ascii") if match else None


def _known_codec(charset: str) -> bool:
    try:
        codecs.lookup(charset)
    except LookupError:
        return False
    return True
