#!/usr/bin/env python3
"""Write the README's benchmark tables from bench/results/*.json, between marker comments.

    python bench/readme_tables.py            # rewrite README.md's generated blocks
    python bench/readme_tables.py --check    # exit 1 (with a diff) when README.md differs from the JSON

Each block sits between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`; text outside the markers is
never touched. Every number in a block comes from the JSON, including the line that says when,
where and how it was measured.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
BLOCK = re.compile(r"(<!-- bench:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /bench:(?P=name) -->)", re.S)

ARCHITECTURES = {"mobilenet_v2": "MobileNetV2", "resnet18": "ResNet18"}
# The goals set for the engine (issues 4 and 16): embedding img/s of the default backbone and of ResNet18
# at 224², the browser's share of native onnxruntime on the same model, a head training step rate,
# "100 images → model" cold and after background embedding, the longest main-thread task, the accuracy
# drift a faster variant may cost, and the memory of a 5,000-image project.
EMBED_GOAL = {"default": 100, "resnet18": 40}
RATIO_GOAL = 0.25
HEAD_STEPS_GOAL = 1000
COLD_SECONDS_GOAL = 3
BACKGROUND_TRAIN_GOAL_SECONDS = 1
LONG_TASK_GOAL_MS = 200
DRIFT_GOAL_POINTS = 1
DATASET_NAMES = {"animal_mnist": "Animal-MNIST", "photos": "photo crops"}


class ResultsError(Exception):
    """The JSON cannot back the README (missing file, a test's run, a missing row)."""


def load(name: str, results: Path) -> dict:
    path = results / f"{name}.json"
    if not path.is_file():
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        raise ResultsError(f"{shown} missing: run bench/{name}.py")
    return json.loads(path.read_text())


def backbone(row: dict) -> str:
    size = row["input_size"][0] if isinstance(row["input_size"], list) else row["input_size"]  # native: [h, w]
    name = f"{ARCHITECTURES.get(row['architecture'], row['architecture'])} {size}²"
    if row.get("quantization", "none") != "none":
        name += " uint8"
    weights = row.get("weights", "imagenet")
    return name if weights == "imagenet" else f"{name}, {'random' if weights == 'none' else weights} weights"


def label(row: dict) -> str:
    return f"`{row['artifacts']}` ({backbone(row)})"


def fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def provenance(report: dict, results: Path) -> str:
    """One line: date, machine, software, commit, command and file of a run."""
    m = report["machine"]
    parts = [
        f"{m['cpu_model']}, {m['cpu_count']} cores, {m['memory_gib']:g} GiB"
        + (f" (load average {m['load_average'][0]:g} at the end)" if m.get("load_average") else ""),
        m["os"],
        f"Python {m['python']}",
    ]
    if "torch" in m:
        parts.append(f"torch {m['torch']}")
    if "onnxruntime" in m:
        parts.append(f"{m.get('onnxruntime_distribution') or 'onnxruntime'} {m['onnxruntime']}")
    if report.get("chromium"):
        parts.append(f"Chromium {report['chromium']}")
        npm = report.get("npm", {})
        web = [npm[k].replace("onnxruntime-web@", "") for k in ("ort", "ort-training") if k in npm]
        if web:
            parts.append(f"onnxruntime-web {' (inference) and '.join(web)} (training)")
    if report.get("pyodide_runtime"):
        runtime = report["pyodide_runtime"]
        parts.append(f"Pyodide {runtime['pyodide']} (Python {runtime['python']}) in Node {runtime['node']}")
    commit = (report.get("git_commit") or "unknown")[:10]
    modified = report.get("git_modified") or []
    if modified:
        commit += f" with {len(modified)} locally modified file{'s' * (len(modified) != 1)} (listed in the JSON)"
    name = f"bench/results/{report['benchmark']}.json"
    return (
        f"Measured {report['created'][:10]} on {'; '.join(parts)}; commit {commit}; "
        f"`{report['command']}` → [{name}]({name})."
    )


def pycore_block(results: Path) -> str:
    report = load("pycore", results)
    cpython, pyodide, ratio = report["cpython"], report["pyodide"], report["pyodide_over_cpython"]
    dataset = report["dataset"]
    tasks = {
        "import_zip_s": "import the dataset zip",
        "export_zip_s": "export the dataset zip",
        "write_onnx_s": f"write {ARCHITECTURES.get(cpython.get('architecture'), 'the')} classifier `.onnx`",
        "write_pt_s": f"write {ARCHITECTURES.get(cpython.get('architecture'), 'the')} classifier `.pt`",
    }
    lines = [
        f"Core speed, {dataset['images']:,} images ({dataset['zip_bytes'] / 1e6:.0f} MB zip) and model files, "
        "best of 3. " + provenance(report, results),
        "",
        "| task | CPython | Pyodide (Node) | ratio |",
        "|---|---|---|---|",
    ]
    for key, task in tasks.items():
        if key in ratio:
            lines.append(f"| {task} | {cpython[key]:.3f} s | {pyodide[key]:.3f} s | {ratio[key]:.1f}× |")
    goals = report["goals"]
    verdict = [
        ("Pyodide within 3× of CPython", goals["pyodide_within_3x"]),
        ("model files under 2 s in Pyodide", goals["model_files_under_2s_in_pyodide"]),
    ]
    lines += ["", "Goals: " + "; ".join(f"{text}: {'met' if ok else '**missed**'}" for text, ok in verdict) + "."]
    return "\n".join(lines)


def browser_report(results: Path) -> dict:
    report = load("browser", results)
    if any(p.get("injected_busy_ms") for p in report["project"]):
        raise ResultsError("bench/results/browser.json comes from a test run (--inject-busy-ms): rerun the bench")
    return report


def browser_embed_block(results: Path) -> str:
    report = browser_report(results)
    lines = [
        f'Embedding {report["images_per_embedding_run"]} photo-like 320×240 PNGs (wasm; "backbone alone" leaves '
        "out decoding and resizing), with native onnxruntime on the same backbone in the same run. "
        + provenance(report, results),
        "",
        "| artifacts | threads | batch | browser img/s | backbone alone | native onnxruntime | browser ÷ native |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["embedding"]:
        lines.append(
            f"| {label(r)} | {r['threads']} | {r['batch']} | {fmt(r['browser_images_per_second'])} | "
            f"{fmt(r['browser_inference_images_per_second'])} | {fmt(r['native_images_per_second'])} | "
            f"{r['browser_over_native']:.2f} |"
        )
    options = report.get("session_options") or []
    if options:
        first = options[0]
        described = next(r for r in report["embedding"] if r["artifacts"] == first["artifacts"])
        lines += [
            "",
            f"onnxruntime-web session options on {label(described)}, {first['threads']} threads, "
            f"batch {first['batch']}, best of 2 passes after a warm-up, "
            "in one page (each setting differs from the embed worker's defaults in one option):",
            "",
            "| setting | browser img/s | backbone alone | largest feature difference from the defaults |",
            "|---|---|---|---|",
        ]
        for r in options:
            lines.append(
                f"| {r['setting']} | {fmt(r['images_per_second'])} | {fmt(r['inference_images_per_second'])} | "
                f"{r['max_abs_diff_vs_defaults']:.1e} |"
            )
    return "\n".join(lines)


def goal_rows(report: dict, name: str) -> list[dict]:
    """Embedding rows a goal is about: the `default` artifacts, or an architecture at 224²."""
    if name == "default":
        return [r for r in report["embedding"] if r["artifacts"] == "default"]
    return [r for r in report["embedding"] if r["architecture"] == name and r["input_size"] == 224]


def best_embedding(report: dict, name: str) -> dict | None:
    rows = goal_rows(report, name)
    return max(rows, key=lambda r: r["browser_images_per_second"]) if rows else None


def seconds(value: float) -> str:
    return f"{fmt(value)} s"


def browser_measures_block(results: Path) -> str:
    report = browser_report(results)
    (project,) = report["project"]
    training = report["training"]
    lines = ["| measure | result | goal | met |", "|---|---|---|---|"]
    for name, goal in EMBED_GOAL.items():
        best = best_embedding(report, name)
        if best:
            lines.append(
                f"| embedding, {label(best) if name == 'default' else backbone(best)}, best of threads × batch | "
                f"{fmt(best['browser_images_per_second'])} img/s ({best['threads']} thread"
                f"{'s' * (best['threads'] != 1)}, batch {best['batch']}) | ≥ {goal} img/s | "
                f"{yes(best['browser_images_per_second'] >= goal)} |"
            )
    best = best_embedding(report, "default")
    if best:
        lines.append(
            f"| browser ÷ native onnxruntime, {label(best)}, same threads × batch as above | "
            f"{best['browser_over_native']:.2f} | ≥ {RATIO_GOAL} | {yes(best['browser_over_native'] >= RATIO_GOAL)} |"
        )
    heads = ", ".join(
        f"{fmt(r['head_steps_per_second_1_threads'], 0)} / {fmt(r['head_steps_per_second_2_threads'], 0)} {backbone(r)}"
        for r in training
    )
    default_head = next((r for r in training if r["artifacts"] == project["artifacts"]), training[0])
    lines.append(
        f"| head training, {default_head['classes']} classes, batch 16, 1 / 2 wasm threads (the app uses 1) | "
        f"{heads} steps/s | ≥ {HEAD_STEPS_GOAL:,} ({label(default_head)}) | "
        f"{yes(default_head['head_steps_per_second'] >= HEAD_STEPS_GOAL)} |"
    )
    blocks = [r for r in training if "last_block_steps_per_second" in r]
    if blocks:
        text = ", ".join(f"{fmt(r['last_block_steps_per_second'], 2)} {backbone(r)}" for r in blocks)
        lines.append(f"| last-block training, batch 16 | {text} steps/s | — | — |")
    lines.append(
        f"| {project['images']} images of {project['classes']} classes → model, {project['epochs']} epochs, "
        f"`{project['artifacts']}` | {seconds(project['cold_seconds'])} cold, "
        f"{seconds(project['warm_seconds'])} warm | "
        f"≤ {COLD_SECONDS_GOAL} s cold | {yes(project['cold_seconds'] <= COLD_SECONDS_GOAL)} |"
    )
    if "background_train_seconds" in project:
        lines.append(
            f"| the same after background embedding: Train → model | "
            f"{seconds(project['background_train_seconds'])} ({project['background_train_embedded_images']} images "
            f"embedded by Train) | ≤ {BACKGROUND_TRAIN_GOAL_SECONDS} s | "
            f"{yes(project['background_train_seconds'] <= BACKGROUND_TRAIN_GOAL_SECONDS)} |"
        )
        lines.append(
            "| first image added → model, with background embedding (adding "
            f"{seconds(project['background_add_seconds'])}, then ready after "
            f"{seconds(project['background_wait_seconds'])}) | "
            f"{seconds(project['background_total_seconds'])} | ≤ the cold run's "
            f"{seconds(project['cold_total_seconds'])} | "
            f"{yes(project['background_total_seconds'] <= project['cold_total_seconds'])} |"
        )
    longest = project["longest_main_thread_task_ms"]
    seen = (
        "none over 50 ms (no `longtask` entry)"
        if project["long_tasks"] == 0
        else (f"{fmt(longest, 0)} ms ({project['long_tasks']} task{'s' * (project['long_tasks'] != 1)} over 50 ms)")
    )
    lines.append(
        f"| longest main-thread task during the cold run | {seen} | < {LONG_TASK_GOAL_MS} ms | "
        f"{yes(longest < LONG_TASK_GOAL_MS)} |"
    )
    for r in report["accuracy"]:
        scores = "; ".join(
            f"{DATASET_NAMES.get(name, name)} {d['variant_accuracy']:.3f} vs {d['reference_accuracy']:.3f} "
            f"({d['drift_points']:+.2f} points, feature cosine {d['feature_cosine']:.3f})"
            for name, d in r["datasets"].items()
        )
        lines.append(
            f"| accuracy drift of {label(r)} from `{r['drift_reference']}` (linear probe, "
            f"{next(iter(r['datasets'].values()))['train_per_class']} training images per class, "
            f"mean of {next(iter(r['datasets'].values()))['splits']} splits) | {scores} | "
            f"≤ {DRIFT_GOAL_POINTS} point on each | {yes(r['within_bound'])} |"
        )
    scale = report.get("scale")
    if scale:
        lines.append(
            f"| {scale['images']:,} images ({scale['image_size']}² JPEGs, a {fmt(scale['zip_mib'])} MiB zip) → model, "
            f"`{scale['artifacts']}` | import {seconds(scale['import_seconds'])}, embedding "
            f"{seconds(scale['embed_seconds'])} more, training {seconds(scale['train_seconds'])} | — | — |"
        )
        lines.append(
            f"| peak memory meanwhile: renderer process (JS heap) | {fmt(scale['peak_renderer_rss_mib'], 0)} MiB "
            f"({fmt(scale['peak_js_heap_used_mib'], 0)} MiB) | ≤ {fmt(scale['memory_bound_mib'], 0)} MiB | "
            f"{yes(scale['within_memory_bound'])} |"
        )
        lines.append(
            f"| main-thread tasks over {scale['long_task_threshold_ms']} ms meanwhile (longest) | "
            f"{scale['tasks_over_threshold']} ({fmt(scale['longest_main_thread_task_ms'], 0)} ms) | none | "
            f"{yes(scale['tasks_over_threshold'] == 0)} |"
        )
    return "\n".join(lines)


def yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def browser_why_block(results: Path) -> str:
    """Where the time goes, from the same run: the backbone's share, threads, a smaller input, the head."""
    report = browser_report(results)
    facts, threads = [], []
    for name in EMBED_GOAL:
        rows = goal_rows(report, name)
        if not rows:
            continue
        shares = [r["browser_images_per_second"] / r["browser_inference_images_per_second"] for r in rows]
        alone = max(r["browser_inference_images_per_second"] for r in rows)
        facts.append(
            f"the backbone alone runs at up to {fmt(alone)} img/s in Chromium's wasm for {backbone(rows[0])}, "
            f"{100 * min(shares):.0f}–{100 * max(shares):.0f}% of the embedding time"
        )
        one, two = (next((r for r in rows if r["threads"] == t and r["batch"] == 8), None) for t in (1, 2))
        if one and two:
            gain = two["browser_inference_images_per_second"] / one["browser_inference_images_per_second"]
            threads.append(f"{gain:.1f}× for {backbone(one)}")
    text = "; ".join(facts) + "." if facts else ""
    text = text[:1].upper() + text[1:]
    if threads:
        text += f" Two threads instead of one (backbone alone, batch 8): {', '.join(threads)}."
    for r in report["accuracy"]:
        small = [e for e in report["embedding"] if e["artifacts"] == r["artifacts"]]
        big = [e for e in report["embedding"] if e["artifacts"] == r["drift_reference"]]
        pairs = [
            (s, b) for s in small for b in big if (s["threads"], s["batch"]) == (b["threads"], b["batch"]) == (2, 8)
        ]
        if pairs:
            s, b = pairs[0]
            speed = s["browser_inference_images_per_second"] / b["browser_inference_images_per_second"]
            native = s["native_images_per_second"] / b["native_images_per_second"]
            text += (
                f" {backbone(s)} against {backbone(b)}: {speed:.1f}× the backbone speed in the browser "
                f"({native:.1f}× natively) on two threads, batch 8, for a drift of at most "
                f"{r['max_drift_points']:+.2f} points."
            )
    heads = [r for r in report["training"] if "head_steps_per_second_2_threads" in r]
    if heads:
        ratios = [r["head_steps_per_second_1_threads"] / r["head_steps_per_second_2_threads"] for r in heads]
        spread = f"{min(ratios):.1f}–{max(ratios):.1f}×"
        text += (
            f" The head trains on the narrowest exported set that holds the project's classes "
            f"(`training.head.narrow`; {heads[0]['classes']} classes: the 8-wide set); on one thread it makes "
            f"{spread} the steps/s of two."
        )
    return "**Where the time goes (same run):** " + text.strip()


def native_block(results: Path) -> str:
    report = load("native_embed", results)
    m = report["machine"]
    lines = [
        f"Native reference speed (images/s), median of 3 windows of {report['seconds_per_window']:g} s; "
        f"onnxruntime is the `{m.get('onnxruntime_distribution')}` {m['onnxruntime']} build. "
        + provenance(report, results),
        "",
        "| artifacts | runtime | threads | batch 1 | batch 8 |",
        "|---|---|---|---|---|",
    ]
    rows = {}
    for r in report["results"]:
        rows.setdefault((r["artifacts"], r["runtime"], r["threads"]), {"row": r})[r["batch"]] = r
    for (_, runtime, threads), cells in rows.items():
        values = [fmt(cells[b]["images_per_second"]) if b in cells else "—" for b in (1, 8)]
        lines.append(f"| {label(cells['row'])} | {runtime} | {threads} | {values[0]} | {values[1]} |")
    return "\n".join(lines)


BACKEND_NAMES = {"embedded": "embedded (SQLite + folder)", "postgres+s3": "Postgres + S3 API (moto)"}


def sync_load_block(results: Path) -> str:
    """Devices syncing at once against `tejas serve`: latency and throughput per backend, and the checks."""
    report = load("sync_load", results)
    if not report.get("ok") or not all(r["checks"]["ok"] for r in report["results"]):
        raise ResultsError("bench/results/sync_load.json records a failed check (lost or duplicated data): rerun")
    c, rows = report["config"], report["results"]
    software = report.get("software", {})
    stack = ", ".join(
        f"{name} {software[key]}" for key, name in (("fastapi", "FastAPI"), ("uvicorn", "uvicorn"),
                                                    ("sqlalchemy", "SQLAlchemy"), ("psycopg", "psycopg"),
                                                    ("moto", "moto")) if key in software
    )  # fmt: skip
    postgres = next((r["postgres"] for r in rows if r.get("postgres")), None)
    lines = [
        f"{c['users'] * c['devices_per_user']} simulated devices ({c['users']} users × {c['devices_per_user']} "
        f"devices), taking turns with at most {c['concurrent_devices']} syncing at once and "
        f"{c['blob_concurrency']} requests in flight each; each device pushes {c['changes']:,} changes in "
        f"{c['rounds']} rounds and "
        f"{c['blobs']} PNG images ({c['shared_blobs']} of them the same on every device), pulls after each "
        f"push (pages of {c['pull_limit']}) and downloads its other devices' images; one `tejas serve` "
        f"process, the devices in one asyncio process on the same machine, over loopback. Server: {stack}"
        + (f", Postgres {postgres}" if postgres else "")
        + ". "
        + provenance(report, results),
        "",
        "| measure | " + " | ".join(BACKEND_NAMES.get(r["backend"], r["backend"]) for r in rows) + " |",
        "|---|" + "---|" * len(rows),
    ]

    def row(name: str, cell) -> None:
        lines.append(f"| {name} | " + " | ".join(cell(r) for r in rows) + " |")

    def latency(key: str):
        return lambda r: f"{fmt(r[key]['p50_ms'])} / {fmt(r[key]['p95_ms'])} ms ({r[key]['count']:,})"

    row("push, p50 / p95 (requests)", latency("push"))
    row("pull page, p50 / p95 (requests)", latency("pull"))
    row("image upload, p50 / p95 (requests)", latency("blob_upload"))
    row("image download, p50 / p95 (requests)", latency("blob_download"))
    row('"which images are missing?", p50 / p95 (requests)', latency("blobs_missing"))
    row(
        "changes pushed / records pulled per second",
        lambda r: (
            f"{fmt(r['throughput']['changes_pushed_per_s'], 0)} / {fmt(r['throughput']['changes_pulled_per_s'], 0)}"
        ),
    )
    row("requests per second", lambda r: fmt(r["throughput"]["requests_per_s"], 0))
    row(
        "wall time (server process CPU time, per request)",
        lambda r: (
            f"{fmt(r['wall_s'])} s ({fmt(r['server_cpu_s'])} s, "
            f"{fmt(1000 * r['server_cpu_s'] / r['totals']['requests'])} ms)"
        ),
    )
    row(
        "records lost / stale / duplicated / altered, all devices",
        lambda r: " / ".join(str(r["checks"][k]) for k in ("lost", "stale", "duplicated", "changed")),
    )
    row(
        "records on each device (all users together)",
        lambda r: (
            f"{r['checks']['records_per_device_min']:,}"
            + (
                f"–{r['checks']['records_per_device_max']:,}"
                if r["checks"]["records_per_device_max"] != r["checks"]["records_per_device_min"]
                else ""
            )
            + f" ({r['checks']['records_expected']:,})"
        ),
    )
    row(
        "images: distinct uploaded / stored / stored twice / missing for their user",
        lambda r: (
            f"{r['checks']['blobs_uploaded_distinct']:,} / {r['checks']['blobs_stored']:,} / "
            f"{r['checks']['blobs_stored_twice']} / {r['checks']['blobs_missing']}"
        ),
    )
    row(
        "server errors (5xx), each retried by the device",
        lambda r: (
            str(r["totals"].get("server_errors", 0))
            + (
                f" ({', '.join(sorted({e.split(':')[0] for e in r['server_log_errors']}))} in its log)"
                if r.get("server_log_errors")
                else ""
            )
        ),
    )
    return "\n".join(lines)


GPU_COMMAND = (
    "python bench/server_train.py --device cuda --images 2000 --batch-size 128 --epochs 3 "
    "--runs resnet18:full,auto:full,auto:head --out bench/results/server_train_cuda.json"
)


def server_train_rows(report: dict, results: Path) -> list[str]:
    c, d = report["config"], report["data"]
    m = report["machine"]
    where = f" on {m['gpu']['name']}" if m.get("gpu") else ""
    threads = f", {c['torch_threads']} torch thread{'s' * (c['torch_threads'] != 1)}" if c["device"] == "cpu" else ""
    lines = [
        f"{c['device'].upper()}{where}: {d['images']} {d['format']} images of {d['classes']} classes "
        f"({d['image_size'][0]}×{d['image_size'][1]}, {d['source'].split(' (')[0]}), batch {c['batch_size']}, "
        f"{c['workers']} DataLoader worker{'s' * (c['workers'] != 1)}{threads}, {c['warmup_epochs']} warm-up "
        f"epoch then {c['timed_epochs']} timed; images/s over the timed epochs"
        + (f", median of {c['repeats']} runs each" if c["repeats"] > 1 else "")
        + "; in brackets the trainer's speed ÷ the hand loop's, by the wall clock and by the process's CPU "
        "time (steadier on a shared machine). "
        + provenance(report, results)
        + (f" Load average {m['load_average_start'][0]:g} at the start." if m.get("load_average_start") else ""),
        "",
        "| network | mode | AMP, channels-last | hand loop img/s | trainer img/s, checkpoint every epoch "
        "(÷ hand: wall, CPU) | trainer img/s, no checkpoints (÷ hand: wall, CPU) | checkpoint size, time | "
        f"≥ {report['goals']['ratio']:g}× (wall) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        ckpt = r["trainer"]["repeats"][0]
        saves = ckpt.get("checkpoint_seconds") or [0.0]
        lines.append(
            f"| {backbone(r)} | {r['mode']} | {r['amp'] or 'no'}, {'yes' if r['channels_last'] else 'no'} | "
            f"{fmt(r['hand']['images_per_second'], 2)} | {fmt(r['trainer']['images_per_second'], 2)} "
            f"({r['ratio']:.2f}, {r['cpu_time_ratio']:.2f}) | "
            f"{fmt(r['trainer_no_checkpoint']['images_per_second'], 2)} "
            f"({r['ratio_no_checkpoint']:.2f}, {r['cpu_time_ratio_no_checkpoint']:.2f}) | "
            f"{ckpt.get('checkpoint_bytes', 0) / 1e6:.0f} MB, {fmt(statistics.median(saves), 2)} s | "
            f"{yes(r['ratio'] >= report['goals']['ratio'])} |"
        )
    return lines


def server_train_block(results: Path) -> str:
    """The server's trainer against a minimal hand-written loop, CPU here and a GPU run when there is one."""
    report = load("server_train", results)
    lines = server_train_rows(report, results)
    goal = report["goals"]["gpu_images_per_second"]
    gpu_path = results / "server_train_cuda.json"
    if gpu_path.is_file():
        gpu = json.loads(gpu_path.read_text())
        lines += [""] + server_train_rows(gpu, results)
        best = [r for r in gpu["results"] if r["architecture"] == "resnet18" and r["mode"] == "full"]
        if best:
            ips = best[0]["trainer"]["images_per_second"]
            lines += [
                "",
                f"GPU goal, ResNet18 224² full fine-tune: {fmt(ips, 0)} img/s (≥ {goal:,}: {yes(ips >= goal)}).",
            ]
    else:
        lines += [
            "",
            f"GPU numbers (goal: ResNet18 224² full fine-tune with AMP + channels-last ≥ {goal:,} img/s on one H100) "
            f"are pending a run on a GPU machine: `{GPU_COMMAND}`, then `python bench/readme_tables.py`.",
        ]
    return "\n".join(lines)


NATIVE_MOVED = 1.25  # native before ÷ after (or after ÷ before) beyond which a row's ratio is marked
PREDICT_NOTES = {"app": "the app", "cli": "`tejas predict`", "batch": "the server's batch job"}


def predict_block(results: Path) -> str:
    """Every way of classifying many images, each beside native onnxruntime measured in the same run."""
    report = load("predict_throughput", results)
    if not report.get("ok") or report.get("errors"):
        failed = ", ".join(e["path"] for e in report.get("errors", []))
        raise ResultsError(f"bench/results/predict_throughput.json records a failed path ({failed}): rerun")
    c, m = report["config"], report["model"]
    w, h = c["image_size"]
    formats = " and ".join(f"{n} {kind}" for kind, n in c["formats"].items() if n)
    load_start = report.get("load_average_start")
    lines = [
        f"{c['images']} photo-like images ({w}×{h}, {formats}, {c['mean_file_bytes'] / 1000:.0f} KB on average; "
        f"a {c['zip_bytes'] / 1e6:.1f} MB zip of them), top-{c['top_k']}, through one model: "
        f"{backbone(m)} with a {len(m['classes'])}-class head trained in the "
        "app, the same weights in every path (the app's project, an ONNX file written by the core's writer, a "
        "model synced to the server). Each path runs between two windows of native onnxruntime "
        f"({c['native_seconds_per_window']:g} s each) on the same ONNX file with the path's threads × batch, fed "
        "the same images decoded and preprocessed beforehand; ÷ native is the path's images/s over the two "
        "windows' mean. Native with decoding: the Classifier that `tejas predict`, batch jobs and stream workers run, "
        "called in-process on the image bytes (Pillow decoding and resizing included), in the same windows. "
        "Top-1 = native: images whose top class is native onnxruntime's. "
        + provenance(report, results)
        + (f" Load average {load_start[0]:g} at the start" if load_start else "")
        + (f", the run at nice {report['nice']}" if report.get("nice") else "")
        + ".",
        "",
        "| path | what is timed | threads × batch | images/s | native images/s | ÷ native | native with decoding "
        "| ÷ native with decoding | latency p50 / p95 | top-1 = native |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    unsteady = []
    for r in report["results"]:
        threads = (
            f"{r['threads']} ({r['threads_per_worker']} per worker) × {r['batch']}"
            if r.get("workers", 1) > 1
            else f"{r['threads']} × {r['batch']}"
        )
        latency = f"{fmt(r['latency_p50_ms'], 0)} / {fmt(r['latency_p95_ms'], 0)} ms" if "latency_p50_ms" in r else "—"
        agree = f"{r['top1_same_as_native']}/{c['images']}"
        native = fmt(r["native_images_per_second"])
        moved = max(r["native_before"], r["native_after"]) / min(r["native_before"], r["native_after"])
        mark = ""
        if moved > NATIVE_MOVED:
            mark = "†"
            unsteady.append(f"{r['label']} {fmt(r['native_before'])} → {fmt(r['native_after'])}")
        decoded = r["native_with_decode_images_per_second"]

        def cells(rate: float, r=r, native=native, mark=mark, decoded=decoded) -> str:
            return (
                f"{fmt(rate)} | {native} | {rate / r['native_images_per_second']:.2f}{mark} | {fmt(decoded)} | "
                f"{rate / decoded:.2f}{mark}"
            )

        rate = cells(r["images_per_second"])
        lines.append(f"| {r['label']} | {r['timed']} | {threads} | {rate} | {latency} | {agree} |")
        if r.get("own_images_per_second"):
            lines.append(
                f"| {r['label']}: its own rate | from its first image to its last, as it reports (model loaded) | "
                f"{threads} | {cells(r['own_images_per_second'])} | — | {agree} |"
            )
    if unsteady:
        lines += [
            "",
            f"† native onnxruntime's speed moved by more than {100 * (NATIVE_MOVED - 1):.0f}% between the windows "
            f"before and after the path (native img/s before → after: {'; '.join(unsteady)}): other work on the "
            "machine changed meanwhile, so those ratios are rougher than the others.",
        ]
    lines += [
        "",
        "**What limits each path (same run):**",
        "",
    ]
    for key, text in report["notes"].items():
        name = PREDICT_NOTES.get(key) or f"the stream, {key.rsplit('_', 1)[1]} worker{'s' * (key[-1] != '1')}"
        lines.append(f"- {name[:1].upper() + name[1:]}: {text}")
    return "\n".join(lines)


TEXT_ENCODERS = {"float32": "float32 (`encoder.onnx`)", "uint8": "uint8 per-channel (`encoder_uint8.onnx`)"}


def text_block(results: Path) -> str:
    """Text: embedding texts/s in the browser beside native, head steps/s, macro-F1 and the uint8 drift."""
    report = load("text", results)
    if report["config"].get("limit"):
        raise ResultsError(f"bench/results/text.json is a test's run (--limit {report['config']['limit']}): rerun")
    c, q, goal, head = report["config"], report["quantised"], report["goal"], report["head"]
    classes = ", ".join(f"{n:,} {name}" for name, n in c["classes"].items())
    load_start = report.get("load_average_start")
    lines = [
        f"The SMS spam collection ({c['texts']:,} texts: {classes}), embedded whole with the app's `embedTexts` "
        f"(Chromium, onnxruntime-web wasm, batches of {c['batch_size']} sorted by token length: "
        f"{c['padded_tokens_sorted']:,} padded tokens for {c['tokens']:,}, against {c['padded_tokens_unsorted']:,} "
        "unsorted), each row between two native onnxruntime runs on the same file, the same batches and tokens and "
        "the same threads (÷ native: over their mean). "
        + provenance(report, results)
        + (f" Load average {load_start[0]:g} at the start" if load_start else "")
        + (f", the run at nice {report['nice']}" if report.get("nice") else "")
        + ".",
        "",
        "| encoder | threads × batch | browser texts/s | native texts/s (before, after) | ÷ native "
        "| browser features vs native |",
        "|---|---|---|---|---|---|",
    ]
    unsteady = []
    for r in report["embedding"]:
        mark = ""
        if max(r["native_before"], r["native_after"]) / min(r["native_before"], r["native_after"]) > NATIVE_MOVED:
            mark = "†"
            unsteady.append(f"{r['encoder']} × {r['threads']}")
        same = (
            f"max abs diff {r['max_abs_diff_vs_native']:.1e}"
            if r["encoder"] == "float32"
            else f"min cosine {r['min_cosine_vs_native']:.4f}"
        )
        lines.append(
            f"| {TEXT_ENCODERS[r['encoder']]} | {r['threads']} × {r['batch']} | {fmt(r['texts_per_second'])} | "
            f"{fmt(r['native_texts_per_second'])} ({fmt(r['native_before'])}, {fmt(r['native_after'])}) | "
            f"{r['over_native']:.2f}{mark} | {same} |"
        )
    best = goal["best"]
    if unsteady:
        lines += [
            "",
            f"† native onnxruntime's speed moved by more than {100 * (NATIVE_MOVED - 1):.0f}% between the runs before "
            f"and after the browser's ({', '.join(unsteady)}): other work on the machine changed meanwhile, so those "
            "rows are rough; compare rows of one run only.",
        ]
    lines += [
        "",
        f"Goal: the whole set at ≥ {goal['texts_per_second']} texts/s in the browser: "
        + ("**met**" if goal["met"] else "**not met**")
        + f" ({fmt(best['texts_per_second'])} texts/s, {best['encoder']}, {best['threads']} threads). "
        f"Head training (`trainHead`, {head['rows']:,} rows of 384 features, {head['epochs']} epochs): "
        f"{fmt(head['steps_per_second'], 0)} steps/s.",
        "",
        f"Macro-F1 on a fixed stratified validation split of the {c['distinct_texts']:,} distinct texts "
        f"({c['split']['train']:,} train / {c['split']['validation']:,} validation, seed {c['split']['seed']}); "
        f"logistic regression with C = {c['logistic_c']:g} throughout; {c['few_shot_per_class']} training rows per "
        f"class: mean ± sd over {c['few_shot_seeds']} draws.",
        "",
        f"| model | all training rows | {c['few_shot_per_class']} per class |",
        "|---|---|---|",
    ]
    a, few = report["accuracy"], report["accuracy"]["few_shot"]
    names = {
        "browser_head": f"head trained in the browser on the browser's {c['default_encoder']} embeddings",
        "minilm_logistic": "MiniLM float32 embeddings (native) + logistic regression",
        "tfidf_logistic": "TF-IDF (word 1–2-grams) + logistic regression",
    }
    for key, name in names.items():
        lines.append(f"| {name} | {a[key]:.3f} | {few[key]['mean']:.3f} ± {few[key]['std']:.3f} |")
    lines += [
        "",
        f"The uint8 encoder's drift: macro-F1 {q['macro_f1_uint8']:.3f} against {q['macro_f1_float32']:.3f} for "
        f"float32 (native embeddings, the same logistic regression): {q['drift_points']:+.1f} points lost "
        f"(limit {q['limit_points']:g}). "
        + (
            f"`{q['file']}` is the app's default."
            if q.get("app_default")
            else "The app still loads float32: the uint8 encoder quantises activations at run time, which "
            "onnxruntime-web and native onnxruntime round apart (browser features at min cosine "
            f"{min(r['min_cosine_vs_native'] for r in report['embedding'] if r['encoder'] == 'uint8'):.3f} to native), "
            "so a model exported from the app would not give the app's probabilities in Python."
        ),
    ]
    return "\n".join(lines)


BLOCKS = {
    "pycore": pycore_block,
    "browser-embed": browser_embed_block,
    "browser-measures": browser_measures_block,
    "browser-why": browser_why_block,
    "native": native_block,
    "sync-load": sync_load_block,
    "server-train": server_train_block,
    "predict": predict_block,
    "text": text_block,
}


def regenerate(readme: str, results: Path = RESULTS) -> str:
    """README text with every generated block replaced; refuses unknown or missing blocks."""
    found = [m.group("name") for m in BLOCK.finditer(readme)]
    unknown = sorted(set(found) - set(BLOCKS))
    missing = sorted(set(BLOCKS) - set(found))
    if unknown or missing:
        raise ResultsError(f"README markers: unknown {unknown}, missing {missing}")
    rendered = {name: render(results) for name, render in BLOCKS.items()}
    return BLOCK.sub(lambda m: m.group(1) + rendered[m.group("name")] + "\n" + m.group(4), readme)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md differs from the JSON")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    current = args.readme.read_text()
    try:
        wanted = regenerate(current, args.results)
    except ResultsError as error:
        print(f"readme_tables: error: {error}", file=sys.stderr)
        return 1
    if wanted == current:
        print("readme_tables: README.md matches bench/results/*.json", file=sys.stderr)
        return 0
    if args.check:
        diff = difflib.unified_diff(
            current.splitlines(), wanted.splitlines(), "README.md", "from bench/results", lineterm=""
        )
        print("\n".join(diff), file=sys.stderr)
        print("readme_tables: README.md differs from the JSON: run python bench/readme_tables.py", file=sys.stderr)
        return 1
    args.readme.write_text(wanted)
    print(f"readme_tables: rewrote {args.readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
