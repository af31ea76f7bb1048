"""The Redis side of prediction streams (docs/predictions.md, "Streams"): every user's images go through
one Redis stream (TEJAS_STREAM_KEY) read by one consumer group of `tejas stream-worker` processes.

Keys, all under the stream's key K:

    K                      entries: {stream, user, key, blob, store, at}; acknowledged entries are deleted
    K:errors               hash: entry id -> the last error of an entry still pending

Redis only carries the work. What a stream still owes, and its dead letters, are rows in the database
(ledger.py): a Redis that restarts empty loses entries, never images — they are enqueued again from there.
The bytes of an image are never in Redis: an entry names a blob.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from urllib.parse import urlsplit, urlunsplit

from ..core.config import Settings

log = logging.getLogger("tejas.streams")

__all__ = [
    "Keys",
    "RedisUnavailable",
    "StreamQueue",
    "connect",
    "redacted",
]

# KEYS: stream, errors. ARGV: group, entry id.
_ACK = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
return 1
"""

# A lease renewal: entries this consumer still owns become idle 0 again (XCLAIM … JUSTID does not count
# a delivery), so a long batch is not taken over by another worker. KEYS: stream. ARGV: group, consumer, ids…
_RENEW = """
local renewed = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    renewed = renewed + 1
  end
end
return renewed
"""


class RedisUnavailable(RuntimeError):
    """Redis did not answer; str() says where it was looked for and what to do."""


def redacted(url: str) -> str:
    """The URL without its password (it goes into messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def unavailable(settings: Settings, exc: Exception) -> RedisUnavailable:
    return RedisUnavailable(
        f"Prediction streams: this needs Redis at TEJAS_REDIS_URL ({redacted(settings.redis_url)}), which does not "
        f"answer ({type(exc).__name__}); start redis-server there or set TEJAS_REDIS_URL."
    )


def connect(settings: Settings, block_s: float = 0):
    """A redis-py client for TEJAS_REDIS_URL (strings, not bytes); `block_s`: the longest XREADGROUP BLOCK
    it will send, so its socket timeout outlasts it."""
    import redis

    return redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=2,
        socket_timeout=5 + block_s,
        decode_responses=True,
        health_check_interval=30,
    )


@dataclass(frozen=True)
class Keys:
    stream: str

    @property
    def errors(self) -> str:
        return f"{self.stream}:errors"


def now_ms() -> int:
    return int(time.time() * 1000)


class StreamQueue:
    """One Redis stream + consumer group, as the routes and the ledger's recovery (append, which entries
    are live) and the workers (read, claim, acknowledge) use it. Every method may raise redis' ConnectionError /
    TimeoutError; the routes turn those into 503 (`RedisUnavailable`)."""

    def __init__(self, settings: Settings, client=None, block_s: float = 0):
        self.settings = settings
        self.client = client if client is not None else connect(settings, block_s)
        self.keys = Keys(settings.stream_key)
        self.group = settings.stream_group
        self._ack = self.client.register_script(_ACK)
        self._renew = self.client.register_script(_RENEW)

    # ------------------------------------------------------------------------------------ both sides

    def ping(self) -> None:
        self.client.ping()

    def ensure_group(self) -> None:
        """The consumer group (and the stream) exist; a group made now reads every entry already there."""
        import redis

        try:
            self.client.xgroup_create(self.keys.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # ------------------------------------------------------------------------------------ the routes

    def append(self, stream_id: str, user_id: str, key: str, blob: str, store: str, at=None) -> str:
        """Add an entry for an image (already recorded in the ledger); its entry id. `at`: when the image was
        appended (a datetime, UTC), for an image enqueued again; default now."""
        at_ms = now_ms() if at is None else int(at.replace(tzinfo=UTC).timestamp() * 1000)
        fields = {"stream": stream_id, "user": user_id, "key": key, "blob": blob, "store": store, "at": at_ms}
        return self.client.xadd(self.keys.stream, fields)

    def entries(self, start: str, count: int) -> list[tuple[str, dict]]:
        """The stream's entries from `start` ("-", an id, or "(" + an id for after it), oldest first."""
        page = self.client.xrange(self.keys.stream, start, "+", count)
        return [(entry_id, fields or {}) for entry_id, fields in page]

    def live(self, entries: list[tuple[str, str, str]]) -> set[str]:
        """Of these (entry id, stream id, image key), the entry ids Redis still holds for that image (an
        entry id of a Redis that restarted empty may have been given again to another image)."""
        if not entries:
            return set()
        with self.client.pipeline(transaction=False) as pipe:
            for entry_id, _, _ in entries:
                pipe.xrange(self.keys.stream, min=entry_id, max=entry_id, count=1)
            replies = pipe.execute()
        out = set()
        for (entry_id, stream_id, key), reply in zip(entries, replies, strict=True):
            if reply and reply[0][1] and reply[0][1].get("stream") == stream_id and reply[0][1].get("key") == key:
                out.add(entry_id)
        return out

    # ------------------------------------------------------------------------------------ the workers

    def read(self, consumer: str, cursor: str, count: int, block_ms: int | None = None) -> list[tuple[str, dict]]:
        """Entries for `consumer`: cursor ">" = new ones (waiting up to `block_ms`), an id = its own
        pending entries after that id (what it was given before it stopped)."""
        reply = self.client.xreadgroup(self.group, consumer, {self.keys.stream: cursor}, count=count, block=block_ms)
        if not reply:
            return []
        # redis-py answers a list of [stream, entries] (RESP2) or a dict (RESP3); entries already deleted are (id, None)
        entries = reply[0][1] if isinstance(reply, list) else next(iter(reply.values()))[0]
        return [(entry_id, fields or {}) for entry_id, fields in entries]

    def claim(self, consumer: str, start: str, count: int) -> tuple[str, list[tuple[str, dict]]]:
        """Entries idle longer than TEJAS_STREAM_CLAIM_IDLE_SECONDS (a dead worker's), now `consumer`'s:
        (the cursor to continue from, "0-0" after a whole pass; the entries)."""
        idle_ms = int(self.settings.stream_claim_idle_seconds * 1000)
        reply = self.client.xautoclaim(self.keys.stream, self.group, consumer, idle_ms, start, count=count)
        return reply[0], [(entry_id, fields or {}) for entry_id, fields in reply[1]]

    def deliveries(self, consumer: str, entry_ids: list[str]) -> dict[str, int]:
        """How often each of these entries was delivered (entries no longer `consumer`'s are left out)."""
        with self.client.pipeline(transaction=False) as pipe:
            for entry_id in entry_ids:
                pipe.xpending_range(self.keys.stream, self.group, min=entry_id, max=entry_id, count=1)
            replies = pipe.execute()
        out = {}
        for entry_id, reply in zip(entry_ids, replies, strict=True):
            if reply and reply[0]["consumer"] == consumer:
                out[entry_id] = int(reply[0]["times_delivered"])
        return out

    def renew(self, consumer: str, entry_ids: list[str]) -> int:
        if not entry_ids:
            return 0
        return int(self._renew(keys=[self.keys.stream], args=[self.group, consumer, *entry_ids]))

    @contextmanager
    def leased(self, consumer: str, entry_ids: list[str], every: float) -> Iterator[None]:
        """While the block runs (a batch), renew these entries' idle time every `every` seconds so no other
        consumer takes them over."""
        done = threading.Event()

        def loop() -> None:
            while not done.wait(every):
                try:
                    self.renew(consumer, entry_ids)
                except Exception as exc:
                    log.warning("stream worker %s: renewing the lease: %s", consumer, exc)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(10)

    def remember_errors(self, errors: dict[str, str]) -> None:
        if errors:
            self.client.hset(self.keys.errors, mapping=errors)

    def last_errors(self, entry_ids: list[str]) -> dict[str, str]:
        if not entry_ids:
            return {}
        values = self.client.hmget(self.keys.errors, entry_ids)
        return {entry_id: value for entry_id, value in zip(entry_ids, values, strict=True) if value}

    def ack(self, entries: list[str]) -> int:
        """Acknowledge and delete these entries; how many were still pending."""
        if not entries:
            return 0
        with self.client.pipeline(transaction=False) as pipe:
            for entry_id in entries:
                self._ack(keys=[self.keys.stream, self.keys.errors], args=[self.group, entry_id], client=pipe)
            return sum(int(n) for n in pipe.execute())
