"""Prediction streams (docs/predictions.md): being built."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/streams", tags=["streams"])
