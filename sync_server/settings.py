"""Server settings, read from TEJAS_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TEJAS_")

    host: str = "127.0.0.1"
    port: int = 8000
    pwa_dir: Path = ROOT / "pwa"
    artifacts_dir: Path = ROOT / "artifacts"
