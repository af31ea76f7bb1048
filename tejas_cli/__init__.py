"""The `tejas` command: one small function per subcommand, registered with @command.

This package sits above everything it dispatches to: the server (sync_server), the torch/ONNX layer
(tejas_ml: export, train, predict) and the stdlib core (tejas). Imports go one way, cli -> server -> ML ->
core (tests/test_layering.py checks). Heavy imports happen only inside the subcommand that needs them, so
`tejas verify` starts without torch or FastAPI, and `tejas export/train/predict` need only the [ml] extra.

A new subcommand (`tejas worker`, `tejas server migrate`, ...) is one function:

    @command("worker", "run the training worker")
    def _worker(argv: list[str]) -> int:
        args = parser("worker", "Run the training worker.").parse_args(argv)
        ...
        return 0
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

__all__ = ["COMMANDS", "command", "main", "parser"]

Handler = Callable[[list[str]], int]
COMMANDS: dict[str, tuple[Handler, str]] = {}  # name -> (handler, one-line help), in registration order


def command(name: str, help: str) -> Callable[[Handler], Handler]:
    """Register `handler(argv) -> exit status` as `tejas <name>`."""

    def register(handler: Handler) -> Handler:
        COMMANDS[name] = (handler, help)
        return handler

    return register


def parser(name: str, description: str) -> argparse.ArgumentParser:
    """An argument parser named `tejas <name>` (for its usage and error lines)."""
    return argparse.ArgumentParser(prog=f"tejas {name}", description=description)


def missing_extra(name: str, extra: str, what: str, exc: ImportError) -> int:
    """Say which extra to install when a subcommand's dependencies are absent; exit status 1."""
    print(
        f"tejas {name}: error: {what} needs the [{extra}] extra ({exc.name} missing): pip install 'tejas[{extra}]'",
        file=sys.stderr,
    )
    return 1


@command("serve", "serve the app on 127.0.0.1")
def _serve(argv: list[str]) -> int:
    args_parser = parser("serve", "Serve the app on 127.0.0.1.")
    args_parser.add_argument("--host", default=None, help="default: 127.0.0.1 (TEJAS_HOST)")
    args_parser.add_argument("--port", type=int, default=None, help="default: 8000 (TEJAS_PORT)")
    args = args_parser.parse_args(argv)
    try:
        from sync_server.main import serve
    except ImportError as exc:
        return missing_extra("serve", "server", "the server", exc)
    return serve(host=args.host, port=args.port)


@command("server", "server maintenance: migrate the database, purge expired projects")
def _server(argv: list[str]) -> int:
    args_parser = parser("server", "Server maintenance (settings from TEJAS_* variables, as `tejas serve`).")
    sub = args_parser.add_subparsers(dest="action", required=True)
    sub.add_parser("migrate", help="apply database migrations (the server also does on start)")
    purge_parser = sub.add_parser(
        "purge", help="delete projects unchanged, and training jobs ended, longer ago than the retention period"
    )
    purge_parser.add_argument("--now", default=None, help="ISO date-time to purge as of (default: now)")
    args = args_parser.parse_args(argv)
    try:
        from sync_server.core.clock import parse_iso, utcnow
        from sync_server.core.config import Settings
        from sync_server.core.db import make_engine, make_sessionmaker, migrate
    except ImportError as exc:
        return missing_extra("server", "server", "the server", exc)
    settings = Settings()
    engine = make_engine(settings)
    revision = migrate(engine)
    if args.action == "migrate":
        print(f"database at revision {revision} ({engine.url.render_as_string(hide_password=True)})")
        return 0
    from sync_server.retention import purge
    from sync_server.storage import make_store

    try:
        now = parse_iso(args.now) if args.now else utcnow()
    except ValueError:
        print(f"tejas server purge: error: --now {args.now!r} is not an ISO date-time", file=sys.stderr)
        return 2
    from sync_server.jobs.state import purge_jobs

    sessions = make_sessionmaker(engine)
    from sync_server.prediction import ledger
    from sync_server.prediction.streams import StreamQueue, redacted

    try:  # images queued before the stream ledger existed get their rows first: their bytes are no orphans
        ledger.adopt_entries(sessions, StreamQueue(settings))
        streams_store = make_store(settings, "streams")
    except Exception as exc:
        print(f"stream images not checked: Redis at {redacted(settings.redis_url)} does not answer ({exc})")
        streams_store = None
    report = purge(
        sessions, make_store(settings), now, settings.retention_days, streams_store, settings.unreferenced_blob_hours
    )
    jobs = purge_jobs(sessions, make_store(settings, "jobs"), now)
    print(
        f"purged {report.projects} project(s) ({report.records} records) and {report.blobs} blob(s) "
        f"unchanged for {settings.retention_days:g} days as of {now.isoformat()}Z"
    )
    print(f"purged {jobs} training job(s) (with their results) that ended over {settings.retention_days:g} days ago")
    print(
        f"dropped {report.uploads} upload(s) that no record referred to within "
        f"{settings.unreferenced_blob_hours:g} hours (their bytes went with the blobs above when nobody else held them)"
    )
    print(
        f"purged {report.dead_letters} stream dead letter(s) over {settings.retention_days:g} days old and "
        f"{report.stream_images} stream image(s) no stream owes any more"
    )
    return 0


@command("export", "export training artifacts (backbone, head, checkpoints)")
def _export(argv: list[str]) -> int:
    try:
        from tejas_ml.export.cli import main
    except ImportError as exc:
        return missing_extra("export", "ml", "exporting", exc)
    return main(argv)


@command("verify", "check an artifact folder against its manifest")
def _verify(argv: list[str]) -> int:
    from tejas.artifacts import ArtifactError, verify_artifacts

    args_parser = parser("verify", "Check an artifact folder.")
    args_parser.add_argument("folder", nargs="?", default="artifacts/default")
    args = args_parser.parse_args(argv)
    try:
        manifest = verify_artifacts(args.folder)
    except ArtifactError as exc:
        print(f"tejas verify: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{args.folder}: ok ({manifest['architecture']}, {manifest['weights']['kind']} weights, "
        f"{len(manifest['files'])} files)"
    )
    return 0


@command("train", "train a classifier with PyTorch on an ImageFolder zip or folder")
def _train(argv: list[str]) -> int:
    try:
        from tejas_ml.training.cli import main
    except ImportError as exc:
        return missing_extra("train", "ml", "training", exc)
    return main(argv)


@command("predict", "predict every image of a folder or zip with an ONNX model (onnxruntime)")
def _predict(argv: list[str]) -> int:
    try:
        from tejas_ml.prediction.cli import main
    except ImportError as exc:
        return missing_extra("predict", "ml", "predicting", exc)
    return main(argv)


@command("worker", "run a Celery training worker (TEJAS_QUEUE=celery, TEJAS_REDIS_URL)")
def _worker(argv: list[str]) -> int:
    args_parser = parser("worker", "Run a training worker: one job at a time from the `train` queue.")
    args_parser.add_argument("--name", default=None, help="worker name (default: tejas-<pid>@<host>)")
    args = args_parser.parse_args(argv)
    try:
        import os

        from sync_server.core.config import Settings
        from sync_server.deployment import WrongDatabase, check_worker_database
    except ImportError as exc:
        return missing_extra("worker", "server", "the worker", exc)
    try:  # never on a missing, empty or another deployment's database
        check_worker_database(Settings(), "tejas worker").dispose()
    except WrongDatabase as exc:
        print(exc, file=sys.stderr)
        return 1
    from sync_server.jobs.celery_app import app

    name = args.name or f"tejas-{os.getpid()}@%h"
    app.worker_main(
        [
            "worker",
            "-Q",
            "train",
            "--pool=solo",
            "--concurrency=1",
            "-n",
            name,
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )
    return 0


@command("stream-worker", "classify the images of prediction streams (TEJAS_REDIS_URL; docs/predictions.md)")
def _stream_worker(argv: list[str]) -> int:
    try:
        from sync_server.prediction.worker import main
    except ImportError as exc:
        return missing_extra("stream-worker", "server", "the stream worker", exc)
    return main(argv)


def usage() -> str:
    lines = [f"usage: tejas {{{','.join(COMMANDS)}}} [options]   (tejas COMMAND --help for more)", ""]
    lines += [f"  {name:<10}{help}" for name, (_, help) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if not argv or argv[0] not in COMMANDS:
        print(usage(), file=sys.stderr)
        return 2
    handler, _ = COMMANDS[argv[0]]
    return handler(argv[1:])
