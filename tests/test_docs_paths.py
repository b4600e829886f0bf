"""Docs match the code: every repository path that a README or doc names (in `backticks` or a markdown link) exists.

Docs checked: README.md, every README.md below it, docs/**/*.md, profiling/*.md, firmware/**/*.md, apps/**/*.md.
A name counts as a path when it contains '/' or ends in a source/doc extension (fenced code blocks are commands,
not checked). It resolves against the doc's folder or any folder above it up to the repository root; a bare file
name or a path that does not start at a top-level folder (`core/od_port.h` in firmware/README.md) may also sit
anywhere below the doc's folder. `<placeholder>`, `*`, `…` and `NN_` are wildcards. Things that are not repository
paths are in ALLOW, each with its reason.
"""
from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
EXTENSIONS = (".py", ".c", ".h", ".md", ".toml", ".json", ".kt", ".kts", ".swift", ".sh", ".ld", ".mk", ".yml",
              ".yaml", ".txt", ".cc", ".html", ".tflite", ".pte", ".wav", ".npz", ".log")
# Never part of the repository: git, environments, caches, build output, and the git-ignored run folders at the root.
PRUNE_ANYWHERE = {".git", ".venv", ".pytest_cache", "build", "dist", "__pycache__", "node_modules"}
PRUNE_AT_ROOT = {"runs", "artifacts", "data", "out", "profile"}

ALLOW: list[tuple[str, str]] = [
    (r"/.*", "absolute paths name the host's or the phone's filesystem (/dev/ttyACM0, /sdcard/...), not the repo"),
    (r"\.venv/", "the virtualenv the setup script creates"),
    (r"(runs|OUT|DIR|folder)/.*", "output and data folders the user names on the command line"),
    (r"<(artifact|model)>.*|[\w-]+_(tflite|executorch|mcu|tflm|coreml|edgetpu)_int8\b.*",
     "artifacts `ondevice export` writes at run time (<model>_<target>_int8, .manifest.json beside them)"),
    (r"(profile|slim_report|verify_report|recipe|corpus)\.json|report\.html",
     "reports and run files written by profile / slim / verify / data at run time"),
    (r"model\.json|source\.tflite|od_model\.c|model\.mk|ops_resolver\.h|model_data\.cc/\.h|od_frontend_tables\.h",
     "files the exporters and the firmware build generate into their output folders"),
    (r"(<stem>\.)?labels\.txt|model\.py|kws_v2\.tflite|wav/.*\.wav",
     "the user's own files in examples (their model file, labels, recordings)"),
    (r"app/src/main/assets/", "git-ignored folder of the Android app where the user copies model files"),
    (r"quantization\.mode/source/method|ondevice-profile/1", "a manifest key path and a schema id, not files"),
]
_ALLOW_RX = [re.compile(p) for p, _ in ALLOW]

_FENCE = re.compile(r"^\s*```.*?^\s*```", re.S | re.M)
_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_NOT_A_PATH = re.compile(r"""[\s()=,"'$;{}|\\]|://|^[-#]|^mailto:|^\.[\w.]+$""")


def repo_paths(root: Path = ROOT) -> tuple[set[str], set[str]]:
    """(files, folders) of the working tree as posix paths relative to ``root``."""
    files, dirs = set(), set()
    for d, subdirs, names in os.walk(root):
        rel = PurePosixPath(Path(d).relative_to(root).as_posix())
        at_root = str(rel) == "."
        subdirs[:] = [s for s in subdirs if not s.startswith(".cache") and s not in PRUNE_ANYWHERE
                      and not (at_root and s in PRUNE_AT_ROOT)]
        prefix = "" if at_root else f"{rel}/"
        dirs.update(prefix + s for s in subdirs)
        files.update(prefix + n for n in names)
    return files, dirs


def doc_files(files: set[str]) -> list[str]:
    docs = {"README.md"} | {f for f in files if f.endswith("/README.md")}
    docs |= {f for f in files if f.endswith(".md") and f.split("/")[0] in ("docs", "firmware", "apps")}
    docs |= {f for f in files if re.fullmatch(r"profiling/[^/]+\.md", f)}
    return sorted(d for d in docs if d in files)


def named_paths(text: str) -> list[str]:
    """The path-like names in backticks and markdown links, outside fenced code blocks."""
    text = _FENCE.sub("", text)
    found = [m.group(1).strip() for m in _CODE.finditer(text)] + [m.group(1) for m in _LINK.finditer(text)]
    out = []
    for name in found:
        name = re.sub(r"(::.*|#.*|:\d+)$", "", name).rstrip(".,;:")
        if not name or _NOT_A_PATH.search(name):
            continue
        if "/" in name or name.endswith(EXTENSIONS):
            out.append(name)
    return out


def _pattern(name: str) -> re.Pattern:
    name = re.sub(r"<[^>]+>", "*", name.replace("…", "**"))
    name = re.sub(r"(?<![A-Za-z])N{2,}(?=_)", "*", name)
    rx = re.escape(name).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
    return re.compile(rx)


def _exists(name: str, doc: str, paths: set[str], dirs: set[str], tops: set[str]) -> bool:
    pool = dirs if name.endswith("/") else paths
    here = PurePosixPath(doc).parent
    bare = name.rstrip("/")
    # Relative to the doc's folder or any folder above it (firmware/bench/README.md may say `ports/common/...`).
    candidates = [os.path.normpath(str(d / bare)) for d in (here, *here.parents)]
    if any(c in pool for c in candidates):
        return True
    rxs = [_pattern(c) for c in candidates]
    if "/" not in bare or bare.split("/")[0] not in tops:
        # Named relative to a context inside the doc's folder (a table row, a section about one module).
        prefix = "" if str(here) == "." else f"{here}/"
        rxs.append(re.compile(re.escape(prefix) + "(?:.*/)?" + _pattern(bare).pattern))
    return any(rx.fullmatch(p) for rx in rxs for p in pool)


def missing_paths(root: Path = ROOT) -> list[str]:
    files, dirs = repo_paths(root)
    paths, tops = files | dirs, {d for d in dirs if "/" not in d}
    out = []
    for doc in doc_files(files):
        for name in named_paths((root / doc).read_text(encoding="utf-8")):
            if any(rx.fullmatch(name) for rx in _ALLOW_RX):
                continue
            if not _exists(name, doc, paths, dirs, tops):
                out.append(f"{doc}: {name}")
    return sorted(set(out), key=out.index)


def test_every_path_a_doc_names_exists():
    missing = missing_paths()
    assert not missing, ("paths named in docs that do not exist (fix the doc; allowlist only what is not a repo "
                         "path, with a reason, in tests/test_docs_paths.py ALLOW):\n" + "\n".join(missing))


def test_the_checker_catches_a_stale_path_and_reads_placeholders(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "sub" / "mod.py").write_text("")
    (tmp_path / "pkg" / "ports" / "board1").mkdir(parents=True)
    (tmp_path / "pkg" / "ports" / "board1" / "port.toml").write_text("")
    (tmp_path / "README.md").write_text(
        "Code in `pkg/sub/mod.py`, [link](pkg/sub/), `ports/<board>/port.toml`, `sub/mod.py`, `mod.py`.\n"
        "Gone: `pkg/old.py` and [gone](pkg/nothere/README.md); not paths: `--out x`, `a.b(c)`, `.tflite`,\n"
        "`https://example.com/a/b`, `/dev/ttyACM0`.\n```\nmake -C pkg/fenced/not/checked.c\n```\n")
    (tmp_path / "pkg" / "build").mkdir()
    (tmp_path / "pkg" / "build" / "out.c").write_text("")  # build output is not the repository
    (tmp_path / "pkg" / "README.md").write_text("Here: `sub/mod.py`, `ports/*/port.toml`, `../README.md`, "
                                                "`missing.c`, `build/out.c`.\n")
    assert missing_paths(tmp_path) == ["README.md: pkg/old.py", "README.md: pkg/nothere/README.md",
                                       "pkg/README.md: missing.c", "pkg/README.md: build/out.c"]
