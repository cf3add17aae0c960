"""The report's figures, drawn with matplotlib's Agg backend and returned as base64 PNG so that
report.html is one self-contained file."""
from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from streamguard.evaluate.entries import Entry, Items

CURVE_KEYS = (("train_loss", "val_loss"), ("val_accuracy",), ("val_f1_vulnerable",), ("val_roc_auc",))


def label(text: str) -> str:
    """A run or group name as plain text: an unescaped ``$`` would start matplotlib mathtext, and an unknown
    command in it (``a$\\undefinedcmd$b``) fails the whole figure."""
    return text.replace("$", r"\$")


def _png(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def roc_pr(entries: list[Entry], test: Items) -> str:
    """ROC and PR curves of every entry's first run (lowest seed) on test."""
    fig, (ax_roc, ax_pr) = plt.subplots(1, 2, figsize=(11, 4.6))
    y = test.label
    for e in entries:
        if e.kind == "trivial":
            continue
        fpr, tpr, _ = roc_curve(y, e.test[0])
        prec, rec, _ = precision_recall_curve(y, e.test[0])
        name = label(e.name if len(e.seeds) == 1 else f"{e.name} (seed {e.seeds[0]})")
        ax_roc.plot(fpr, tpr, label=name)
        ax_pr.step(rec, prec, where="post", label=name)
    ax_roc.plot([0, 1], [0, 1], ls=":", color="grey", label="chance")
    ax_pr.axhline(y.mean(), ls=":", color="grey", label=f"all vulnerable ({y.mean():.3f})")
    ax_roc.set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC (test)")
    ax_pr.set(xlabel="recall", ylabel="precision", title="Precision-recall (test)", ylim=(0, 1.02))
    for ax in (ax_roc, ax_pr):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right" if ax is ax_roc else "upper right")
    return _png(fig)


def confusion(entries: list[Entry], test: Items) -> str:
    """Confusion matrices at each entry's valid-chosen threshold (first run)."""
    n = len(entries)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    y = test.label.astype(bool)
    for ax, e in zip(axes.ravel(), entries):
        pred = e.test[0] >= e.thresholds[0]
        mat = np.array([[np.sum(~y & ~pred), np.sum(~y & pred)], [np.sum(y & ~pred), np.sum(y & pred)]])
        ax.imshow(mat, cmap="Blues", vmin=0, vmax=len(y))
        for (i, j), v in np.ndenumerate(mat):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > len(y) / 2 else "black")
        ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["safe", "vuln"], yticklabels=["safe", "vuln"],
               xlabel="predicted", ylabel="true", title=label(e.name[:28]))
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.tight_layout()
    return _png(fig)


def calibration(entries: list[Entry], valid: Items, test: Items) -> str | None:
    """Reliability diagram on test (15 equal-width bins): each model's raw scores, and the same after the
    calibration fitted on its valid scores (evaluate/calibration.py, the method bundles apply); peers' levels and
    the constant baseline have none."""
    from streamguard.evaluate import calibration as cal
    models = [e for e in entries if e.kind == "model"]
    if not models:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10.4, 4.6), sharey=True)
    for e in models:
        fitted = cal.fit(e.valid[0], valid.label)
        for ax, p in zip(axes, (e.test[0], fitted.apply(e.test[0]))):
            rel = cal.reliability(p, test.label)
            ax.plot(rel["mean_score"], rel["positive_share"], marker="o",
                    label=f"{label(e.name)} (ECE {cal.ece(p, test.label):.3f})")
    for ax, title in zip(axes, ("raw scores", f"calibrated on valid ({cal.DEFAULT_METHOD})")):
        ax.plot([0, 1], [0, 1], ls=":", color="grey", label="perfectly calibrated")
        ax.set(xlabel="mean predicted probability (bin)", title=f"Reliability, test: {title}", xlim=(0, 1),
               ylim=(0, 1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    axes[0].set_ylabel("share vulnerable")
    return _png(fig)


def training_curves(entries: list[Entry]) -> str | None:
    """metrics.csv of every run that has one: losses and the validation metrics per epoch."""
    runs = [(e.name, seed, c) for e in entries for seed, c in zip(e.seeds, e.curves) if c]
    if not runs:
        return None
    fig, axes = plt.subplots(1, len(CURVE_KEYS), figsize=(4 * len(CURVE_KEYS), 3.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, seed, rows) in enumerate(runs):
        # one colour per run in every panel; in the loss panel solid is train, dashed is validation
        style = {"color": colours[k % len(colours)], "marker": "."}
        for ax, keys in zip(axes, CURVE_KEYS):
            for key in keys:
                pts = [(r["epoch"], r[key]) for r in rows if "epoch" in r and key in r]
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, ls="--" if key == "val_loss" else "-", **style,
                            label=label(name if seed is None else f"{name} s{seed}") if key != "val_loss" else None)
    titles = ["loss (solid train, dashed valid)", "valid accuracy", "valid F1 (vulnerable)", "valid ROC-AUC"]
    for ax, title in zip(axes, titles):
        ax.set(xlabel="epoch", title=title)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8,
               bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    return _png(fig)
