"""`data by-project`: train/valid of one project, test of the other; compatible with the parent's models."""
from __future__ import annotations

import json
from pathlib import Path

from streamguard.cli import main
from streamguard.features.processed import ProcessedDir


def _projects(path: Path) -> list[str]:
    return [json.loads(line)["metadata"]["project"] for line in path.read_text().splitlines()]


def test_split_keeps_one_project_per_side_and_counts_everything(processed_small: Path, tmp_path: Path) -> None:
    out = tmp_path / "xp"
    assert main(["data", "by-project", "--data", str(processed_small), "--train-project", "FFmpeg",
                 "--test-project", "qemu", "--out", str(out)]) == 0
    assert set(_projects(out / "train.jsonl")) == set(_projects(out / "valid.jsonl")) == {"FFmpeg"}
    assert set(_projects(out / "test.jsonl")) == {"qemu"}
    record = json.loads((out / "SUBSET.json").read_text())
    for split in ("train", "valid", "test"):
        c = record["counts"][split]
        assert c["read"] == len(_projects(processed_small / f"{split}.jsonl"))
        assert c["kept"] + c["left_out_other_projects"] == c["read"] and c["kept"] > 0
    assert ProcessedDir(out).identity() == ProcessedDir(processed_small).identity()  # the parent's models fit it


def test_unknown_or_equal_projects_are_one_line_errors_and_write_nothing(processed_small: Path, tmp_path: Path,
                                                                          capsys) -> None:
    for train, test in (("ffmpeg", "qemu"), ("qemu", "qemu")):
        out = tmp_path / f"{train}-{test}"
        assert main(["data", "by-project", "--data", str(processed_small), "--train-project", train,
                     "--test-project", test, "--out", str(out)]) == 2
        assert not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no function of project 'ffmpeg' (projects: FFmpeg, qemu)" in err[0]
