"""The paper's figures, rebuilt: Fig. 2 (AU relation matrices) and Fig. 3 (t-SNE of features).

* Fig. 2 (section 3.3): "The relation matrix calculated by PCC on three datasets" -- one
  annotated heatmap per dataset, diverging colormap centred at 0 (positive and negative
  correlations, the absolute value their strength).
* Fig. 3 (section 4.6): "t-SNE embedding using deep features ... coloring each frame from testing
  images in terms of AU4, AU10, AU12 and AU24 (blue and green means the absent and occurrence of
  individual AU)" -- one row per model: RE-Net's per-AU features (a different feature for every
  AU) and ResNet-18's single feature (the same embedding in every panel, only the colours change).

Every figure is written as PNG atomically (``renet_core.base.io.atomic_path``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from renet_core.base.io import atomic_path
from renet_core.study.tables import TSNE_AUS

ABSENT_COLOUR, PRESENT_COLOUR = "tab:blue", "tab:green"


def pyplot():
    """matplotlib's pyplot, on the Agg backend unless MPLBACKEND or a notebook chose one
    (imported here, not at the top: plotting is heavy and most users of the study never plot)."""
    import matplotlib  # lazy: heavy, plotting only

    if not os.environ.get("MPLBACKEND") and "ipykernel" not in str(matplotlib.get_backend()).lower():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: heavy, plotting only

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Save a matplotlib figure as PNG atomically; return the path."""
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    return path


# -------------------------------------------------------------------------------------- Fig. 2

def relation_heatmap(matrix, aus: Sequence[int], title: str = "", ax=None, annotate: bool = True):
    """One PCC relation matrix as a seaborn heatmap (Fig. 2): AU labels on both axes, values
    annotated, diverging colormap centred at 0 over [-1, 1]."""
    import seaborn as sns  # lazy: heavy, plotting only

    plt = pyplot()
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape != (len(aus), len(aus)):
        raise ValueError(f"relation matrix has shape {matrix.shape}; expected {(len(aus), len(aus))} for AUs {list(aus)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(0.55 * len(aus) + 2, 0.5 * len(aus) + 1.5))
    labels = [f"AU{a}" for a in aus]
    sns.heatmap(matrix, ax=ax, cmap="RdBu_r", center=0.0, vmin=-1.0, vmax=1.0, square=True,
                annot=annotate, fmt=".2f", annot_kws={"fontsize": 6}, xticklabels=labels,
                yticklabels=labels, cbar_kws={"shrink": 0.7, "label": "PCC"})
    ax.set_title(title)
    ax.tick_params(labelsize=7)
    return ax


def relation_figure(matrices: Mapping[str, tuple[np.ndarray, Sequence[int]]], suptitle: str | None = None):
    """Fig. 2: one heatmap per dataset; ``matrices`` maps a panel title to ``(matrix, aus)``."""
    plt = pyplot()
    n = len(matrices)
    if n == 0:
        raise ValueError("relation_figure needs at least one relation matrix")
    widest = max(len(aus) for _, aus in matrices.values())
    fig, axes = plt.subplots(1, n, figsize=(n * (0.55 * widest + 2.5), 0.5 * widest + 2), squeeze=False)
    for ax, (title, (matrix, aus)) in zip(axes[0], matrices.items()):
        relation_heatmap(matrix, aus, title=title, ax=ax)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


# -------------------------------------------------------------------------------------- Fig. 3

def tsne_embedding(features, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE (ref. [43]) of ``features`` [n, d]; perplexity capped below n / 3 for small n."""
    from sklearn.manifold import TSNE  # lazy: heavy, Fig. 3 only

    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2 or len(x) < 5:
        raise ValueError(f"t-SNE needs features [n >= 5, d]; got shape {x.shape}")
    perplexity = float(min(perplexity, max(2.0, (len(x) - 1) / 3.0)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def tsne_panels(renet_features, resnet_features, labels, aus: Sequence[int],
                show_aus: Sequence[int] = tuple(TSNE_AUS), seed: int = 0, title: str | None = None):
    """Fig. 3: t-SNE panels, RE-Net (top row) vs ResNet-18 (bottom row), one column per AU in
    ``show_aus``, frames coloured by the AU's presence (unknown labels grey).

    ``renet_features`` [n, C, d] (``model.features(x)`` of RE-Net: one feature per AU, in the
    order of ``aus``), ``resnet_features`` [n, d], ``labels`` [n, C] occurrence labels (1/0/NaN).
    Returns the figure.
    """
    plt = pyplot()
    renet = np.asarray(renet_features, dtype=np.float32)
    resnet = np.asarray(resnet_features, dtype=np.float32)
    labels = np.asarray(labels, dtype=float)
    aus = [int(a) for a in aus]
    if renet.ndim != 3 or renet.shape[1] != len(aus):
        raise ValueError(f"RE-Net features must be [n, {len(aus)}, d]; got {renet.shape}")
    if resnet.ndim != 2 or len(resnet) != len(renet) or labels.shape != (len(renet), len(aus)):
        raise ValueError(f"expected ResNet-18 features [n, d] and labels [n, {len(aus)}] with n={len(renet)}; "
                         f"got {resnet.shape} and {labels.shape}")
    missing = [a for a in show_aus if a not in aus]
    if missing:
        raise ValueError(f"AUs {missing} are not among the features' AUs {aus}")
    baseline = tsne_embedding(resnet, seed=seed)  # one embedding shared by all of its panels
    fig, axes = plt.subplots(2, len(show_aus), figsize=(3.2 * len(show_aus), 6.4), squeeze=False)
    for col, au in enumerate(show_aus):
        k = aus.index(au)
        for row, (name, emb) in enumerate((("RE-Net", tsne_embedding(renet[:, k], seed=seed)),
                                           ("ResNet-18", baseline))):
            ax = axes[row][col]
            _scatter_presence(ax, emb, labels[:, k])
            ax.set_title(f"{name}: AU{au}", fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0][0].legend(loc="best", fontsize=7, markerscale=2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _scatter_presence(ax, embedding: np.ndarray, label: np.ndarray) -> None:
    groups = ((np.isnan(label), "lightgrey", "unknown"), (label == 0, ABSENT_COLOUR, "absent"),
              (label > 0, PRESENT_COLOUR, "present"))
    for mask, colour, name in groups:
        if mask.any():
            ax.scatter(embedding[mask, 0], embedding[mask, 1], s=6, c=colour, label=name, alpha=0.7, linewidths=0)


def feature_inputs(pred: dict) -> dict:
    """Fig. 3's inputs from the saved predictions of the two fold-1 runs (``{"renet": ...,
    "resnet18": ...}``): their features (float32), the frames' labels [n, C] and the AUs."""
    ours = pred["renet"]
    return {"renet": ours["features"].astype("float32"), "resnet18": pred["resnet18"]["features"].astype("float32"),
            "labels": ours["y_true"][ours["features_index"]], "aus": [int(a) for a in ours["aus"]]}
