"""A body's text whatever charset it declares, and never an exception."""

from __future__ import annotations

from connectors.decoding import decode_body


def test_decode_body_never_raises():
    assert decode_body(b"\xef\xbb\xbf<p>bom</p>", "text/html; charset=latin-1") == ("<p>bom</p>", "utf-8-sig")
    assert decode_body('<?xml version="1.0" encoding="koi8-r"?><a>мост</a>'.encode("koi8-r"), None)[0].endswith("<a>мост</a>")
    text, _ = decode_body(bytes(range(1, 256)) * 3, "text/plain; charset=utf-8")
    assert isinstance(text, str) and text
