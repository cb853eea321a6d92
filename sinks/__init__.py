"""Sinks: where classified articles and alerts end up (SQL records, alert feeds)."""
