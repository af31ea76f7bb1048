"""Account abuse against a real `tejas serve`: someone else's wrong passwords never lock the owner out (the
guesser is slowed per client address), sign-up is limited per address, and sign-up's answer does not say
which emails have accounts. Client addresses are real: httpx binds its source to 127.0.0.x (all loopback)."""

from __future__ import annotations

import re
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ..services import backend  # noqa: F401 (fixture)
from .conftest import PASSWORD, Account


@pytest.fixture
def backend_server(serve, tmp_path, backend):  # noqa: F811
    """backend_server(**env): `tejas serve` on this test's backend (embedded; Postgres + S3) with more settings."""
    (tmp_path / "artifacts").mkdir()
    return lambda **env: serve(tmp_path / "artifacts", data_dir=tmp_path / "data", env={**backend, **env})


def client(server, address: str = "127.0.0.1", headers: dict | None = None) -> httpx.Client:
    """A client whose connections come from `address` (any 127.0.0.0/8 address reaches the server)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=server.url, transport=transport, headers=headers or {}, timeout=60)


def sign_in(http: httpx.Client, email: str, password: str) -> httpx.Response:
    return http.post("/api/auth/signin", json={"email": email, "password": password})


def sign_up(http: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    return http.post("/api/auth/signup", json={"email": email, "password": password})


def test_wrong_passwords_slow_the_guesser_not_the_owner(embedded_server):
    server = embedded_server(TEJAS_LOGIN_MAX_FAILURES_PER_EMAIL="40")
    carol = Account(server.url)  # signed up and in from 127.0.0.1
    guesser, owner = client(server, "127.0.0.2"), client(server, "127.0.0.3")
    answers = [sign_in(guesser, carol.email, f"guess {n}").status_code for n in range(12)]
    assert answers == [401] * 10 + [429] * 2  # TEJAS_LOGIN_MAX_FAILURES (10) per email and address
    # carol, from anywhere else, signs in at once
    assert sign_in(owner, carol.email, PASSWORD).status_code == 200
    assert sign_in(client(server, "127.0.0.1"), carol.email, PASSWORD).status_code == 200
    # the guesser keeps getting 429, with a sentence and Retry-After, even for the right password: from the
    # guesser's address (a shared NAT) the owner waits too, or the 429 would say which guess was right
    limited = sign_in(guesser, carol.email, PASSWORD)
    assert limited.status_code == 429 and 0 < int(limited.headers["retry-after"]) <= 900
    assert limited.json()["detail"].startswith(
        "Too many failed sign-ins for this email from this network; try again in"
    )
    assert sign_in(guesser, carol.email, "guess 13").status_code == 429
    # other emails from the guesser's address are not locked by carol's lock (up to the per-address limit)
    assert sign_in(guesser, "dave@example.org", "guess").status_code == 401

    # a guesser with many addresses, each under its own limit: 10 + 5 × 6 failures make 40 for carol's email
    for n in range(5):
        other = client(server, f"127.0.1.{n + 1}")
        assert {sign_in(other, carol.email, f"guess {m}").status_code for m in range(6)} == {401}
    fresh = sign_in(client(server, "127.0.2.1"), carol.email, PASSWORD)
    assert fresh.status_code == 429 and "sign in from a network you signed in from before" in fresh.json()["detail"]
    assert sign_in(client(server, "127.0.2.2"), carol.email, "guess").status_code == 429  # refused unchecked
    # addresses carol signed in from still let her in
    assert sign_in(owner, carol.email, PASSWORD).status_code == 200
    assert sign_in(client(server, "127.0.0.1"), carol.email, PASSWORD).status_code == 200
    # her own typos from her address count for that address only
    assert sign_in(owner, carol.email, "typo").status_code == 401
    assert sign_in(owner, carol.email, PASSWORD).status_code == 200


def test_parallel_guesses_cannot_outrun_the_limit(server):
    carol = Account(server.url)
    guesser = client(server, "127.0.0.2")
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda n: sign_in(guesser, carol.email, f"guess {n}").status_code, range(24)))
    # each attempt is counted before its password is checked
    assert sorted(answers) == [401] * 10 + [429] * 14


def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(embedded_server):
    server = embedded_server(TEJAS_LOGIN_MAX_FAILURES_PER_IP="3")
    local = client(server, "127.0.0.1")
    guesses = lambda http, n=4: [sign_in(http, f"u{m}@example.org", "guess").status_code for m in range(n)]  # noqa: E731
    assert guesses(local) == [401, 401, 401, 429]  # 3 failures from one address, whatever the emails
    # a header naming another address does not make another client (uvicorn alone trusts it from 127.0.0.1)
    spoofed = client(server, "127.0.0.1", {"X-Forwarded-For": "203.0.113.7"})
    assert guesses(spoofed, 1) == [429]
    server.stop()

    server.env["TEJAS_FORWARDED_ALLOW_IPS"] = '["127.0.0.1"]'  # a reverse proxy on this machine
    server.restart()
    assert guesses(spoofed, 1) == [401]  # the proxy's word is taken: 203.0.113.7 has 1 failure now
    assert guesses(local, 1) == [429]  # the proxy's own address is still locked
    # a client that is not the trusted proxy cannot name itself (as 203.0.113.7 it would be locked sooner)
    untrusted = client(server, "127.0.0.2", {"X-Forwarded-For": "203.0.113.7"})
    assert guesses(untrusted) == [401, 401, 401, 429]


def test_sign_up_is_limited_per_address(embedded_server):
    server = embedded_server(TEJAS_SIGNUP_MAX_PER_ADDRESS="3")
    first, second = client(server, "127.0.0.2"), client(server, "127.0.0.3")
    assert sign_up(first, "taken@example.org").status_code == 202
    # a taken email counts like a new one (else the limit would tell them apart)
    assert [sign_up(first, email).status_code for email in ("taken@example.org", "b@example.org")] == [202, 202]
    limited = sign_up(first, "c@example.org")
    assert limited.status_code == 429 and 0 < int(limited.headers["retry-after"]) <= 3600
    assert re.fullmatch(r"Too many sign-ups from this network; try again in \d+ minutes\.", limited.json()["detail"])
    assert sign_in(first, "c@example.org", PASSWORD).status_code == 401  # no account was made
    assert sign_up(second, "c@example.org").status_code == 202  # another address is not limited
    assert sign_in(first, "c@example.org", PASSWORD).status_code == 200


def test_sign_up_does_not_tell_which_emails_have_accounts(backend_server):
    # argon2 costly enough that hashing dominates the answer's time, as in production
    server = backend_server(
        TEJAS_SIGNUP_MAX_PER_ADDRESS="100", TEJAS_ARGON2_TIME_COST="1", TEJAS_ARGON2_MEMORY_KIB="16384"
    )
    alice = Account(server.url)
    stranger = client(server, "127.0.0.2")
    taken = sign_up(stranger, alice.email.upper(), "the stranger's password")
    new = sign_up(stranger, "new@example.org", "the stranger's password")
    assert taken.status_code == new.status_code == 202
    assert taken.json() == {"email": alice.email, "message": new.json()["message"]}
    assert new.json()["message"].startswith("Account ready: sign in with this email and password")
    # alice's account and password are untouched; the new account works
    assert sign_in(stranger, alice.email, "the stranger's password").status_code == 401
    assert sign_in(client(server), alice.email, PASSWORD).status_code == 200
    assert sign_in(stranger, "new@example.org", "the stranger's password").status_code == 200
    # someone who forgot they had an account "creates" it again with their password: they sign in
    assert sign_up(client(server), alice.email, PASSWORD).status_code == 202
    assert sign_in(client(server), alice.email, PASSWORD).status_code == 200

    # both take a password hash: a taken email is not answered faster (a lower bound only: a loaded
    # machine makes both slower, never one of them faster by more than the hash)
    def took(email: str) -> float:
        started = time.perf_counter()
        assert sign_up(stranger, email, "timing password").status_code == 202
        return time.perf_counter() - started

    pairs = [(took(alice.email), took(f"new{n}@example.org")) for n in range(5)]  # interleaved: same load
    taken_s, new_s = (statistics.median(times) for times in zip(*pairs, strict=True))
    assert taken_s > 0.5 * new_s, (taken_s, new_s)
    print(f"sign-up median: taken email {taken_s * 1000:.1f} ms, new email {new_s * 1000:.1f} ms")
