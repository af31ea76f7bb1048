"""The Redis side of prediction streams (docs/predictions.md, "Streams"): every user's images go through
one Redis stream (TEJAS_STREAM_KEY) read by one consumer group of `tejas stream-worker` processes.

Keys, all under the stream's key K:

    K                      entries: {stream, user, key, blob, store, at}; acknowledged entries are deleted
    K:dead                 dead letters: {stream, user, key, error, deliveries, at, entry}
    K:errors               hash: entry id -> the last error of an entry still pending
    K:inflight             hash: stream id -> its entries appended and not acknowledged yet ("pending")
    K:dead-counts          hash: stream id -> its dead letters
    K:key:<stream>:<key>   the entry id of an image key in flight (a second append of it answers that id)

Appending and acknowledging are Lua scripts, so the counters, the in-flight markers and the entries never
disagree, whoever crashes where. The bytes of an image are never in Redis: an entry names a blob.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ..core.config import Settings

__all__ = [
    "Keys",
    "RedisUnavailable",
    "StreamQueue",
    "connect",
    "redacted",
]

MARKER_TTL_S = 24 * 3600  # a lost marker only lets a duplicate through, which the table's key absorbs

# KEYS: stream, inflight, marker. ARGV: ttl, stream id, entry fields…
_APPEND = """
local existing = redis.call('GET', KEYS[3])
if existing then return {0, existing} end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
redis.call('SET', KEYS[3], id, 'EX', tonumber(ARGV[1]))
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
return {1, id}
"""

# KEYS: stream, errors, inflight, dead-counts, dead, marker.
# ARGV: group, entry id, stream id, "1" to dead-letter it (then the dead letter's fields…) or "0".
_ACK = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
if redis.call('HEXISTS', KEYS[3], ARGV[3]) == 1 then
  if redis.call('HINCRBY', KEYS[3], ARGV[3], -1) <= 0 then redis.call('HDEL', KEYS[3], ARGV[3]) end
end
if redis.call('GET', KEYS[6]) == ARGV[2] then redis.call('DEL', KEYS[6]) end
if ARGV[4] == '1' then
  redis.call('XADD', KEYS[5], '*', unpack(ARGV, 5))
  redis.call('HINCRBY', KEYS[4], ARGV[3], 1)
end
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
    def dead(self) -> str:
        return f"{self.stream}:dead"

    @property
    def errors(self) -> str:
        return f"{self.stream}:errors"

    @property
    def inflight(self) -> str:
        return f"{self.stream}:inflight"

    @property
    def dead_counts(self) -> str:
        return f"{self.stream}:dead-counts"

    def marker(self, stream_id: str, key: str) -> str:
        return f"{self.stream}:key:{stream_id}:{key}"


def now_ms() -> int:
    return int(time.time() * 1000)


class StreamQueue:
    """One Redis stream + consumer group, as the routes (append, counts, dead letters) and the workers
    (read, claim, acknowledge, dead-letter) use it. Every method may raise redis' ConnectionError /
    TimeoutError; the routes turn those into 503 (`RedisUnavailable`)."""

    def __init__(self, settings: Settings, client=None, block_s: float = 0):
        self.settings = settings
        self.client = client if client is not None else connect(settings, block_s)
        self.keys = Keys(settings.stream_key)
        self.group = settings.stream_group
        self._append = self.client.register_script(_APPEND)
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

    def append(self, stream_id: str, user_id: str, key: str, blob: str, store: str) -> tuple[bool, str]:
        """(True, entry id) for a new entry; (False, the entry id in flight) when that key is already
        waiting in that stream (nothing added)."""
        fields = {"stream": stream_id, "user": user_id, "key": key, "blob": blob, "store": store, "at": now_ms()}
        flat = [str(v) for pair in fields.items() for v in pair]
        keys = [self.keys.stream, self.keys.inflight, self.keys.marker(stream_id, key)]
        new, entry = self._append(keys=keys, args=[MARKER_TTL_S, stream_id, *flat])
        return bool(int(new)), entry

    def counts(self, stream_ids: list[str]) -> dict[str, tuple[int, int]]:
        """stream id -> (pending, dead)."""
        if not stream_ids:
            return {}
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hmget(self.keys.inflight, stream_ids)
            pipe.hmget(self.keys.dead_counts, stream_ids)
            pending, dead = pipe.execute()
        return {sid: (max(0, int(p or 0)), int(d or 0)) for sid, p, d in zip(stream_ids, pending, dead, strict=True)}

    def dead_letters(self, stream_id: str, limit: int = 100) -> list[dict]:
        """The stream's dead letters, oldest first (the dead-letter stream is shared: read in pages)."""
        out: list[dict] = []
        start = "-"
        while len(out) < limit:
            page = self.client.xrange(self.keys.dead, min=start, max="+", count=1000)
            for entry_id, fields in page:
                if fields.get("stream") == stream_id:
                    out.append({"id": entry_id, **fields})
                    if len(out) == limit:
                        break
            if len(page) < 1000:
                break
            start = "(" + page[-1][0]
        return out

    def forget_stream(self, stream_id: str) -> int:
        """A deleted stream's dead letters and counters (its entries still queued are dropped by the
        workers, which see the stream gone); the number of dead letters deleted."""
        ids = [d["id"] for d in self.dead_letters(stream_id, limit=10**9)]
        with self.client.pipeline(transaction=True) as pipe:
            for start in range(0, len(ids), 1000):
                pipe.xdel(self.keys.dead, *ids[start : start + 1000])
            pipe.hdel(self.keys.inflight, stream_id)
            pipe.hdel(self.keys.dead_counts, stream_id)
            pipe.execute()
        return len(ids)

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

    def remember_errors(self, errors: dict[str, str]) -> None:
        if errors:
            self.client.hset(self.keys.errors, mapping=errors)

    def last_errors(self, entry_ids: list[str]) -> dict[str, str]:
        if not entry_ids:
            return {}
        values = self.client.hmget(self.keys.errors, entry_ids)
        return {entry_id: value for entry_id, value in zip(entry_ids, values, strict=True) if value}

    def _ack_keys(self, stream_id: str, key: str) -> list[str]:
        k = self.keys
        return [k.stream, k.errors, k.inflight, k.dead_counts, k.dead, k.marker(stream_id, key)]

    def ack(self, entries: list[tuple[str, str, str]]) -> int:
        """Acknowledge and delete (entry id, stream id, image key) entries; how many were still pending."""
        if not entries:
            return 0
        with self.client.pipeline(transaction=False) as pipe:
            for entry_id, stream_id, key in entries:
                self._ack(keys=self._ack_keys(stream_id, key), args=[self.group, entry_id, stream_id, "0"], client=pipe)
            return sum(int(n) for n in pipe.execute())

    def dead_letter(self, entry_id: str, fields: dict, error: str, deliveries: int) -> bool:
        """Move a pending entry to the dead-letter stream with its error; False when it was not pending."""
        letter = {
            "stream": fields.get("stream", ""),
            "user": fields.get("user", ""),
            "key": fields.get("key", ""),
            "error": error,
            "deliveries": deliveries,
            "at": now_ms(),
            "entry": entry_id,
        }
        flat = [str(v) for pair in letter.items() for v in pair]
        stream_id = fields.get("stream", "")
        args = [self.group, entry_id, stream_id, "1", *flat]
        return bool(int(self._ack(keys=self._ack_keys(stream_id, fields.get("key", "")), args=args)))

    def trim_dead(self, before_ms: int) -> int:
        """Delete dead letters older than `before_ms` (the retention period), keeping the counts right."""
        removed = 0
        while True:
            page = self.client.xrange(self.keys.dead, min="-", max=f"({before_ms}-0", count=1000)
            if not page:
                return removed
            with self.client.pipeline(transaction=True) as pipe:
                for entry_id, fields in page:
                    pipe.xdel(self.keys.dead, entry_id)
                    pipe.hincrby(self.keys.dead_counts, fields.get("stream", ""), -1)
                pipe.execute()
            # counters of streams deleted meanwhile (or of the last letters) go below 1: drop them
            for stream_id in {fields.get("stream", "") for _, fields in page}:
                value = self.client.hget(self.keys.dead_counts, stream_id)
                if value is not None and int(value) <= 0:
                    self.client.hdel(self.keys.dead_counts, stream_id)
            removed += len(page)
