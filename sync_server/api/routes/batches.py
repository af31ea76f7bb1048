"""Batch prediction (docs/predictions.md): being built."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["predictions"])
