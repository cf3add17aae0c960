"""Label monitoring in the evaluation report: balance per split / project / source, flagged train->test shifts."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from streamguard.data.labels import monitor
from streamguard.data.records import SPLITS
from streamguard.features.processed import ProcessedDir
from streamguard.features.rawjoin import raw_fields


def label_monitoring(data_dir: Path) -> dict[str, Any]:
    """``labels.monitor`` over the processed splits of ``data_dir`` (source and project from the raw rows)."""
    named = {}
    for split in SPLITS:
        if (Path(data_dir) / f"{split}.jsonl").is_file():
            recs = ProcessedDir(data_dir).read_split(split, keep=("id", "label", "metadata"))
            extra = raw_fields(data_dir, split, recs)
            named[split] = [{"label": r["label"], **extra[r["id"]]} for r in recs]
    return monitor(named, "train")


def label_markdown(labels: dict[str, Any] | None) -> list[str]:
    if not labels:
        return []
    out = ["## Label balance", "", f"Shift rule: {labels['rule']}.", "", "| split | items | vulnerable share | "
           "largest projects (share) |", "|---|---|---|---|"]
    for split, b in labels["balance"].items():
        top = ", ".join(f"{k or '?'} {v['vulnerable_share']}" for k, v in list(b["by_project"].items())[:4])
        out.append(f"| {split} | {b['all']['count']} | {b['all']['vulnerable_share']} | {top} |")
    out += ["", "Flagged shifts: " + (", ".join(labels["flagged"]) or "none"), ""]
    return out
