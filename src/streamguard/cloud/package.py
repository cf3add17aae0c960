"""The project's source, packaged for a job: the container runs the very code the launcher ran.

The package is a directory (the SDK uploads it as the ``code`` channel, the job's working directory):
``src/streamguard``, ``pyproject.toml``, ``configs/``, a ``sg_entry.py`` that puts ``src`` first on the path
and calls the container entry point, and, for an image without the project's dependencies, a
``requirements.txt`` with the same pins as pyproject.toml. A tree with uncommitted changes is refused unless
asked for, so that the commit the job records is the code it runs.
"""
from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import streamguard
from streamguard.errors import UserError
from streamguard.provenance import git_state

ENTRY = "sg_entry.py"
ENTRY_TEXT = '''"""SageMaker entry script written by `streamguard cloud sagemaker train`: runs the packaged source."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))
from streamguard.cloud.container import main  # noqa: E402

sys.exit(main())
'''
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.tmp", ".graph_cache")


def project_root() -> Path:
    """The checkout (or unpacked source) the running streamguard package comes from."""
    return Path(streamguard.__file__).resolve().parents[2]


def packaged_state(root: Path) -> dict[str, object]:
    """The commit, and whether what gets packaged differs from it (untracked files under src/ count too)."""
    state = dict(git_state(root))
    if state["commit"]:
        try:
            changed = subprocess.run(["git", "status", "--porcelain", "--", "src", "pyproject.toml", "configs"],
                                     cwd=root, capture_output=True, text=True, check=True).stdout
            state["dirty"] = bool(changed.strip())
        except (OSError, subprocess.CalledProcessError):
            pass
    return state


def pinned_requirements(pyproject: Path, skip: tuple[str, ...] = ()) -> list[str]:
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [d for d in deps if not any(d.replace(" ", "").lower().startswith(s) for s in skip)]


def package_source(dest: Path, allow_dirty: bool = False, with_requirements: bool = False) -> dict[str, object]:
    """Write the job's source dir to ``dest``; return its git state (commit, dirty)."""
    root = project_root()
    state = packaged_state(root)
    if state["dirty"] and not allow_dirty:
        raise UserError(f"{root} has uncommitted changes; commit them (the job records the commit it runs) "
                        "or pass --allow-dirty")
    pkg = Path(streamguard.__file__).resolve().parent
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        raise UserError(f"cannot package the source: {pyproject} not found (run from a source checkout)")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(pkg, dest / "src" / "streamguard", ignore=IGNORE, dirs_exist_ok=True)
    shutil.copy2(pyproject, dest / "pyproject.toml")
    if (root / "configs").is_dir():  # the job's working directory: relative config paths (fusion's) resolve
        shutil.copytree(root / "configs", dest / "configs", ignore=IGNORE, dirs_exist_ok=True)
    (dest / ENTRY).write_text(ENTRY_TEXT)
    if with_requirements:
        # The default PyTorch image brings its own CUDA torch: installing the CPU-pinned one would replace it.
        reqs = pinned_requirements(pyproject, skip=("torch==",))
        (dest / "requirements.txt").write_text("\n".join(reqs) + "\n")
    return state
