"""Label monitoring: balance per project/source and flagged shifts, on real rows."""
import json
from pathlib import Path

from processed_fixture import make_processed

from streamguard.data.labels import label_shift, monitor
from streamguard.evaluate.label_section import label_markdown, label_monitoring

FIX = Path(__file__).parent / "fixtures" / "collected"


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_a_real_shift_is_flagged_and_no_shift_is_not():
    devign = _rows(Path(__file__).parents[1] / "data/sample/train.jsonl")
    chrome = [{"target": 0, "project": "chrome"}] * 160 + [{"target": 1, "project": "chrome"}] * 40  # ReVeal's ~19%
    shift = label_shift(devign, chrome, "devign -> chrome")
    assert shift["flagged"] and shift["difference"] < -0.2 and shift["p_value"] < 1e-6
    same = label_shift(devign[:800], devign[800:])
    assert not same["flagged"]
    small = label_shift(devign[:5], chrome[:5])  # a big difference on 5 items is not significant
    assert not small["flagged"]


def test_monitor_reports_balance_per_project_and_source():
    rows = [{**r, "source": "devign"} for r in _rows(FIX / "devign_base/train.jsonl")]
    res = monitor({"train": rows, "test": [{**r, "source": "devign"} for r in _rows(FIX / "devign_base/test.jsonl")]},
                  "train")
    b = res["balance"]["train"]
    assert b["all"]["count"] == len(rows) and set(b["by_project"]) <= {"FFmpeg", "qemu"}
    assert b["by_source"]["devign"]["count"] == len(rows)
    assert any(s["what"].startswith("train -> test") for s in res["shifts"])


def test_evaluation_label_section_from_a_processed_dir(tmp_path):
    data = make_processed(tmp_path)
    labels = label_monitoring(data)
    assert set(labels["balance"]) == {"train", "valid", "test"}
    assert labels["balance"]["train"]["by_project"]
    text = "\n".join(label_markdown(labels))
    assert "## Label balance" in text and "Flagged shifts" in text
