"""GET /api/health: is the server up, and which artifacts can it serve."""

from __future__ import annotations

from fastapi import APIRouter, Request

router = APIRouter()


@router.get("/api/health")
def health(request: Request) -> dict:
    import tejas

    artifacts_dir = request.app.state.settings.artifacts_dir
    names = sorted(p.parent.name for p in artifacts_dir.glob("*/manifest.json")) if artifacts_dir.is_dir() else []
    return {"status": "ok", "version": tejas.__version__, "artifacts": names}
