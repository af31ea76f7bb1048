"""The projects the server holds for the signed-in user, with their retention dates; forget one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status
from sqlalchemy import func, select

from ...core.clock import utcnow
from ...models import PurgedProject, Record
from ...records import project_retention
from ...retention import forget_project
from ...schemas import ID, ProjectOut
from ..deps import CurrentUser, ReadSessionDep, SessionDep, SettingsDep

router = APIRouter(prefix="/api/projects", tags=["projects"])

ProjectId = Annotated[str, Path(pattern=ID)]
NOT_FOUND = "No such project among your synced projects."


def _summaries(db, user_id: str, retention_days: float, project_id: str | None = None) -> list[ProjectOut]:
    """Live projects with their live records' count and retention dates (records.project_retention)."""
    retention = project_retention(db, user_id, retention_days, project_id)
    if not retention:
        return []
    live = (Record.user_id == user_id, Record.project_id.in_(list(retention)), Record.deleted.is_(False))
    names = {
        r.record_id: (r.data or {}).get("name")
        for r in db.scalars(select(Record).where(*live, Record.kind == "project"))
    }
    counts = db.execute(select(Record.project_id, func.count()).where(*live).group_by(Record.project_id))
    return [
        ProjectOut(
            id=pid,
            name=names.get(pid),
            records=count,
            last_change=retention[pid].last_change,
            expires=retention[pid].expires,
        )
        for pid, count in counts
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
