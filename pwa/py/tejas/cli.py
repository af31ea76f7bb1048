"""The `tejas` command: `tejas serve`, `tejas export`, `tejas verify` (heavy imports only when used)."""

from __future__ import annotations

import argparse
import sys


def _serve(argv) -> int:
    parser = argparse.ArgumentParser(prog="tejas serve", description="Serve the app on 127.0.0.1.")
    parser.add_argument("--host", default=None, help="default: 127.0.0.1 (TEJAS_HOST)")
    parser.add_argument("--port", type=int, default=None, help="default: 8000 (TEJAS_PORT)")
    args = parser.parse_args(argv)
    try:
        from sync_server.main import serve
    except ImportError as exc:
        print(
            f"tejas serve: error: the server needs the [server] extra ({exc.name} missing): "
            "pip install 'tejas[server]'",
            file=sys.stderr,
        )
        return 1
    return serve(host=args.host, port=args.port)


def _export(argv) -> int:
    try:
        from tejas_export.cli import main
    except ImportError as exc:
        print(
            f"tejas export: error: exporting needs the [export] extra ({exc.name} missing): "
            "pip install 'tejas[export]'",
            file=sys.stderr,
        )
        return 1
    return main(argv)


def _verify(argv) -> int:
    from .artifacts import ArtifactError, verify_artifacts

    parser = argparse.ArgumentParser(prog="tejas verify", description="Check an artifact folder.")
    parser.add_argument("folder", nargs="?", default="artifacts/default")
    args = parser.parse_args(argv)
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


COMMANDS = {"serve": _serve, "export": _export, "verify": _verify}


USAGE = "usage: tejas {serve,export,verify} [options]   (tejas COMMAND --help for more)"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if not argv or argv[0] not in COMMANDS:
        print(USAGE, file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
