#!/usr/bin/env python3
"""Project tasks. Standard library only; needs Python >= 3.11 with venv and pip.

    python3 tasks.py app  [ARGS...]     set up .venv with .[app]; serve the dashboards with voila
    python3 tasks.py test [-- ARGS...]  set up .venv with .[app,test] and torch's CPU build;
                                        ruff, pytest, no-JIT pass
    python3 tasks.py bench [ARGS...]    set up .venv with .[test]; run benchmarks/run.py

Works from any current directory. The virtual environment lives in <repo>/.venv; an
install is skipped when the stamp file .venv/.lowentropy-<extra>-<hash of pyproject.toml>
exists (delete it, or the whole .venv, to force a reinstall).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
PYPROJECT = ROOT / "pyproject.toml"


#: The PyTorch build the test command installs (its CPU build: the PyTorch loader's tests
#: need it; pip's configured sources provide it, as in CI).
TORCH_REQUIREMENT = "torch==2.13.0"

APP_DIR = ROOT / "app"
MAIN_DASHBOARD = "layer_explorer.ipynb"


def free_port(start: int = 8866, tries: int = 50) -> int:
    """The first port from ``start`` on which 127.0.0.1 accepts a listener."""
    import socket

    for port in range(start, start + tries):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}..{start + tries - 1}")


def app_command(python: Path, port: int) -> list[str]:
    """The main job of `python3 tasks.py app`: voila serving app/ on 127.0.0.1 (run with
    app/ as the working directory, where voila.json is). Extra arguments are appended."""
    return [str(python), "-m", "voila", ".", "--no-browser", f"--port={port}",
            "--Voila.ip=127.0.0.1", "--ServerApp.port_retries=0"]


def app_env() -> dict[str, str]:
    """What the dashboards' kernels inherit besides this environment: typed paths may read
    the folder this command was started from (and below); one step of the library may
    allocate at most 1 GB (each unless already set)."""
    return {
        "LOWENTROPY_ALLOWED_DIRS": os.environ.get("LOWENTROPY_ALLOWED_DIRS") or os.getcwd(),
        "LOWENTROPY_MEMORY_BUDGET": os.environ.get("LOWENTROPY_MEMORY_BUDGET") or "1 GB",
    }


def run(cmd: Sequence[str | os.PathLike[str]], env: dict[str, str] | None = None,
        cwd: Path = ROOT) -> None:
    """Print a command, then run it (from the repo root by default); raise CalledProcessError
    on failure."""
    cmd = [os.fspath(c) for c in cmd]
    shown = shlex.join(cmd)
    if env:
        shown = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " " + shown
    print(f"$ {shown}", flush=True)
    full_env = {**os.environ, **env} if env else None
    subprocess.run(cmd, cwd=cwd, env=full_env, check=True)


def header(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def ensure_venv(extra: str) -> Path:
    """Create .venv if missing and `pip install -e .[extra]` unless already done for this
    pyproject.toml. Returns the venv's python."""
    if not VENV_PYTHON.exists():
        header(f"creating {VENV}")
        run([sys.executable, "-m", "venv", VENV])
    digest = hashlib.sha256(PYPROJECT.read_bytes()).hexdigest()[:16]
    stamp = VENV / f".lowentropy-{extra}-{digest}"
    if stamp.exists():
        print(f"[.venv already has .[{extra}] for this pyproject.toml; skipping pip install]")
        return VENV_PYTHON
    header(f"installing .[{extra}] into {VENV}")
    run([VENV_PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "-e", f".[{extra}]"])
    for old in VENV.glob(f".lowentropy-{extra}-*"):
        old.unlink()
    stamp.touch()
    return VENV_PYTHON


def ensure_torch(python: Path) -> None:
    """`pip install TORCH_REQUIREMENT` into .venv once (a stamp file remembers it)."""
    name = TORCH_REQUIREMENT.replace("==", "-").replace("/", "_")
    stamp = VENV / f".lowentropy-{name}"
    if stamp.exists():
        print(f"[.venv already has {TORCH_REQUIREMENT}; skipping pip install]")
        return
    header(f"installing {TORCH_REQUIREMENT} (CPU build) into {VENV}")
    run([python, "-m", "pip", "install", "--disable-pip-version-check", TORCH_REQUIREMENT])
    stamp.touch()


def forwarded(args: Sequence[str]) -> list[str]:
    """Arguments to pass on; a leading `--` separator is dropped."""
    args = list(args)
    return args[1:] if args[:1] == ["--"] else args


def sources_digest() -> str:
    """A digest of the library's and the dashboards' sources (names, sizes, mtimes)."""
    h = hashlib.sha256()
    for path in sorted([*ROOT.glob("lowentropy/**/*.py"), *APP_DIR.glob("dashboards/*.py")]):
        st = path.stat()
        h.update(f"{path.relative_to(ROOT)} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def warm_up(python: Path) -> None:
    """Compile the dashboards' kernels into numba's on-disk cache before the first page
    (``python -m dashboards.warmup`` in app/), once per change of the sources: on a fresh
    install about a minute, which every first page would otherwise pay."""
    stamp = VENV / f".lowentropy-warm-{sources_digest()}"
    if stamp.exists():
        print("[numba cache already warm for these sources; skipping the warm-up]")
        return
    header("warming numba's cache for the dashboards (once per change of the sources)")
    run([python, "-m", "dashboards.warmup"], cwd=APP_DIR, env=app_env())
    for old in VENV.glob(".lowentropy-warm-*"):
        old.unlink()
    stamp.touch()


def cmd_app(args: Sequence[str]) -> int:
    python = ensure_venv("app")
    warm_up(python)
    port = free_port()
    header("serving the dashboards (Ctrl-C stops)")
    print(f"\n    open  http://127.0.0.1:{port}/voila/render/{MAIN_DASHBOARD}\n"
          f"    (all dashboards: http://127.0.0.1:{port}/)\n", flush=True)
    try:
        run([*app_command(python, port), *forwarded(args)], cwd=APP_DIR, env=app_env())
    except KeyboardInterrupt:
        print("stopped", flush=True)
    return 0


def cmd_test(args: Sequence[str]) -> int:
    python = ensure_venv("app,test")
    ensure_torch(python)
    steps: list[tuple[str, list[str], dict[str, str] | None]] = [
        ("ruff check", [str(python), "-m", "ruff", "check", "."], None),
        ("pytest", [str(python), "-m", "pytest", *forwarded(args)], None),
        (
            "pytest -m nojit with NUMBA_DISABLE_JIT=1",
            [str(python), "-m", "pytest", "-m", "nojit", "-p", "no:cacheprovider", "-q"],
            {"NUMBA_DISABLE_JIT": "1"},
        ),
    ]
    failed = []
    for i, (name, cmd, env) in enumerate(steps, 1):
        header(f"[{i}/{len(steps)}] {name}")
        try:
            run(cmd, env=env)
        except subprocess.CalledProcessError as exc:
            print(f"!! {name} failed (exit status {exc.returncode})", flush=True)
            failed.append(name)
    print()
    if failed:
        print(f"FAILED: {', '.join(failed)}", flush=True)
        return 1
    print("all test steps passed", flush=True)
    return 0


def cmd_bench(args: Sequence[str]) -> int:
    python = ensure_venv("test")
    script = ROOT / "benchmarks" / "run.py"
    if not script.exists():
        print(f"error: {script.relative_to(ROOT)} does not exist (yet)", file=sys.stderr)
        return 2
    header("benchmarks")
    run([python, script, *forwarded(args)])
    return 0


COMMANDS = {"app": cmd_app, "test": cmd_test, "bench": cmd_bench}


def main(argv: Sequence[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may be run by any python3
        print("error: Python >= 3.11 is required", file=sys.stderr)
        return 2
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    try:
        return COMMANDS[argv[0]](argv[1:])
    except subprocess.CalledProcessError as exc:
        print(f"!! command failed with exit status {exc.returncode}", file=sys.stderr)
        return exc.returncode or 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
