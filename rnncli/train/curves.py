"""The learning curves of a run as a PNG: loss and accuracy per epoch, train and validation,
the best epoch marked; written into the run folder with its model.

    save_png(history, Path("artifacts/curves.png"), best_epoch=3)   # False without matplotlib
"""

from __future__ import annotations

from pathlib import Path

from rnncli.fsutil import atomic_path


def curves_figure(history: list[dict], best_epoch: int | None = None):
    """Loss and accuracy per epoch, train and validation, the best epoch marked; None when
    matplotlib is missing (it comes with the `[train]` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return None
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, ax in (("loss", ax1), ("accuracy", ax2)):
        ax.plot(epochs, [h[key] for h in history], "o-", label=f"train {key}")
        ax.plot(epochs, [h[f"val_{key}"] for h in history], "x-", label=f"validation {key}")
        if best_epoch in epochs:
            ax.axvline(best_epoch, color="grey", linestyle=":",
                       label=f"best epoch ({best_epoch})")
        # Epochs are whole: matplotlib's default ticks put 1.5 between two of them.
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.set_title(f"{key} per epoch")
        ax.legend()
    fig.tight_layout()
    return fig


def save_png(history: list[dict], path: Path, best_epoch: int | None = None) -> bool:
    """Write the curves to `path` (atomically); False when matplotlib is missing."""
    fig = curves_figure(history, best_epoch)
    if fig is None:
        return False
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)
    return True
