"""The projects the server holds for the signed-in user, with their retention dates; forget one."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status
from sqlalchemy import func, select

from ...core.clock import iso, utcnow
from ...models import PurgedProject, Record
from ...retention import forget_project
from ...schemas import ID, ProjectOut
from ..deps import CurrentUser, ReadSessionDep, SessionDep, SettingsDep

router = APIRouter(prefix="/api/projects", tags=["projects"])

ProjectId = Annotated[str, Path(pattern=ID)]
NOT_FOUND = "No such project among your synced projects."


def _summaries(db, user_id: str, retention_days: float, project_id: str | None = None) -> list[ProjectOut]:
    query = select(Record).where(Record.user_id == user_id, Record.kind == "project", Record.deleted.is_(False))
    if project_id is not None:
        query = query.where(Record.record_id == project_id)
    projects = {r.record_id: r for r in db.scalars(query)}
    if not projects:
        return []
    stats = db.execute(
        select(Record.project_id, func.count(), func.max(Record.updated_at))
        .where(Record.user_id == user_id, Record.project_id.in_(list(projects)), Record.deleted.is_(False))
        .group_by(Record.project_id)
    )
    last_changes = dict(
        db.execute(
            select(Record.project_id, func.max(Record.updated_at))
            .where(Record.user_id == user_id, Record.project_id.in_(list(projects)))
            .group_by(Record.project_id)
        ).all()
    )
    keep = timedelta(days=retention_days)
    return [
        ProjectOut(
            id=pid,
            name=(projects[pid].data or {}).get("name"),
            records=count,
            last_change=iso(last_changes[pid]),
            expires=iso(last_changes[pid] + keep),
        )
        for pid, count, _ in stats
    ]


@router.get("", response_model=list[ProjectOut])
def list_projects(user: CurrentUser, db: ReadSessionDep, settings: SettingsDep) -> list[ProjectOut]:
    return _summaries(db, user.id, settings.retention_days)


@router.get("/{project_id}", response_model=ProjectOut, responses={404: {"description": NOT_FOUND}})
def get_project(project_id: ProjectId, user: CurrentUser, db: ReadSessionDep, settings: SettingsDep) -> ProjectOut:
    found = _summaries(db, user.id, settings.retention_days, project_id)
    if not found:
        raise HTTPException(404, NOT_FOUND)
    return found[0]


@router.delete("/{project_id}", status_code=status.HTTP_204_NO_CONTENT, responses={404: {"description": NOT_FOUND}})
def delete_project(project_id: ProjectId, user: CurrentUser, db: SessionDep) -> None:
    if not db.scalar(select(func.count()).where(Record.user_id == user.id, Record.project_id == project_id)):
        raise HTTPException(404, NOT_FOUND)
    forget_project(db, user.id, project_id)
    # devices syncing it are told (pull's `purged`), switch its sync off and keep their copy
    if db.get(PurgedProject, (user.id, project_id)) is None:
        db.add(PurgedProject(user_id=user.id, project_id=project_id, purged_at=utcnow()))
    db.commit()
