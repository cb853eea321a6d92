"""The one reader of the ISO 8601 / RFC 3339 times that feeds, sitemaps and pages state."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso_datetime"]


def iso_datetime(value: str | None, *, naive_is_utc: bool = True) -> datetime | None:
    """``value`` ("2026-12-03", "2026-12-03T09:30:00+03:00", "…Z") as an aware UTC datetime;
    ``None`` when missing or unreadable. A time without an offset is taken as UTC (better a
    few hours off than no date), or refused with ``naive_is_utc=False`` for formats whose
    spec requires the offset (JSON Feed). A date alone is that day's midnight."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC) if naive_is_utc else None
    return moment.astimezone(UTC)
