"""The testing harness that tests/ and bench/ share (not installed; imported from the repository root).

What lives here, one module per kind of thing a test or a benchmark sets up:

    browser.py      CHROMIUM, CHROMIUM_ARGS: Debian chromium and the flags that work here
    server.py       ROOT, PYTHON, TEJAS; Server: `tejas serve` as a real process (kill, stop, restart)
    services.py     Postgres clusters, moto's S3 API and redis-server as real processes; wait_for, stop_process
    sync_client.py  Account, Device, Clock: a client of the sync protocol; project_changes, sample_change
    images.py       real PNG/JPEG/BMP/GIF/WebP bytes made with the stdlib only (runs in Pyodide too)
    animals.py      Animal-MNIST drawings as ImageFolder folders and zips

The rule: bench/ imports testkit, never tests/; testkit imports neither (tests/test_harness_layering.py).
pytest fixtures stay in tests/ (conftest.py, services.py), built on these pieces.
"""
