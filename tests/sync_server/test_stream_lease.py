"""A stream worker's lease on a batch (prediction/streams.py, `StreamQueue.leased`) against a real
redis-server: while a batch runs its entries stay idle for less than TEJAS_STREAM_CLAIM_IDLE_SECONDS, so
another worker's XAUTOCLAIM takes none of them; once the lease ends they can be taken over."""

from __future__ import annotations

import time

from ..services import redis_server, wait_for  # noqa: F401 (fixtures)


def idle_ms(queue, entry_id: str) -> int:
    pending = queue.client.xpending_range(queue.keys.stream, queue.group, entry_id, entry_id, 1)
    return int(pending[0]["time_since_delivered"])


def test_a_leased_batch_is_not_taken_over_until_the_lease_ends(tmp_path, redis_server):  # noqa: F811
    from sync_server.core.config import Settings
    from sync_server.prediction.streams import StreamQueue

    claim_idle = 2.0
    settings = Settings(data_dir=tmp_path, redis_url=redis_server.url, stream_claim_idle_seconds=claim_idle)
    queue = StreamQueue(settings)
    queue.ensure_group()
    ids = [queue.append("s", "u", f"k-{i}", "b", "streams") for i in range(3)]
    assert [e for e, _ in queue.read("worker-1", ">", 3)] == ids

    with queue.leased("worker-1", ids, every=0.1):
        held_since = time.monotonic()
        # held for twice the claim idle time, by the clock: the entries never get that idle
        while time.monotonic() - held_since < 2 * claim_idle:
            assert max(idle_ms(queue, e) for e in ids) < claim_idle * 1000
            assert queue.claim("worker-2", "0-0", 10)[1] == []
            time.sleep(0.05)
    assert queue.deliveries("worker-1", ids) == {e: 1 for e in ids}  # renewing counts no delivery

    # the lease over, nothing renews them: they become idle enough and another worker takes them over
    wait_for(
        lambda: min(idle_ms(queue, e) for e in ids) >= claim_idle * 1000, 30, "the entries idle past the claim time"
    )
    assert sorted(e for e, _ in queue.claim("worker-2", "0-0", 10)[1]) == sorted(ids)
