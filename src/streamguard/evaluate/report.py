"""report.md and report.html from the evaluation's numbers. Every string that reaches the HTML is escaped:
function code and run names come from users' data."""
from __future__ import annotations

import html
from typing import Any

from streamguard.evaluate.label_section import label_markdown
from streamguard.rundir import METRICS_FILE

Table = tuple[list[str], list[list[str]]]
CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:24px auto;padding:0 16px;color:#222}
.wrap{overflow-x:auto}table{border-collapse:collapse;margin:8px 0 20px;font-size:12.5px;
font-variant-numeric:tabular-nums}
th,td{border:1px solid #ccc;padding:4px 7px;text-align:left;white-space:pre;vertical-align:top}
th{background:#f0f3f7}
tr.ref td{color:#777;font-style:italic}img{max-width:100%;border:1px solid #eee;margin:6px 0}
pre{background:#f7f7f7;border:1px solid #ddd;padding:8px;overflow-x:auto;font-size:12px;max-height:420px}
.note{color:#555;font-size:13px}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}"""

CAL_NOTE = ("Expected calibration error (15 equal-width bins) and Brier score on test, raw and after a calibration "
            "fitted on each model's valid scores (first seed); bundles apply temperature scaling, which keeps the "
            "ranking and the verdicts.")


def _f(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _ci(m: dict[str, Any]) -> str:
    lo, hi = m.get("ci") or (None, None)
    # cells may hold line breaks: HTML shows them, markdown turns them into spaces
    return _f(m["value"]) if lo is None else f"{_f(m['value'])}\n[{_f(lo)}, {_f(hi)}]"


def _p(v: float | None) -> str:
    return "n/a" if v is None else (f"{v:.2e}" if v < 1e-3 else f"{v:.3f}")


def _thresholds(values: list[float]) -> str:
    if len(values) == 1:
        return _f(values[0])
    return f"{_f(sum(values) / len(values))}\n(mean of {len(values)})"


def main_table(res: dict[str, Any]) -> tuple[Table, list[int]]:
    """Measured rows, then published reference rows (their indices returned so HTML can style them)."""
    head = ["entry", "kind", "seeds", "threshold", "accuracy\n[95% CI]", "precision", "recall", "F1\n[95% CI]",
            "ROC-AUC\n[95% CI]", "PR-AUC", "FNR at\nFPR<=0.5%", "accuracy\n@default", "F1\n@default"]
    rows = []
    for name, r in res["entries"].items():
        t, d = r["test_at_valid_threshold"], r["test_at_default"]
        thr = (f"level >= {r['level']}" if r["kind"] == "peer"
               else "-" if r["kind"] == "trivial" else _thresholds(r["thresholds"]))
        seeds = ", ".join(str(s) for s in r["seeds"] if s is not None) or "-"
        rows.append([name, r["kind"], seeds, thr, _ci(t["accuracy"]), _f(t["precision"]["value"]),
                     _f(t["recall"]["value"]), _ci(t["f1"]), _ci(t["roc_auc"]), _f(t["pr_auc"]["value"]),
                     _f(t["fnr_at_fpr"]["value"]), _f(d["accuracy"]["value"]), _f(d["f1"]["value"])])
    ref = []
    for p in res["published"]:
        ref.append(len(rows))
        rows.append([p["name"], p["note"].replace(", ", ",\n"), "-", "-", _f(p["accuracy"], 4)] + ["-"] * 8)
    return (head, rows), ref


def paired_table(res: dict[str, Any]) -> Table:
    head = ["A", "B", "McNemar b / c", "p (Holm)", "run pairs p<0.05", "F1 A-B [95% CI]", "p (Holm)",
            "acc A-B [95% CI]", "p (Holm)"]
    rows = []
    for r in res["paired"]:
        mc, bf, ba = r["mcnemar"], r["bootstrap_f1"], r["bootstrap_accuracy"]
        signif = sum(run["p_value"] < 0.05 for run in mc["runs"])
        rows.append([r["a"], r["b"], f"{mc['b']} / {mc['c']}", f"{_p(mc['p_value'])} ({_p(mc['p_holm'])})",
                     f"{signif} of {len(mc['runs'])}",
                     _ci({"value": bf["difference"], "ci": bf["ci"]}), f"{_p(bf['p_value'])} ({_p(bf['p_holm'])})",
                     _ci({"value": ba["difference"], "ci": ba["ci"]}), f"{_p(ba['p_value'])} ({_p(ba['p_holm'])})"])
    return head, rows


def seed_table(res: dict[str, Any]) -> Table:
    head = ["A", "B", "metric", "seeds", "mean A-B", "paired t p", "Wilcoxon p", "note"]
    rows = []
    for r in res["across_seeds"]:
        for m in ("accuracy", "f1", "roc_auc"):
            s = r[m]
            notes = "; ".join(x for x in (s["t_test"].get("note"), s["wilcoxon"].get("note")) if x)
            rows.append([r["a"], r["b"], m, str(s["n"]), _f(s["mean_difference"]), _p(s["t_test"]["p_value"]),
                         _p(s["wilcoxon"]["p_value"]), notes])
    return head, rows


def project_table(res: dict[str, Any]) -> Table:
    head = ["project", "n", "vulnerable", "entry", "accuracy [95% CI]", "F1 [95% CI]", "ROC-AUC"]
    rows = []
    for proj, p in res["per_project"].items():
        for name, m in p["entries"].items():
            rows.append([proj, str(p["n"]), _f(p["vulnerable_share"]), name, _ci(m["accuracy"]), _ci(m["f1"]),
                         _f(m["roc_auc"]["value"])])
    return head, rows


def calibration_table(res: dict[str, Any]) -> Table:
    """ECE (15 bins) and Brier score on test of each model's raw scores and after either calibration fitted on
    its valid scores (evaluate/calibration.py)."""
    head = ["entry", "T", "ECE raw", "ECE\ntemperature", "ECE\nisotonic", "Brier raw", "Brier\ntemperature",
            "Brier\nisotonic"]
    rows = []
    for name, c in (res.get("calibration") or {}).items():
        t = c.get("test")
        if t:
            rows.append([name, _f(c["temperature"], 2)] + [_f(t[f"{m}_{k}"]) for m in ("ece", "brier")
                                                            for k in ("raw", "temperature", "isotonic")])
    return head, rows


def pair_table(res: dict[str, Any]) -> Table | None:
    """Before/after pairs and the fixed function's rank within its file (evaluate/pairs.py), when the data has them."""
    if not res.get("pairs"):
        return None
    head = ["entry", "pairs", "P-C", "P-V", "P-B", "P-R", "vulnerable\nscores higher", "files", "MRR\n(chance)",
            "recall@1\n(chance)", "recall@5\n(chance)"]
    rows = []
    for name, m in res["pairs"].items():
        p, r = m["pairs"], m["ranking"]
        rank = [f"{_f(r[k])}\n({_f(r['chance_' + k])})" for k in ("mrr", "recall_at_1", "recall_at_5")] \
            if r["n_files"] else ["-"] * 3
        rows.append([name, str(p["n_pairs"]), *([_f(p[k]) for k in ("p_c", "p_v", "p_b", "p_r", "vulnerable_higher")]
                                               if p["n_pairs"] else ["-"] * 5), str(r["n_files"]), *rank])
    return head, rows


PAIR_NOTE = ("P-C both right, P-V both called vulnerable, P-B both called safe, P-R reversed (threshold chosen on "
             "valid); rank of the fixed function among its file's functions, ties against it (docs/evaluation.md).")


def _md_table(table: Table) -> str:
    head, rows = table
    lines = ["| " + " | ".join(h.replace("\n", " ") for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def md_cell(text: str) -> str:
    """A run name or note inside report.md: many Markdown viewers render raw HTML, so it is escaped."""
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


def _html_table(table: Table, ref_rows: list[int] | None = None) -> str:
    head, rows = table
    out = ['<div class="wrap"><table><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for i, row in enumerate(rows):
        cls = ' class="ref"' if ref_rows and i in ref_rows else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    return "\n".join(out + ["</table></div>"])


def notes(res: dict[str, Any]) -> list[str]:
    s = res["settings"]
    thresholds = (f"Test items: {res['test_items']} (valid: {res['valid_items']}). Thresholds are chosen on valid "
                  f"to maximise {s['threshold_metric']} (per seed; peers: the finding level) and applied to test; "
                  "'@default' is 0.5 for models and 'any finding' for peers.")
    cis = (f"95% CIs: percentile bootstrap over test items, {s['bootstrap']} resamples, seed {s['seed']}; for "
           "several seeds the value is the seed mean and the CI is that of the seed mean.")
    family = (f"the pairs with the primary entry '{s['primary']}' (other pairs: n/a, unadjusted)"
              if s.get("primary") else "all pairs")
    tests = ("Paired tests share the resamples; McNemar's p is the largest over the compared run pairs; Holm "
             f"adjusts across {family}. Published rows are published, not measured (accuracy only).")
    return [thresholds, cis, tests]


def render_markdown(res: dict[str, Any]) -> str:
    main, _ = main_table(res)
    parts = ["# StreamGuard evaluation", "", *[f"- {n}" for n in notes(res)], "", "## Test results", "",
             _md_table(main), "", "## Paired tests on the same test items", "", _md_table(paired_table(res))]
    if res["across_seeds"]:
        parts += ["", "## Across seeds", "", _md_table(seed_table(res))]
    if calibration_table(res)[1]:
        parts += ["", "## Calibration (test)", "", CAL_NOTE, "", _md_table(calibration_table(res))]
    parts += ["", "## Per project", "", _md_table(project_table(res)), ""]
    if (pairs := pair_table(res)) is not None:
        parts += ["## Pairs and within-file ranking", "", PAIR_NOTE, "", _md_table(pairs), ""]
    parts += label_markdown(res.get("labels"))
    if res.get("warnings"):
        parts += ["## Warnings", "", *[f"- {md_cell(w)}" for w in res["warnings"]], ""]
    return "\n".join(parts)


def _examples_html(examples: dict[str, Any]) -> str:
    if not examples.get("items"):
        return f'<p class="note">{html.escape(examples.get("note", "No examples."))}</p>'
    out = [f'<p class="note">{html.escape(examples["note"])}</p>']
    for ex in examples["items"]:
        title = f"{ex['kind']}: {ex['id']} ({ex['project']}), label {ex['label']}, p(vulnerable) = {ex['prob']:.3f}"
        code = ex.get("code")
        body = html.escape(code) if code is not None else "(code not available: pass --data PROCESSED_DIR)"
        out.append(f"<h3>{html.escape(title)}</h3>\n<pre><code>{body}</code></pre>")
    return "\n".join(out)


def render_html(res: dict[str, Any], images: dict[str, str | None], examples: dict[str, Any]) -> str:
    main, ref = main_table(res)
    figs = {"roc_pr": "ROC and precision-recall curves", "confusion": "Confusion matrices (threshold chosen on "
            "valid)", "calibration": "Calibration: reliability diagram",
            "training": f"Training curves ({METRICS_FILE})"}
    body = ["<h1>StreamGuard evaluation</h1>", "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes(res))
            + "</ul>", "<h2>Test results</h2>", _html_table(main, ref)]
    for key, title in figs.items():
        if images.get(key):
            body.append(f'<h2>{html.escape(title)}</h2>\n<img alt="{key}" src="data:image/png;base64,'
                        f'{images[key]}">')
        if key == "calibration" and calibration_table(res)[1]:
            body += [f'<p class="note">{html.escape(CAL_NOTE)}</p>', _html_table(calibration_table(res))]
    body += ["<h2>Paired tests on the same test items</h2>", _html_table(paired_table(res))]
    if res["across_seeds"]:
        body += ["<h2>Across seeds</h2>", _html_table(seed_table(res))]
    body += ["<h2>Per project</h2>", _html_table(project_table(res))]
    if (pairs := pair_table(res)) is not None:
        body += ["<h2>Pairs and within-file ranking</h2>", f'<p class="note">{html.escape(PAIR_NOTE)}</p>',
                 _html_table(pairs)]
    body += ["<h2>Examples</h2>", _examples_html(examples)]
    if res.get("warnings"):
        body += ["<h2>Warnings</h2><ul>"] + [f"<li>{html.escape(w)}</li>" for w in res["warnings"]] + ["</ul>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>StreamGuard evaluation"
            f"</title><style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
