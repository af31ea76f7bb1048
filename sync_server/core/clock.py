"""The server's notion of now: naive UTC datetimes everywhere (SQLite keeps no zone)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def iso(moment: datetime | None) -> str | None:
    """A stored (naive UTC) datetime as ISO 8601 with a Z."""
    return None if moment is None else moment.replace(microsecond=0).isoformat() + "Z"


def parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
