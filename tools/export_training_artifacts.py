#!/usr/bin/env python3
"""Export training artifacts for the Tejas browser app; same as `tejas export` (see --help)."""

import sys
from pathlib import Path

try:
    from tejas_ml.export.cli import main
except ImportError:  # run from a checkout without `pip install -e .`
    ROOT = Path(__file__).resolve().parent.parent
    sys.path[:0] = [str(ROOT), str(ROOT / "pwa" / "py")]
    from tejas_ml.export.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="export_training_artifacts.py"))
