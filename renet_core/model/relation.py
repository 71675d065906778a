"""The AU relation graph of section 3.3 and Eq. 5.

``pearson_relation`` computes the edge weights w_{c,k} (Pearson correlation of the training
labels, Fig. 2); ``RelationGraph`` holds them and turns per-AU parameters into their
relation-weighted averages (Eq. 5).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
from torch import nn

DENOMINATORS = ("abs", "signed")
RELATION_MODES = ("fixed", "learnable", "none")


def pearson_relation(labels, min_pairs: int = 2) -> np.ndarray:
    """Return the C x C Pearson correlation matrix of AU labels (section 3.3, Fig. 2).

    ``labels`` is ``[N, C]`` (array or DataFrame); NaN marks an unknown label and is dropped
    pairwise (each pair of AUs uses the frames where both are known). The diagonal is 1, as
    Eq. 5 requires (w_cc = 1). A pair that has no defined correlation (a constant column, or
    fewer than ``min_pairs`` frames known for both) gets 0 and a warning, never NaN.
    """
    if not isinstance(labels, pd.DataFrame):
        array = np.asarray(labels, dtype=float)
        if array.ndim != 2:
            raise ValueError(f"labels must be a 2-D [N, C] array, got shape {array.shape}")
        labels = pd.DataFrame(array)
    frame = labels
    if frame.shape[1] == 0:
        raise ValueError("labels must have at least one AU column")
    frame = frame.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = frame.corr(method="pearson", min_periods=min_pairs).to_numpy(dtype=float)
    undefined = ~np.isfinite(corr)
    np.fill_diagonal(undefined, False)
    if undefined.any():
        names = [str(c) for c in frame.columns]
        pairs = sorted({tuple(sorted((names[i], names[j]))) for i, j in zip(*np.nonzero(undefined))})
        warnings.warn(
            f"Pearson correlation undefined for {len(pairs)} AU pair(s) (constant labels or too few "
            f"frames known for both): {pairs[:6]}{' ...' if len(pairs) > 6 else ''}; using 0",
            RuntimeWarning,
            stacklevel=2,
        )
    corr = np.where(np.isfinite(corr), corr, 0.0)
    np.fill_diagonal(corr, 1.0)
    return np.clip(corr, -1.0, 1.0)


class RelationGraph(nn.Module):
    """Edge weights w_{c,k} of the AU graph and the Eq. 5 weighted average.

    ``mode``:
      * ``"fixed"``: the given matrix (e.g. training-label PCC), not trained (the paper's RE-Net);
      * ``"learnable"``: off-diagonal weights randomly initialised (uniform in [-1, 1]) and trained
        with the network (Table 7, "Ours+learnable"); the diagonal stays 1 as Eq. 5 defines it;
      * ``"none"``: the identity graph, so each AU uses only its own gamma and beta (Eq. 3 alone).

    ``denominator`` (see docs/reproduction-notes.md): ``"signed"`` divides by sum_k w_ck exactly as
    Eq. 5 is printed, so each row of weights sums to 1 (an affine average: AUs with identical
    parameters keep them); a fixed graph whose row sum is <= 0 is refused. ``"abs"`` divides by
    sum_k |w_ck|, which equals the printed form when all weights are non-negative and stays
    well defined whatever the signs (the default for learnable graphs, whose random weights can
    drive the signed sum through zero).
    """

    def __init__(self, num_aus: int, matrix=None, mode: str = "fixed", denominator: str = "signed",
                 generator: torch.Generator | None = None):
        super().__init__()
        if mode not in RELATION_MODES:
            raise ValueError(f"relation mode must be one of {RELATION_MODES}, got {mode!r}")
        if denominator not in DENOMINATORS:
            raise ValueError(f"denominator must be one of {DENOMINATORS}, got {denominator!r}")
        self.num_aus, self.mode, self.denominator = int(num_aus), mode, denominator
        eye = torch.eye(self.num_aus)
        if mode == "fixed":
            if matrix is None:
                raise ValueError(
                    "relation_mode='fixed' needs a relation matrix, e.g. "
                    "renet_core.model.pearson_relation(training_labels)")
            weights = self._check_matrix(matrix)
            self.register_buffer("weight", weights)
        elif mode == "learnable":
            init = torch.rand(self.num_aus, self.num_aus, generator=generator) * 2 - 1
            self.weight = nn.Parameter(init * (1 - eye) + eye)
        else:
            self.register_buffer("weight", eye.clone())
        self.register_buffer("_eye", eye, persistent=False)
        if mode == "fixed" and denominator == "signed":
            bad = self.raw_denominator() <= 1e-6
            if bad.any():
                raise ValueError(
                    "Eq. 5 with the signed denominator is not a weighted average here: sum_k w_ck <= 0 "
                    f"for AU row(s) {torch.nonzero(bad).flatten().tolist()} (negative correlations "
                    "outweigh w_cc = 1); use denominator='abs'")

    def _check_matrix(self, matrix) -> torch.Tensor:
        weights = torch.as_tensor(np.asarray(matrix, dtype=np.float32))
        if weights.shape != (self.num_aus, self.num_aus):
            raise ValueError(f"relation matrix must be {self.num_aus}x{self.num_aus}, got {tuple(weights.shape)}")
        if not torch.isfinite(weights).all():
            raise ValueError("relation matrix contains NaN or inf")
        return weights.clone()

    def edge_weights(self) -> torch.Tensor:
        """w with the diagonal set to 1 (Eq. 5: w_cc = 1)."""
        return self.weight * (1 - self._eye) + self._eye

    def raw_denominator(self) -> torch.Tensor:
        w = self.edge_weights()
        return w.abs().sum(1) if self.denominator == "abs" else w.sum(1)

    def mixing_matrix(self) -> torch.Tensor:
        """Row-normalised weights M with M[c, k] = w_ck / sum_k w_ck (Eq. 5)."""
        return self.edge_weights() / self.raw_denominator().unsqueeze(1)

    def mix(self, per_au: torch.Tensor) -> torch.Tensor:
        """Eq. 5: ``per_au`` is ``[C, F]`` (gamma_k or beta_k); returns gamma^G ``[C, F]``."""
        if self.mode == "none":
            return per_au
        return self.mixing_matrix().to(per_au.dtype) @ per_au
