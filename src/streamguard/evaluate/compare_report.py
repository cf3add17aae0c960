"""Markdown report of ``streamguard compare`` (compare.json holds every number)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from streamguard.evaluate.report import md_cell  # names reach report.md as evaluate's do: HTML-escaped, | escaped


def _f(x: Any, nd: int = 4) -> str:
    if x is None:
        return "n/a"
    return f"{x:+.{nd}f}" if isinstance(x, float) and nd < 0 else f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def _p(d: dict) -> str:
    p = d.get("p_value")
    return "n/a" + (f" ({d['note']})" if d.get("note") else "") if p is None else f"{p:.3g}"


def _row(name: str, m: dict) -> str:
    b = m["bootstrap"]
    ci = b["ci"]
    mc = m.get("mcnemar_majority_vote")
    return (f"| {md_cell(name)} | {m['a_mean']:.4f} | {m['b_mean']:.4f} | {b['difference']:+.4f} | "
            f"[{_f(ci[0])}, {_f(ci[1])}] | {_p(b)} | {_p(m['seeds']['t_test'])} | {_p(m['seeds']['wilcoxon'])} | "
            f"{_p(mc) if mc else '-'} | {_f(m['effect_size_dz'], 2)} |")


def write_markdown(path: Path, res: dict[str, Any]) -> None:
    a, b = md_cell(res["a"]["name"]), md_cell(res["b"]["name"])
    lines = [f"# {a} vs {b}", "", f"**{md_cell(res['verdict']['summary'])}**", "",
             f"Seeds: {a} {sorted(res['a']['runs'])}, {b} {sorted(res['b']['runs'])}; {res['bootstrap']} paired "
             "bootstrap resamples over items. Difference = B - A of the seed means; CI and first p from the paired "
             "bootstrap; t-test and Wilcoxon over seeds; McNemar on the seed-majority vote; d_z = mean / sd of the "
             "per-seed differences (n/a when they do not vary).", ""]
    head = ("| metric | A | B | B - A | 95% CI | p (bootstrap) | p (t, seeds) | p (Wilcoxon) | p (McNemar) | d_z |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    for name, s in res["sets"].items():
        lines += [f"## {md_cell(name)} ({s['n_items']} items)", "", head]
        lines += [_row(m, v) for m, v in s["metrics"].items()]
        if "pair_accuracy" in s:
            lines.append(_row(f"pair accuracy ({s['pair_accuracy']['n_pairs']} pairs)", s["pair_accuracy"]))
        for key in ("by_source", "by_project"):
            if key in s:
                lines += ["", f"{md_cell(name)} {key.replace('_', ' ')} (seed means; CI of B - A):", "",
                          "| group | n | vulnerable | acc A | acc B | acc CI | AUC A | AUC B | AUC CI |",
                          "|---|---|---|---|---|---|---|---|---|"]
                for g, v in s[key].items():
                    acc, auc = v["accuracy"], v["roc_auc"]
                    lines.append(f"| {md_cell(g)} | {v['n']} | {v['vulnerable_share']:.2f} | {acc['a_mean']:.3f} | "
                                 f"{acc['b_mean']:.3f} | [{_f(acc['ci'][0], 3)}, {_f(acc['ci'][1], 3)}] | "
                                 f"{auc['a_mean']:.3f} | {auc['b_mean']:.3f} | "
                                 f"[{_f(auc['ci'][0], 3)}, {_f(auc['ci'][1], 3)}] |")
        lines.append("")
    lab = res["labels"]
    lines += ["## Label balance", "", f"Rule: {lab['rule']}.", "", "| set | items | vulnerable share |",
              "|---|---|---|"]
    lines += [f"| {md_cell(n)} | {v['all']['count']} | {v['all']['vulnerable_share']} |"
              for n, v in lab["balance"].items()]
    lines += ["", "Flagged shifts: " + (", ".join(md_cell(f) for f in lab["flagged"]) or "none"), ""]
    path.write_text("\n".join(lines) + "\n")
