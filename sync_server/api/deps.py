"""`Annotated` dependencies the routes share: settings, a database session, the blob store, the user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core.clock import utcnow
from ..core.config import Settings
from ..core.security import token_digest
from ..models import Token, User
from ..storage import BlobStore


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def get_read_session(request: Request) -> Iterator[Session]:
    """A session for routes that only read (on SQLite they run beside a writer instead of queueing)."""
    with request.app.state.readers() as session:
        yield session


def get_store(request: Request) -> BlobStore:
    return request.app.state.store


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
ReadSessionDep = Annotated[Session, Depends(get_read_session)]
StoreDep = Annotated[BlobStore, Depends(get_store)]

bearer = HTTPBearer(auto_error=False, description="The token that sign-up or sign-in returned.")

UNAUTHORIZED = HTTPException(
    status.HTTP_401_UNAUTHORIZED,
    "Sign in first: this needs a valid token (it may have expired or been signed out).",
    headers={"WWW-Authenticate": "Bearer"},
)


def current_user(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> User:
    """The user whose live token came with the request; 401 otherwise. Uses its own short session so a
    long request (an upload) holds no database transaction while it streams."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise UNAUTHORIZED
    digest = token_digest(credentials.credentials)
    with request.app.state.readers() as session:
        row = session.execute(
            select(Token, User).join(User, User.id == Token.user_id).where(Token.digest == digest)
        ).first()
        if row is None:
            raise UNAUTHORIZED
        token, user = row
        if token.revoked_at is not None or token.expires_at <= utcnow():
            raise UNAUTHORIZED
        session.expunge(user)
    request.state.token_digest = digest
    return user


CurrentUser = Annotated[User, Depends(current_user)]

# Last-Event-ID as an event-stream client sends it back: the id of an event this server sent (a whole number
# up to 2^62, what the database's integers hold). Anything else (a non-ASCII digit like "²", 23 digits, a
# header that is not UTF-8) is refused with 422 and a sentence, as a bad `after` is, before a stream starts.
LastEventId = Annotated[
    int | None,
    Header(alias="Last-Event-ID", ge=0, le=2**62, description="resume after this event id (one this server sent)"),
]
