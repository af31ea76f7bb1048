"""Sign up, sign in (rate-limited), sign out."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, HTTPException, Request, Response, status
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from ...core.clock import iso, utcnow
from ...core.security import new_token, token_digest, verify_password
from ...models import LoginFailure, Token, User
from ...schemas import Credentials, Session, UserOut
from ..deps import CurrentUser, SessionDep, SettingsDep

router = APIRouter(prefix="/api/auth", tags=["accounts"])


def _issue(db, settings, user: User) -> Session:
    token = new_token()
    expires = utcnow() + timedelta(days=settings.token_days)
    db.add(Token(user_id=user.id, digest=token_digest(token), expires_at=expires))
    return Session(token=token, expires=iso(expires), user=UserOut(id=user.id, email=user.email))


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    response_model=Session,
    responses={409: {"description": "That email already has an account."}, 400: {"description": "Password too short."}},
)
def signup(body: Credentials, request: Request, db: SessionDep, settings: SettingsDep) -> Session:
    if len(body.password) < settings.min_password_length:
        raise HTTPException(400, f"Choose a password of at least {settings.min_password_length} characters.")
    user = User(email=body.email.lower(), password_hash=request.app.state.hasher.hash(body.password))
    db.add(user)
    try:
        db.flush()
    except IntegrityError:
        db.rollback()
        raise HTTPException(409, "That email already has an account: sign in instead.") from None
    session = _issue(db, settings, user)
    db.commit()
    return session


@router.post(
    "/signin",
    response_model=Session,
    responses={
        401: {"description": "Wrong email or password."},
        429: {"description": "Too many failed attempts; wait (Retry-After)."},
    },
)
def signin(body: Credentials, request: Request, response: Response, db: SessionDep, settings: SettingsDep) -> Session:
    email = body.email.lower()
    ip = request.client.host if request.client else "?"
    now = utcnow()
    since = now - timedelta(seconds=settings.login_window_seconds)
    by_email = db.scalar(select(func.count()).where(LoginFailure.email == email, LoginFailure.at > since))
    by_ip = db.scalar(select(func.count()).where(LoginFailure.ip == ip, LoginFailure.at > since))
    if by_email >= settings.login_max_failures or by_ip >= settings.login_max_failures_per_ip:
        raise HTTPException(
            429,
            f"Too many failed sign-ins; try again in {settings.login_window_seconds // 60} minutes.",
            headers={"Retry-After": str(settings.login_window_seconds)},
        )
    hasher = request.app.state.hasher
    user = db.scalar(select(User).where(User.email == email))
    db.commit()  # no transaction (on SQLite: no write lock) while the hash is checked
    # an unknown email costs a hash too, so the time taken does not say whether the account exists
    stored = user.password_hash if user else request.app.state.dummy_hash
    if not verify_password(hasher, stored, body.password) or user is None:
        db.add(LoginFailure(email=email, ip=ip, at=now))
        db.commit()
        raise HTTPException(401, "Wrong email or password.")
    db.execute(delete(LoginFailure).where(LoginFailure.email == email))
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(body.password)
    session = _issue(db, settings, user)
    db.commit()
    return session


@router.post("/signout", status_code=status.HTTP_204_NO_CONTENT)
def signout(request: Request, user: CurrentUser, db: SessionDep) -> None:
    db.execute(
        Token.__table__.update()
        .where(Token.digest == request.state.token_digest, Token.user_id == user.id)
        .values(revoked_at=utcnow())
    )
    db.commit()
