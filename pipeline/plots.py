"""Training-curve figure of a pipeline comparison log (`pipeline.train.run_comparison`).

One function per panel, each taking the log and an explicit `ax`; no pyplot state (the figure is
a plain `matplotlib.figure.Figure`, written with the Agg canvas).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["plot_metric", "write_curves"]

_COLOURS = {"scratch": "tab:red", "conv": "tab:blue", "two-phase": "tab:green"}
_LABELS = {"scratch": "MHSA from scratch", "conv": "convolution only", "two-phase": "two-phase"}


def plot_metric(log: dict, ax: Axes, metric: str = "test_acc") -> Axes:
    """Return `ax` with `metric` per epoch for every arm: seed mean, band of ± one sample std."""
    for arm in log["arms"]:
        runs = [r for r in log["runs"] if r["arm"] == arm]
        if not runs:
            continue
        values = np.array([[h[metric] for h in r["history"]] for r in runs])  # (seeds, epochs)
        epochs = np.arange(1, values.shape[1] + 1)
        mean = values.mean(0)
        std = values.std(0, ddof=1) if len(runs) > 1 else np.zeros_like(mean)  # as summarise
        colour = _COLOURS.get(arm)
        label = _LABELS.get(arm, arm)
        if arm == "two-phase":
            label += f" (CMHSA-{log['vit_config']['kernel_size']})"
        ax.plot(epochs, mean, color=colour, label=f"{label}, n={len(runs)}")
        ax.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0)
    switch = log["train_config"]["phase1_epochs"]
    if "two-phase" in log["arms"] and 0 < switch < switch + log["train_config"]["phase2_epochs"]:
        ax.axvline(switch + 0.5, color="grey", linestyle="--", linewidth=1)
        ax.annotate(
            "transfer",
            (switch + 0.5, 0.02),
            xycoords=("data", "axes fraction"),
            color="grey",
            fontsize=8,
            ha="right",
            rotation=90,
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric.replace("_", " "))
    ax.grid(alpha=0.3)
    return ax


def write_curves(log: dict, path: str | Path) -> Figure:
    """Return the figure (test accuracy, training loss per epoch) after writing it to `path`."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    acc_ax, loss_ax = fig.subplots(1, 2)
    plot_metric(log, acc_ax, "test_acc")
    plot_metric(log, loss_ax, "train_loss")
    loss_ax.set_yscale("log")
    acc_ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(
        f"{log['dataset']}: {log['train_size']} training images, "
        f"mean ± std over seeds {log['seeds']}",
        fontsize=10,
    )
    fig.savefig(path, dpi=120)
    return fig
