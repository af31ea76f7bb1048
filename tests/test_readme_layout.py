"""The README's "Layout" section is a true map of the tree: it names every room, and every path it names exists.

The rule (what "every room" means):
- every folder at the top of the repository (bench/, docs/, pwa/, tests/, tools/, ...; not dot folders);
- in each Python package at the top (sync_server/, tejas_ml/, tejas_cli/): every file and folder directly in it
  (__init__.py, __main__.py and caches aside): a package's modules and sub-packages, not what they hold;
- in the app: every .js file and folder directly in pwa/ and directly in pwa/features/ (one folder per feature);
- in the stdlib core (pwa/py/tejas/, flat): every module, the schemas/ folder and every shared table in it;
- every file directly in tools/ (the developer scripts and the exporter's script).
A room counts as named when the Layout names it or something inside it (naming sync_server/jobs/runner.py
names sync_server/jobs/). Generated rooms (git-ignored: pwa/vendor/) may be named; they need not be.

How the section is read: its code block is a list of entries. An entry line starts with a path, indented by
at most 8 spaces, followed by two spaces or the line's end (`pwa/`, `  features/` inside it); the deeper-indented
lines after it continue it. An indented entry lies inside the entry above it with less indentation. A path is
a token of lower-case letters, digits and _ . - / that contains a / or ends in a file extension (so prose says
"push and pull", not "push/pull"); {a,b} expands as in a shell (`workers/{embed,train}.js`). A path is read
against its entry's folder, then each folder above it, then the repository root; the first that exists is what
it names. One that exists nowhere (and is not a generated, git-ignored path) fails the test.
"""

from __future__ import annotations

import itertools
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTENSIONS = (".py", ".js", ".mjs", ".json", ".md", ".sh", ".toml", ".html", ".css", ".webmanifest", ".txt", ".mako")
PACKAGES = ("sync_server", "tejas_ml", "tejas_cli")
NOT_ROOMS = {"__init__.py", "__main__.py", "__pycache__"}
TOKEN = re.compile(r"(?<![\w/.*-])[a-z0-9_.{](?:[a-z0-9_.\-/]|\{[a-z0-9_.\-/,]*\})*(?![\w*])")
ENTRY = re.compile(r"^( {0,8})(\S+)(?: {2,}|$)")


def layout_block(readme: str) -> str:
    """The code block of the README's "## Layout" section."""
    section = re.search(r"^## Layout\n(.*?)(?=^## |\Z)", readme, re.S | re.M)
    assert section, 'README.md has no "## Layout" section'
    block = re.search(r"^```[^\n]*\n(.*?)^```", section.group(1), re.S | re.M)
    assert block, "the Layout section has no code block"
    return block.group(1)


def expand(token: str) -> list[str]:
    """`a/{b,c}.js` -> [a/b.js, a/c.js]."""
    parts = re.split(r"\{([^{}]*)\}", token)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(combo) for combo in itertools.product(*choices)]


def paths_in(line: str) -> list[str]:
    out = []
    for token in TOKEN.findall(line):
        token = token.rstrip(".,")
        if "/" in token or token.endswith(EXTENSIONS):
            out.extend(expand(token))
    return out


def _ignored(path: str, root: Path) -> bool:
    result = subprocess.run(
        ["git", "check-ignore", "-q", "--no-index", path], cwd=root, capture_output=True, check=False
    )
    return result.returncode == 0


def named_paths(block: str, root: Path) -> tuple[set[str], list[str]]:
    """(repository-relative paths the block names, the paths it names that exist nowhere)."""
    named, missing = set(), []
    entries: list[tuple[int, Path]] = []  # the entries that hold the current line: (indentation, folder)
    base = Path()
    for line in block.splitlines():
        if not line.strip():
            continue
        found = paths_in(line)
        entry = ENTRY.match(line)
        if entry and found and entry.group(2).startswith(found[0].rstrip("/").split("/")[0]):
            indent = len(entry.group(1))
            entries = [(i, folder) for i, folder in entries if i < indent]
            path = (entries[-1][1] if entries else Path()) / found[0].rstrip("/")
            base = path if (root / path).is_dir() else path.parent
            entries.append((indent, base))
        for path in found:
            clean = path.rstrip("/")
            candidates = [folder / clean for folder in (base, *base.parents)]
            hit = next((c for c in candidates if (root / c).exists()), None)
            if hit is None:
                hit = next((c for c in candidates if _ignored(c.as_posix(), root)), None)
                if hit is None:
                    missing.append(f"{path} (on the line {line.strip()!r})")
                    continue
            named.add(hit.as_posix())
    return named, missing


def tracked(root: Path) -> list[str]:
    return subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()


def rooms(files: list[str]) -> set[str]:
    """What the Layout must name (the rule in the module's docstring), from the tracked files."""
    out = set()
    for f in files:
        parts = f.split("/")
        if len(parts) > 1 and not parts[0].startswith("."):
            out.add(parts[0])
        if parts[0] in PACKAGES and len(parts) > 1 and parts[1] not in NOT_ROOMS:
            out.add("/".join(parts[:2]))
        if parts[0] == "pwa" and len(parts) > 1 and (len(parts) > 2 or f.endswith(".js")):
            out.add("/".join(parts[:2]))
        if parts[:2] == ["pwa", "features"] and len(parts) > 2 and (len(parts) > 3 or f.endswith(".js")):
            out.add("/".join(parts[:3]))
        if parts[:3] == ["pwa", "py", "tejas"] and len(parts) > 3 and parts[3] not in NOT_ROOMS:
            out.add("/".join(parts[:4]))
            if parts[3] == "schemas":
                out.add(f)
        if parts[0] == "tools" and len(parts) == 2:
            out.add(f)
    return out


def unnamed(required: set[str], named: set[str]) -> list[str]:
    return sorted(r for r in required if not any(n == r or n.startswith(r + "/") for n in named))


def layout_problems(readme: str, root: Path, files: list[str]) -> list[str]:
    named, missing = named_paths(layout_block(readme), root)
    return [f"names a path that does not exist: {m}" for m in missing] + [
        f"does not name {r}" for r in unnamed(rooms(files), named)
    ]


def test_the_readme_layout_names_every_room_and_only_paths_that_exist():
    problems = layout_problems((ROOT / "README.md").read_text(encoding="utf-8"), ROOT, tracked(ROOT))
    assert not problems, "README.md Layout:\n" + "\n".join(problems)


def test_the_check_finds_an_unnamed_room_and_a_path_that_does_not_exist(tmp_path):
    files = ["pwa/app.js", "pwa/features/train/engine.js", "pwa/features/rules.js", "sync_server/main.py",
             "sync_server/jobs/runner.py", "sync_server/jobs/state.py", "sync_server/__init__.py", "tools/dev.sh",
             "docs/sync.md"]  # fmt: skip
    for f in files:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("")
    readme = (
        "# X\n\n## Layout\n\n```\n"
        "pwa/            app.js, features/{train,gone}/ (COOP/COEP, torch/ONNX)\n"
        "  features/     rules.js\n"
        "sync_server/    main.py (push and pull, docs/sync.md)\n"
        "  jobs/         runner.py, state.py\n"
        "                main.py, app.js\n"
        "```\n\n## Next\n"
    )
    assert sorted(layout_problems(readme, tmp_path, files)) == [
        "does not name tools",
        "does not name tools/dev.sh",
        "names a path that does not exist: app.js (on the line 'main.py, app.js')",
        "names a path that does not exist: features/gone/ (on the line "
        "'pwa/            app.js, features/{train,gone}/ (COOP/COEP, torch/ONNX)')",
    ]
    fixed = (
        readme.replace("{train,gone}", "train")
        .replace(", app.js\n", "\n")
        .replace("```\n\n", "tools/  dev.sh\n```\n\n")
    )
    assert layout_problems(fixed, tmp_path, files) == []
