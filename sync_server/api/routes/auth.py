"""Sign up (limited per client address; the same answer whether or not the email has an account), sign in
(wrong passwords limited per client address, so someone else's guesses never lock the owner out), sign out.

docs/sync.md ("Accounts", "Sign-in and sign-up limits") says what each limit is for."""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta

from fastapi import APIRouter, HTTPException, Request, Response, status
from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from ...core.clock import iso, utcnow
from ...core.security import new_token, token_digest, verify_password
from ...models import KnownAddress, LoginFailure, SignupAttempt, Token, User
from ...schemas import Credentials, Session, SignupOut, UserOut
from ..deps import CurrentUser, SessionDep, SettingsDep

router = APIRouter(prefix="/api/auth", tags=["accounts"])

# the same words for a new email and a taken one
SIGNED_UP = "Account ready: sign in with this email and password (an email that had an account keeps its password)."


def _issue(db, settings, user: User) -> Session:
    token = new_token()
    expires = utcnow() + timedelta(days=settings.token_days)
    db.add(Token(user_id=user.id, digest=token_digest(token), expires_at=expires))
    return Session(token=token, expires=iso(expires), user=UserOut(id=user.id, email=user.email))


def _client(request: Request) -> str:
    """The client's address: the connection's, or a trusted proxy's X-Forwarded-For (Settings.forwarded_allow_ips)."""
    return request.client.host if request.client else "?"


def _lock_address(db, purpose: str, ip: str) -> None:
    """On Postgres, one request per (purpose, address) at a time counts and records its attempt, so parallel
    requests cannot all pass a limit before any is counted (SQLite: BEGIN IMMEDIATE already serializes)."""
    if db.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(f"{purpose}:{ip}".encode()).digest()[:8], "big", signed=True)
        db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _too_many(what: str, oldest: datetime | None, window: int, now: datetime, advice: str = "") -> HTTPException:
    """429 with Retry-After: the seconds until the oldest counted attempt leaves the window."""
    wait = window if oldest is None else max(1, math.ceil((oldest + timedelta(seconds=window) - now).total_seconds()))
    minutes = max(1, math.ceil(wait / 60))
    return HTTPException(
        429,
        f"Too many {what}; {advice}try again in {minutes} minute{'s' if minutes != 1 else ''}.",
        headers={"Retry-After": str(wait)},
    )


def _insert_user_if_new(db, email: str, password_hash: str) -> None:
    """The same statement whether or not the email is taken (the database skips a taken one): the answer and
    the work do not say which it was, and two sign-ups of one email at once cannot fail."""
    dialect = db.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # (the id, created_at and version defaults are the model's, filled in by SQLAlchemy as for db.add)
    db.execute(
        insert(User).values(email=email, password_hash=password_hash).on_conflict_do_nothing(index_elements=["email"])
    )


@router.post(
    "/signup",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SignupOut,
    responses={
        400: {"description": "Password too short."},
        429: {"description": "Too many sign-ups from this address; wait (Retry-After)."},
    },
)
def signup(body: Credentials, request: Request, db: SessionDep, settings: SettingsDep) -> SignupOut:
    """Make an account for an email that has none; a taken email gets the same answer and keeps its password.
    No token: sign in next (the app does it at once)."""
    if len(body.password) < settings.min_password_length:
        raise HTTPException(400, f"Choose a password of at least {settings.min_password_length} characters.")
    ip = _client(request)
    now = utcnow()
    since = now - timedelta(seconds=settings.signup_window_seconds)
    _lock_address(db, "signup", ip)
    count, oldest = db.execute(
        select(func.count(), func.min(SignupAttempt.at)).where(SignupAttempt.ip == ip, SignupAttempt.at > since)
    ).one()
    if count >= settings.signup_max_per_address:
        db.rollback()
        raise _too_many("sign-ups from this network", oldest, settings.signup_window_seconds, now)
    db.add(SignupAttempt(ip=ip, at=now))
    db.execute(delete(SignupAttempt).where(SignupAttempt.at <= since))
    db.commit()
    # hashed whether or not the email is taken, outside a transaction (on SQLite: no write lock meanwhile)
    password_hash = request.app.state.hasher.hash(body.password)
    _insert_user_if_new(db, body.email.lower(), password_hash)
    db.commit()
    return SignupOut(email=body.email.lower(), message=SIGNED_UP)


@router.post(
    "/signin",
    response_model=Session,
    responses={
        401: {"description": "Wrong email or password."},
        429: {
            "description": "Too many failed attempts from this address (or, for an address the account has not "
            "signed in from, for this email); wait (Retry-After)."
        },
    },
)
def signin(body: Credentials, request: Request, response: Response, db: SessionDep, settings: SettingsDep) -> Session:
    email = body.email.lower()
    ip = _client(request)
    now = utcnow()
    window = settings.login_window_seconds
    since = now - timedelta(seconds=window)

    def failures(*where):
        return db.execute(select(func.count(), func.min(LoginFailure.at)).where(LoginFailure.at > since, *where)).one()

    _lock_address(db, "signin", ip)
    by_ip, oldest_ip = failures(LoginFailure.ip == ip)
    if by_ip >= settings.login_max_failures_per_ip:
        db.rollback()
        raise _too_many("failed sign-ins from this network", oldest_ip, window, now)
    by_pair, oldest_pair = failures(LoginFailure.email == email, LoginFailure.ip == ip)
    if by_pair >= settings.login_max_failures:
        db.rollback()
        raise _too_many("failed sign-ins for this email from this network", oldest_pair, window, now)
    user = db.scalar(select(User).where(User.email == email))
    by_email, oldest_email = failures(LoginFailure.email == email)
    if by_email >= settings.login_max_failures_per_email:
        # guesses from many addresses: only addresses this account signed in from recently go on
        known = user is not None and db.scalar(
            select(func.count()).where(
                KnownAddress.user_id == user.id,
                KnownAddress.ip == ip,
                KnownAddress.last_at > now - timedelta(days=settings.known_address_days),
            )
        )
        if not known:
            db.rollback()
            raise _too_many(
                "failed sign-ins for this email from many networks",
                oldest_email,
                window,
                now,
                "sign in from a network you signed in from before, or ",
            )
    # counted as a failure until the password proves right, so parallel guesses cannot outrun the limits
    db.add(LoginFailure(email=email, ip=ip, at=now))
    db.execute(delete(LoginFailure).where(LoginFailure.at <= since))
    db.commit()  # no transaction (on SQLite: no write lock) while the hash is checked
    hasher = request.app.state.hasher
    # an unknown email costs a hash too, so the time taken does not say whether the account exists
    stored = user.password_hash if user else request.app.state.dummy_hash
    if not verify_password(hasher, stored, body.password) or user is None:
        raise HTTPException(401, "Wrong email or password.")
    # the owner's own mistakes from this address are forgiven; other addresses' guesses still count
    db.execute(delete(LoginFailure).where(LoginFailure.email == email, LoginFailure.ip == ip))
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(body.password)
    session = _issue(db, settings, user)
    db.commit()
    _remember_address(db, settings, user, ip, now)
    return session


def _remember_address(db, settings, user: User, ip: str, now: datetime) -> None:
    """This address signed in to this account (and forget the ones not seen for known_address_days)."""
    known = db.get(KnownAddress, (user.id, ip))
    if known is None:
        db.add(KnownAddress(user_id=user.id, ip=ip, last_at=now))
    else:
        known.last_at = now
    forgotten = now - timedelta(days=settings.known_address_days)
    db.execute(delete(KnownAddress).where(KnownAddress.user_id == user.id, KnownAddress.last_at <= forgotten))
    try:
        db.commit()
    except IntegrityError:  # the same address signed in at the same moment: it is known either way
        db.rollback()


@router.post("/signout", status_code=status.HTTP_204_NO_CONTENT)
def signout(request: Request, user: CurrentUser, db: SessionDep) -> None:
    db.execute(
        Token.__table__.update()
        .where(Token.digest == request.state.token_digest, Token.user_id == user.id)
        .values(revoked_at=utcnow())
    )
    db.commit()
