"""Push and pull: last writer wins per record by HLC revision, plus the merges of docs/sync.md."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from .core.clock import iso
from .models import Device, PurgedProject, Record, User, UserBlob
from .schemas import Change, ChangeOut, PullOut, PushIn, PushOut, Retention, blob_kind, blob_of


class PushRefused(Exception):
    """A push that cannot be applied as a whole (status, message); nothing of it is stored."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class _Push:
    def __init__(self, session: Session, user: User, now: datetime):
        self.session, self.user, self.now = session, user, now
        self.cache: dict[tuple[str, str], Record | None] = {}
        self.classes: dict[str, list[Record]] = {}  # project -> its class records (loaded on demand)

    def load(self, keys: set[tuple[str, str]]) -> None:
        ids = sorted({record_id for kind, record_id in keys if (kind, record_id) not in self.cache})
        for start in range(0, len(ids), 500):
            rows = self.session.scalars(
                select(Record).where(Record.user_id == self.user.id, Record.record_id.in_(ids[start : start + 500]))
            )
            for row in rows:
                self.cache[(row.kind, row.record_id)] = row
        for key in keys:
            self.cache.setdefault(key, None)

    def get(self, kind: str, record_id: str) -> Record | None:
        if (kind, record_id) not in self.cache:
            self.load({(kind, record_id)})
        return self.cache[(kind, record_id)]

    def project_classes(self, project: str) -> list[Record]:
        if project not in self.classes:
            rows = list(
                self.session.scalars(
                    select(Record).where(
                        Record.user_id == self.user.id, Record.kind == "class", Record.project_id == project
                    )
                )
            )
            for row in rows:
                self.cache[("class", row.record_id)] = row
            self.classes[project] = rows
        return self.classes[project]

    def stamp(self, record: Record) -> None:
        self.user.version += 1
        record.version = self.user.version
        record.updated_at = self.now

    def surviving_class(self, class_id: str) -> str:
        """Follow merges: the class a sample of `class_id` belongs to now."""
        for _ in range(20):
            record = self.get("class", class_id)
            if record is None or not record.deleted or not (record.data or {}).get("mergedInto"):
                return class_id
            class_id = record.data["mergedInto"]
        return class_id

    def apply(self, change: Change) -> bool:
        project = self.get("project", change.project)
        if change.kind != "project" and project is not None and project.deleted:
            return False  # a deleted project takes later edits of its records with it
        current = self.get(change.kind, change.id)
        if current is not None and current.rev >= change.rev:
            return False  # the server already holds this change or a later one
        deleted, data = change.deleted, change.data
        moved_from = None
        if change.kind == "class" and not deleted:
            name = data["name"].strip().casefold()
            same = next(
                (
                    c
                    for c in self.project_classes(change.project)
                    if c.record_id != change.id
                    and not c.deleted
                    and ((c.data or {}).get("name") or "").strip().casefold() == name
                ),
                None,
            )
            if same is not None:  # two devices made the same class: one class, both sets of images
                deleted, data, moved_from = True, {"name": data["name"], "mergedInto": same.record_id}, change.id
        if change.kind == "sample" and not deleted:
            cls = self.get("class", data["classId"])
            survivor = self.surviving_class(data["classId"])
            if survivor != data["classId"]:
                data = {**data, "classId": survivor}
            elif cls is not None and cls.deleted:
                return False  # its class was deleted: the class took its images with it
        if current is None:
            current = Record(user_id=self.user.id, kind=change.kind, record_id=change.id)
            created = True
        else:
            created = False
        current.project_id = change.project
        current.rev = change.rev
        current.deleted = deleted
        current.data = data
        current.blob = None if deleted else blob_of(change.kind, data)
        self.stamp(current)
        if created:  # added only now that it is whole (a query's autoflush may write it)
            if change.kind == "class":
                self.project_classes(change.project)
            self.session.add(current)
            self.cache[(change.kind, change.id)] = current
            if change.kind == "class":
                self.classes[change.project].append(current)
            if change.kind == "project":  # uploaded again after the retention timer deleted it
                self.session.execute(
                    delete(PurgedProject).where(
                        PurgedProject.user_id == self.user.id, PurgedProject.project_id == change.id
                    )
                )
        if moved_from is not None:
            self.move_samples(change.project, moved_from, data["mergedInto"])
        return True

    def move_samples(self, project: str, from_class: str, to_class: str) -> None:
        self.session.flush()
        samples = self.session.scalars(
            select(Record).where(
                Record.user_id == self.user.id,
                Record.kind == "sample",
                Record.project_id == project,
                Record.deleted.is_(False),
            )
        )
        for sample in samples:
            if (sample.data or {}).get("classId") == from_class:
                sample.data = {**sample.data, "classId": to_class}
                self.cache[("sample", sample.record_id)] = sample
                self.stamp(sample)


def push(session: Session, user_id: str, body: PushIn, now: datetime) -> PushOut:
    """Apply a push in the caller's transaction (all of it or, on PushRefused, none)."""
    # One push per user at a time: the user row is the lock (Postgres); SQLite's BEGIN IMMEDIATE already is.
    user = session.get(User, user_id, with_for_update=True)
    device = session.get(Device, (user_id, body.device))
    if device is None:
        device = Device(user_id=user_id, device_id=body.device, last_mutation=0)
        session.add(device)
    device.last_seen = now
    todo = [c for c in body.changes if c.mutation > device.last_mutation]
    needed = {blob_of(c.kind, c.data) for c in todo if not c.deleted} - {None}
    if needed:
        owned = set(
            session.scalars(
                select(UserBlob.sha256).where(UserBlob.user_id == user_id, UserBlob.sha256.in_(sorted(needed)))
            )
        )
        missing = sorted(needed - owned)
        if missing:
            raise PushRefused(
                409,
                f"{len(missing)} blob(s) these records refer to were not uploaded; upload them "
                f"first (POST /api/blobs/missing, then PUT each): {', '.join(missing[:5])}"
                + (" …" if len(missing) > 5 else ""),
            )
        _check_blob_kinds(session, user_id, todo)
    state = _Push(session, user, now)
    keys = {(c.kind, c.id) for c in todo} | {("project", c.project) for c in todo}
    keys |= {("class", c.data["classId"]) for c in todo if c.kind == "sample" and not c.deleted}
    state.load(keys)
    accepted = sum(state.apply(c) for c in todo)
    if todo:
        device.last_mutation = todo[-1].mutation
    session.flush()
    return PushOut(
        last_mutation=device.last_mutation,
        version=user.version,
        accepted=accepted,
        skipped=len(body.changes) - accepted,
    )


def _check_blob_kinds(session: Session, user_id: str, changes: list[Change]) -> None:
    """A text sample refers to a text blob, an image sample to an image, a model to float32s (blobs were
    checked by content when uploaded): a record that calls an image a text is refused with its push. The
    kind is the one this user uploaded the bytes as: another user's upload of them decides nothing here."""
    wanted = {blob_of(c.kind, c.data): (c, blob_kind(c.kind, c.data)) for c in changes if not c.deleted}
    wanted.pop(None, None)
    kinds = dict(
        session.execute(
            select(UserBlob.sha256, UserBlob.kind).where(
                UserBlob.user_id == user_id, UserBlob.sha256.in_(sorted(wanted))
            )
        ).all()
    )
    for sha, (change, kind) in wanted.items():
        if kinds.get(sha, kind) != kind:
            raise PushRefused(
                422,
                f"{change.kind} {change.id} needs a blob of kind {kind}, but you uploaded {sha} as {kinds[sha]} "
                f"(a sample with format 'text' refers to a text, any other sample to an image; upload it again "
                f"with ?kind={kind})",
            )


def project_retention(
    session: Session, user_id: str, retention_days: float, project_id: str | None = None
) -> dict[str, Retention]:
    """Live projects' (or one project's) last change and the date the server deletes them."""
    mine = [Record.user_id == user_id] + ([Record.project_id == project_id] if project_id is not None else [])
    last = func.max(Record.updated_at)
    rows = session.execute(select(Record.project_id, last).where(*mine).group_by(Record.project_id))
    live = set(
        session.scalars(select(Record.record_id).where(*mine, Record.kind == "project", Record.deleted.is_(False)))
    )
    keep = timedelta(days=retention_days)
    return {
        project: Retention(last_change=iso(last), expires=iso(last + keep)) for project, last in rows if project in live
    }


def pull(session: Session, user_id: str, since: int, limit: int, retention_days: float) -> PullOut:
    rows = list(
        session.scalars(
            select(Record)
            .where(Record.user_id == user_id, Record.version > since)
            .order_by(Record.version)
            .limit(limit + 1)
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    purged = {
        p.project_id: iso(p.purged_at)
        for p in session.scalars(select(PurgedProject).where(PurgedProject.user_id == user_id))
    }
    return PullOut(
        changes=[
            ChangeOut(
                version=r.version,
                kind=r.kind,
                id=r.record_id,
                project=r.project_id,
                rev=r.rev,
                deleted=r.deleted,
                data=r.data,
            )
            for r in rows
        ],
        cursor=str(rows[-1].version if rows else since),
        more=more,
        projects=project_retention(session, user_id, retention_days),
        purged=purged,
    )


def project_records(session: Session, user_id: str, project_id: str) -> list[dict]:
    """A project's live project, class and sample records as {kind, id, data} (what training reads)."""
    rows = session.execute(
        select(Record.kind, Record.record_id, Record.data).where(
            Record.user_id == user_id,
            Record.project_id == project_id,
            Record.deleted.is_(False),
            Record.kind.in_(("project", "class", "sample")),
        )
    ).all()
    return [{"kind": kind, "id": record_id, "data": data} for kind, record_id, data in rows]
