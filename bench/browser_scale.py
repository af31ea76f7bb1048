#!/usr/bin/env python3
"""Thousands of images in the app: a generated ImageFolder zip of 256×256 JPEGs imported through the
Data screen's "Dataset zip…" picker, embedded and trained (`tejas.train`), while the tab's memory and
its main-thread long tasks are recorded; then the Data screen scrolled top to bottom.

    python bench/browser_scale.py [--count 5000] [--epochs 20]
Writes bench/results/scale.json. Needs the app set up (bash tools/dev.sh run does that once).

Memory is measured three ways: the page's JS heap (CDP Performance.getMetrics, polled), the resident
memory of the tab's renderer process (page, its workers' wasm heaps and decoded images: /proc, sampled
on a thread), and of every Chromium process together. The stated bound (MEMORY_BOUND_MIB) is on the
renderer's peak resident memory.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine_facts, new_report, vendored_npm, write_report  # noqa: E402

# The tab (renderer process: page + workers) stays under this at 5,000 images of 256×256.
MEMORY_BOUND_MIB = 1536
# Main-thread tasks longer than this count as blocking (the bound).
LONG_TASK_MS = 200
MIB = 2**20

# Long tasks of the page's main thread, from now on (window.__scale keeps them across hash routes).
OBSERVE = """(threshold) => {
  if (window.__scale) return;
  const s = window.__scale = { longest: 0, over: 0, tasks: 0, log: [] };
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      s.longest = Math.max(s.longest, entry.duration);
      s.tasks += 1;
      if (entry.duration <= threshold) continue;
      s.over += 1;
      s.log.push([Math.round(entry.startTime), Math.round(entry.duration), s.phase]);
    }
  }).observe({ type: 'longtask', buffered: false });
}"""

TRAIN = """([projectId, epochs]) => {
  const s = window.__scale;
  s.phase = 'embed';
  s.trainStarted = null;
  s.done = null;
  s.error = null;
  s.progress = null;
  const started = performance.now();
  import('/tejas.js').then((t) => t.train(projectId, { epochs, onProgress: (p) => {
    s.progress = p;
    if (p.stage === 'training' && s.trainStarted === null) { s.trainStarted = performance.now(); s.phase = 'train'; }
  } })).then((model) => {
    s.done = { started, trainStarted: s.trainStarted ?? performance.now(), ended: performance.now(),
               accuracy: model.metrics?.accuracy ?? null };
  }, (error) => { s.error = String(error?.message ?? error); });
}"""

STATUS = """() => ({ phase: window.__scale.phase, done: window.__scale.done, error: window.__scale.error,
  progress: window.__scale.progress, summary: document.querySelector('.title-row .muted')?.textContent ?? '',
  toasts: [...document.querySelectorAll('#toasts .toast')].map((t) => [t.className, t.textContent]),
  tiles: document.querySelectorAll('.thumbs img').length })"""


def make_zip(path: Path, count: int, classes: int = 5, size: int = 256, seed: int = 0) -> Path:
    """An ImageFolder zip of `count` distinct size×size JPEGs, `classes` folders: each class its own
    colour cast and stripe direction over smooth random noise, like photos of 5 different things."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    stripes = [
        np.sin(2 * np.pi * 6 * (np.cos(a) * x + np.sin(a) * y)) for a in np.linspace(0, np.pi, classes, endpoint=False)
    ]
    casts = rng.uniform(0.3, 1.0, (classes, 3))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for i in range(count):
            c = i % classes
            noise = np.asarray(
                Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).resize(
                    (size, size), Image.Resampling.BICUBIC
                ),
                np.float32,
            )
            rgb = noise * 0.6 + 100 * casts[c] * (1 + stripes[c][..., None])
            buffer = io.BytesIO()
            Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=85)
            archive.writestr(f"class_{c}/{i:05d}.jpg", buffer.getvalue())
    return path


def _chromium_processes(root_pid: int) -> dict[int, str]:
    """pid → Chromium process type ('browser', 'renderer', 'gpu-process', ...) of the processes below root_pid."""
    parents, cmdlines = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                # Chromium rewrites its process title: the arguments may be one space-separated string
                cmdlines[int(entry)] = f.read().replace(b"\0", b" ").split()
        except (OSError, ValueError, IndexError):
            continue
    below, frontier = set(), {root_pid}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier and pid not in below}
        below |= frontier
    out = {}
    for pid in below:
        args = cmdlines.get(pid) or [b""]
        if b"chrom" not in args[0]:
            continue
        kind = next((a[7:].decode() for a in args if a.startswith(b"--type=")), "browser")
        if b"--extension-process" in args:
            kind = "extension"
        out[pid] = kind
    return out


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


class ProcessMemory(threading.Thread):
    """Peak resident memory of Chromium's renderer processes and of all its processes, sampled every
    `interval` seconds on a thread (it touches /proc only, never Playwright)."""

    def __init__(self, interval: float = 0.2):
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = {"renderer": 0, "total": 0}
        self.peak_by_type: dict[str, int] = {}
        self.phase_peaks: dict[str, dict[str, int]] = {}
        self.phase = "start"
        self._halt = threading.Event()

    def run(self):
        pids, refreshed = {}, 0.0
        while not self._halt.is_set():
            if time.monotonic() - refreshed > 2:
                pids, refreshed = _chromium_processes(os.getpid()), time.monotonic()
            sizes = {pid: _rss(pid) for pid in pids}
            by_type: dict[str, int] = {}
            for pid, value in sizes.items():
                by_type[pids[pid]] = by_type.get(pids[pid], 0) + value
            for kind, value in by_type.items():
                self.peak_by_type[kind] = max(self.peak_by_type.get(kind, 0), value)
            now = {
                "renderer": sum(v for pid, v in sizes.items() if pids[pid] == "renderer"),
                "total": sum(sizes.values()),
            }
            phase = self.phase_peaks.setdefault(self.phase, {"renderer": 0, "total": 0})
            for key, value in now.items():
                self.peak[key] = max(self.peak[key], value)
                phase[key] = max(phase[key], value)
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join()


class HeapPeak:
    """The page's JS heap (CDP Performance.getMetrics), its peak over the polls."""

    def __init__(self, page):
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.send("Performance.enable")
        self.used = self.total = 0

    def poll(self) -> None:
        metrics = {m["name"]: m["value"] for m in self.cdp.send("Performance.getMetrics")["metrics"]}
        self.used = max(self.used, metrics.get("JSHeapUsedSize", 0))
        self.total = max(self.total, metrics.get("JSHeapTotalSize", 0))


def _wait(page, heap: HeapPeak, done, timeout: float, what: str, interval: float = 0.5) -> dict:
    """Poll STATUS (and the heap) until done(status) or an error; returns the last status."""
    deadline = time.monotonic() + timeout
    while True:
        status = page.evaluate(STATUS)
        heap.poll()
        errors = [text for cls, text in status["toasts"] if "error" in cls.split()]
        if status["error"] or errors:
            raise RuntimeError(f"{what}: {status['error'] or errors[0]}")
        if done(status):
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s (last status {status})")
        time.sleep(interval)


def measure_scale(
    page,
    count: int = 5000,
    *,
    zip_path: Path | None = None,
    epochs: int = 20,
    classes: int = 5,
    timeout: float = 3600,
    log=print,
) -> dict:
    """Import `count` generated 256×256 JPEGs (a zip, through the Data screen), embed and train them,
    then scroll the Data screen; `page` has the app open (any screen). Returns seconds per stage, the
    peak memory (page JS heap, renderer and all-Chromium resident) and the main thread's long tasks."""
    work = None
    if zip_path is None:
        work = Path(tempfile.mkdtemp(prefix="tejas-scale-"))
        started = time.monotonic()
        zip_path = make_zip(work / f"scale-{count}.zip", count, classes)
        log(f"scale: {count} JPEGs zipped in {time.monotonic() - started:.1f} s")
    zip_mib = round(zip_path.stat().st_size / MIB, 1)
    processes = ProcessMemory()
    processes.start()
    try:
        page.evaluate(OBSERVE, LONG_TASK_MS)
        heap = HeapPeak(page)
        project_id = page.evaluate("async () => (await (await import('/tejas.js')).createProject('Scale')).id")
        page.evaluate("(id) => { location.hash = `#/p/${id}/data`; }", project_id)
        page.wait_for_selector("main[data-ready][data-screen=data]")

        processes.phase = "import"
        # errors from before (e.g. an offline-cache notice) are not the import's
        page.evaluate("() => { window.__scale.phase = 'import'; document.getElementById('toasts').replaceChildren(); }")
        started = time.monotonic()
        page.set_input_files("#add-zip", str(zip_path))
        expected = f"{classes} classes · {count:,} images"
        _wait(
            page,
            heap,
            lambda s: (
                s["summary"].replace(",", "") == expected.replace(",", "")
                and not any(zip_path.name in text for _, text in s["toasts"])
            ),
            timeout,
            "import",
        )
        import_seconds = time.monotonic() - started
        log(f"scale: imported {count} images in {import_seconds:.1f} s")

        processes.phase = "embed"
        page.evaluate(TRAIN, [project_id, epochs])
        status = _wait(page, heap, lambda s: s["done"], timeout, "train", interval=1.0)
        done = status["done"]
        embed_seconds = (done["trainStarted"] - done["started"]) / 1000
        train_seconds = (done["ended"] - done["trainStarted"]) / 1000
        log(f"scale: embedded in {embed_seconds:.1f} s, trained in {train_seconds:.1f} s")

        processes.phase = "scroll"
        page.evaluate("() => { window.__scale.phase = 'scroll'; }")
        tiles = scroll_through(page, heap)
        page.wait_for_timeout(200)  # the last long task reaches the observer
        tasks = page.evaluate("() => window.__scale")
        heap.poll()
    finally:
        processes.stop()
        if work:
            shutil.rmtree(work, ignore_errors=True)
    return {
        "images": count,
        "classes": classes,
        "image_size": 256,
        "zip_mib": zip_mib,
        "epochs": epochs,
        "import_seconds": round(import_seconds, 1),
        "embed_seconds": round(embed_seconds, 1),
        "train_seconds": round(train_seconds, 1),
        "validation_accuracy": done["accuracy"],
        "peak_js_heap_used_mib": round(heap.used / MIB, 1),
        "peak_js_heap_total_mib": round(heap.total / MIB, 1),
        "peak_renderer_rss_mib": round(processes.peak["renderer"] / MIB, 1),
        "peak_chromium_rss_mib": round(processes.peak["total"] / MIB, 1),
        "peak_chromium_rss_mib_by_process_type": {k: round(v / MIB, 1) for k, v in processes.peak_by_type.items()},
        "peak_renderer_rss_mib_by_stage": {k: round(v["renderer"] / MIB, 1) for k, v in processes.phase_peaks.items()},
        "memory_bound_mib": MEMORY_BOUND_MIB,
        "within_memory_bound": processes.peak["renderer"] <= MEMORY_BOUND_MIB * MIB,
        "longest_main_thread_task_ms": round(tasks["longest"]),
        "long_task_threshold_ms": LONG_TASK_MS,
        "tasks_over_threshold": tasks["over"],
        "tasks_over_threshold_log": tasks["log"][:20],  # [start ms, duration ms, stage]
        "long_tasks_over_50ms": tasks["tasks"],
        "max_tiles_rendered": tiles,
    }


def scroll_through(page, heap: HeapPeak, step_px: int = 600) -> int:
    """Scroll the Data screen from top to bottom a screenful at a time, as a user would; returns the
    most image tiles the page held at once."""
    most = 0
    page.evaluate("() => window.scrollTo(0, 0)")
    while True:
        page.mouse.wheel(0, step_px)
        page.wait_for_timeout(50)
        state = page.evaluate(
            "() => [scrollY + innerHeight >= document.documentElement.scrollHeight - 2,"
            " document.querySelectorAll('.thumbs img').length]"
        )
        most = max(most, state[1])
        if state[0]:
            break
    heap.poll()
    return most


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="images (default 5000)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale.json")
    parser.add_argument(
        "--pwa", type=Path, help="serve this copy of the app instead of pwa/ (before/after comparisons)"
    )
    args = parser.parse_args(argv)
    from testkit.browser import CHROMIUM, CHROMIUM_ARGS
    from testkit.server import Server

    default = ROOT / "artifacts" / "default"
    if not default.exists() or not Path(CHROMIUM).exists() or not (ROOT / "pwa" / "vendor" / "vendor.json").exists():
        print(
            "scale bench: error: needs artifacts/default, pwa/vendor and /usr/bin/chromium; run the README's commands",
            file=sys.stderr,
        )
        return 1
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="tejas-scale-bench-"))
    shutil.copytree(default, work / "default")
    server = Server(work, args.pwa)
    report = new_report("scale", machine=None, chromium=None, npm=vendored_npm(), artifacts="default", result=None)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            report["chromium"] = browser.version
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            page = context.new_page()
            page.goto(server.url + "/")
            page.wait_for_selector("main[data-ready]")
            report["result"] = measure_scale(
                page, args.count, epochs=args.epochs, log=lambda m: print(m, file=sys.stderr)
            )
            browser.close()
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    report["machine"] = machine_facts(torch=False)
    write_report(args.out, report)
    r = report["result"]
    print(
        f"{r['images']} images: import {r['import_seconds']} s, embed {r['embed_seconds']} s, "
        f"train {r['train_seconds']} s; peak renderer {r['peak_renderer_rss_mib']} MiB "
        f"(bound {r['memory_bound_mib']}), JS heap {r['peak_js_heap_used_mib']} MiB; longest main-thread task "
        f"{r['longest_main_thread_task_ms']} ms, {r['tasks_over_threshold']} over {LONG_TASK_MS} ms",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
