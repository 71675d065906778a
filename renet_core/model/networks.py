"""RE-Net (Yang & Yin, ACCV 2020): a ResNet-18 whose BatchNorm layers are conditioned on the AU.

* :class:`AUBatchNorm2d` is Eq. 3-5: per-AU running statistics (mu_c, sigma_c^2), per-AU scale and
  bias (gamma_c, beta_c), and the scale and bias actually applied being their relation-weighted
  averages gamma_c^G, beta_c^G over all AUs (:class:`renet_core.model.relation.RelationGraph`).
* :class:`RENet` composes torchvision's ResNet-18 with that normalisation through its
  ``norm_layer`` factory. ``model(x, au=k)`` runs the network conditioned on AU k (the paper's
  training strategy 2); ``model(x)`` evaluates all C conditioned copies in one batched pass (the
  copies stacked along the batch dimension, AU-major, each BN normalising its own AU's slice).
* :class:`ResNet18Baseline` is the paper's baseline: plain BatchNorm, one pass, one output per AU.

Choices where the paper is ambiguous are documented in docs/reproduction-notes.md.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

from renet_core.model.norm import ALL_AUS, AUBatchNorm2d
from renet_core.model.pretrained import load_imagenet_backbone, pretrained_state_dict
from renet_core.model.relation import RelationGraph

TASKS = {"occurrence": 1, "intensity": 6}
KINDS = ("renet", "resnet18")
HEADS = ("shared", "per_au")
FEATURE_DIM = 512


class AUHead(nn.Module):
    """Output layer. ``shared=True``: one linear layer used for every AU (section 3.1 counts only
    gamma_c and beta_c as AU-specific, so the output layer belongs to the shared parameters);
    ``shared=False``: a weight vector per AU (the baseline's ``fc``). ``levels`` is 1 for
    occurrence (a logit) or 6 for intensity (section 4.5)."""

    def __init__(self, in_features: int, num_aus: int, levels: int = 1, shared: bool = False):
        super().__init__()
        self.num_aus, self.levels, self.shared = num_aus, levels, shared
        rows = 1 if shared else num_aus
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(rows, levels, in_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(rows, levels).uniform_(-bound, bound))

    def forward(self, feats: torch.Tensor, au: int | None) -> torch.Tensor:
        if au is None:   # feats [B, C, F] -> [B, C, L]
            weight = self.weight.expand(self.num_aus, -1, -1)
            bias = self.bias.expand(self.num_aus, -1)
            out = torch.einsum("bcf,clf->bcl", feats, weight) + bias
        else:            # feats [B, F] -> [B, L]
            row = 0 if self.shared else au
            out = F.linear(feats, self.weight[row], self.bias[row])
        return out.squeeze(-1) if self.levels == 1 else out


class _AUModel(nn.Module):
    """What RE-Net and the baseline share: AU bookkeeping and the output convention."""

    kind = ""

    def __init__(self, aus: Sequence[int], task: str):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {tuple(TASKS)}, got {task!r}")
        aus = [int(a) for a in aus]
        if not aus or len(set(aus)) != len(aus):
            raise ValueError(f"aus must be a non-empty list of distinct AU numbers, got {aus}")
        self.aus, self.task, self.levels = aus, task, TASKS[task]

    @property
    def num_aus(self) -> int:
        return len(self.aus)

    def au_index(self, au: int) -> int:
        index = int(au)
        if not 0 <= index < self.num_aus:
            raise IndexError(f"au={au} is not an index into the model's {self.num_aus} AUs {self.aus}")
        return index

    def forward(self, x: torch.Tensor, au: int | None = None) -> torch.Tensor:
        """Logits: ``[B]``/``[B, 6]`` for ``au=k``; ``[B, C]``/``[B, C, 6]`` for all AUs."""
        raise NotImplementedError


class RENet(_AUModel):
    """RE-Net: torchvision's ResNet-18 with every BatchNorm replaced by :class:`AUBatchNorm2d`
    sharing one :class:`RelationGraph` (section 4.3)."""

    kind = "renet"

    def __init__(self, aus: Sequence[int], task: str = "occurrence", relation=None,
                 relation_mode: str = "fixed", denominator: str | None = None, head: str = "shared",
                 test_statistics: str = "running", seed: int | None = None, bn_momentum: float = 0.1,
                 bn_warm_start: bool = True):
        super().__init__(aus, task)
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if not 0 < float(bn_momentum) <= 1:
            raise ValueError(f"bn_momentum must be in (0, 1], got {bn_momentum!r}")
        denominator = denominator or ("abs" if relation_mode == "learnable" else "signed")
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.relation = RelationGraph(self.num_aus, relation, relation_mode, denominator, generator)
        self.options = {"relation_mode": relation_mode, "denominator": denominator, "head": head,
                        "test_statistics": test_statistics, "bn_momentum": float(bn_momentum),
                        "bn_warm_start": bool(bn_warm_start)}
        norm = functools.partial(AUBatchNorm2d, num_aus=self.num_aus, relation=self.relation,
                                 test_statistics=test_statistics, momentum=float(bn_momentum),
                                 warm_start_statistics=bool(bn_warm_start))
        self.backbone = resnet18(norm_layer=norm)
        self.backbone.fc = nn.Identity()
        self.head = AUHead(FEATURE_DIM, self.num_aus, self.levels, shared=head == "shared")
        self._norms = [m for m in self.backbone.modules() if isinstance(m, AUBatchNorm2d)]

    @contextlib.contextmanager
    def _conditioned(self, au):
        for norm in self._norms:
            norm.active_au = au
        try:
            yield
        finally:
            for norm in self._norms:
                norm.active_au = None

    def features(self, x: torch.Tensor, au: int | None = None) -> torch.Tensor:
        """Pooled features: ``[B, 512]`` conditioned on AU ``au``, or ``[B, C, 512]`` for all AUs.
        All AUs are computed in one batched pass (the C copies stacked) or, in eval mode where
        :meth:`all_au_layout` says it is faster, as a loop of C conditioned passes; either way the
        stem convolution, which precedes any BN, is computed once."""
        batch = x.shape[0]
        stem = self.backbone.conv1(x)
        if au is not None:
            return self._trunk(stem, self.au_index(au))
        if not self.training and self.all_au_layout(stem) == "loop":
            return torch.stack([self._trunk(stem, k) for k in range(self.num_aus)], dim=1)
        out = self._trunk(stem.repeat(self.num_aus, 1, 1, 1), ALL_AUS)
        return out.view(self.num_aus, batch, -1).transpose(0, 1)

    def _trunk(self, stem: torch.Tensor, au: int | str) -> torch.Tensor:
        """ResNet-18 after the stem convolution, every BN conditioned on ``au`` (an AU index, or
        :data:`ALL_AUS` for the C copies stacked AU-major); pooled features ``[N, 512]``."""
        net = self.backbone
        with self._conditioned(au):
            x = net.maxpool(net.relu(net.bn1(stem)))
            x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
            return torch.flatten(net.avgpool(x), 1)

    #: "auto" (:meth:`all_au_layout` decides), "batched" or "loop": how eval runs all AUs.
    layout: str = "auto"
    #: CPU only: the batched pass is faster while the C stacked copies hold at most this many
    #: input pixels, the loop above it. Measured on 2 CPU cores (ms/image, 12 AUs, batched / loop):
    #: 48 px batch 32: 26 / 32; 48 px batch 16: 32 / 31; 224 px batch 1: 460 / 606; 224 px
    #: batch 16: 638 / 381 (``python -m renet_core.bench model``; docs/reproduction-notes.md).
    CPU_BATCHED_MAX_PIXELS = 3_000_000

    def all_au_layout(self, stem: torch.Tensor) -> str:
        """"batched" or "loop" for an all-AU eval pass on ``stem`` (the stem convolution's output,
        half the input's side): ``self.layout`` unless "auto"; auto is batched on accelerators,
        and on the CPU batched while C x batch x input pixels <= :attr:`CPU_BATCHED_MAX_PIXELS`."""
        if self.layout != "auto":
            return self.layout
        if stem.device.type != "cpu":
            return "batched"
        stacked = self.num_aus * stem.shape[0] * stem.shape[2] * stem.shape[3] * 4
        return "batched" if stacked <= self.CPU_BATCHED_MAX_PIXELS else "loop"

    def forward(self, x: torch.Tensor, au: int | None = None) -> torch.Tensor:
        index = None if au is None else self.au_index(au)
        return self.head(self.features(x, index), index)

    def classify(self, feats: torch.Tensor) -> torch.Tensor:
        """All AUs' outputs from :meth:`features` ``[B, C, 512]`` (``forward(x) ==
        classify(features(x))``), so one pass gives both (test predictions and Fig. 3)."""
        return self.head(feats, None)

    def au_specific_parameters(self) -> list[nn.Parameter]:
        """theta_c of section 3.1: every BN layer's per-AU scale and bias (gamma_k, beta_k), and
        the output layer when it is per AU (``head="per_au"``). With one AU per batch each of
        these rows is trained in ~1/C of the steps; ``ExperimentConfig.au_lr_scale`` gives them
        their own learning rate (docs/reproduction-notes.md, "Training dynamics")."""
        params = [p for norm in self._norms for p in (norm.weight, norm.bias)]
        if not self.head.shared:
            params += [self.head.weight, self.head.bias]
        return params

    @torch.no_grad()
    def derive_unseen_aus(self, indices: Iterable[int], stats_rule: str = "positive") -> None:
        """Prepare AUs whose labels were never seen in training (section 4.6, Table 6).

        Their scale and bias come from Eq. 4-5 in the forward pass as for any AU (the relation row
        of an unseen AU mixes the trained AUs' gamma_k, beta_k). What training never produced is
        their BN statistics, which are only updated when an AU is run: they are set to the
        average of the trained AUs' statistics weighted by max(w_uk, 0) (``stats_rule="positive"``,
        falling back to the plain mean where a row has no positive weight to a trained AU), or by
        the plain mean (``"uniform"``). With a per-AU output layer the unseen AU's output weights
        are derived by the same Eq. 5 average over trained AUs.
        """
        unseen = sorted({self.au_index(i) for i in indices})
        trained = [k for k in range(self.num_aus) if k not in unseen]
        if not unseen:
            return
        if not trained:
            raise ValueError("every AU is marked unseen: nothing to transfer from")
        if stats_rule not in ("positive", "uniform"):
            raise ValueError(f"stats_rule must be 'positive' or 'uniform', got {stats_rule!r}")
        weights = self.relation.edge_weights()[unseen][:, trained].clamp(min=0)
        if stats_rule == "uniform":
            weights = torch.ones_like(weights)
        empty = weights.sum(1) <= 0
        weights[empty] = 1.0
        weights = weights / weights.sum(1, keepdim=True)
        for norm in self._norms:
            norm.transfer_statistics(unseen, trained, weights)
        if not self.head.shared:
            mix = self.relation.mixing_matrix()[unseen][:, trained]
            mix = mix / mix.sum(1, keepdim=True).where(mix.sum(1, keepdim=True).abs() > 1e-6,
                                                      torch.ones_like(mix[:, :1]))
            self.head.weight[unseen] = torch.einsum("ut,tlf->ulf", mix, self.head.weight[trained])
            self.head.bias[unseen] = mix @ self.head.bias[trained]


class ResNet18Baseline(_AUModel):
    """The paper's baseline (Tables 1-8, "ResNet18"): torchvision ResNet-18 with plain BatchNorm,
    one pass for all AUs and one output per AU (6 levels per AU for intensity)."""

    kind = "resnet18"

    def __init__(self, aus: Sequence[int], task: str = "occurrence"):
        super().__init__(aus, task)
        self.options = {}
        self.backbone = resnet18()
        self.backbone.fc = nn.Identity()
        self.head = AUHead(FEATURE_DIM, self.num_aus, self.levels, shared=False)

    def au_specific_parameters(self) -> list[nn.Parameter]:
        """The baseline shares its whole backbone; only its output rows are per AU, and every one
        is trained at every step, so none needs a learning rate of its own."""
        return []

    def features(self, x: torch.Tensor, au: int | None = None) -> torch.Tensor:
        """Pooled features ``[B, 512]``: one representation for every AU (Fig. 3)."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor, au: int | None = None) -> torch.Tensor:
        out = self.classify(self.features(x))
        return out if au is None else out[:, self.au_index(au)]

    def classify(self, feats: torch.Tensor) -> torch.Tensor:
        """All AUs' outputs from :meth:`features` ``[B, 512]``."""
        return self.head(feats.unsqueeze(1).expand(-1, self.num_aus, -1), None)


def build_model(kind: str, aus: Sequence[int], task: str = "occurrence", relation=None,
                relation_mode: str = "fixed", pretrained: str | os.PathLike | None = None,
                denominator: str | None = None, head: str = "shared",
                test_statistics: str = "running", seed: int | None = None, bn_momentum: float = 0.1,
                bn_warm_start: bool = True) -> _AUModel:
    """Build RE-Net (``kind="renet"``) or the ResNet-18 baseline (``kind="resnet18"``).

    ``relation``: the C x C PCC matrix for ``relation_mode="fixed"`` (Eq. 5); ignored by the
    baseline. ``pretrained``: None (random init), a path to a torchvision ResNet-18 state_dict
    (loaded with ``weights_only=True``), such a state_dict itself, or ``"imagenet"`` to download
    torchvision's ImageNet weights (the user's opt-in; never used by the tests). With pretrained weights every AU's
    gamma, beta and statistics start from the pretrained BN's values. ``bn_momentum`` and
    ``bn_warm_start`` set RE-Net's per-AU running statistics (:class:`AUBatchNorm2d`).
    """
    if kind == "renet":
        model = RENet(aus, task, relation, relation_mode, denominator, head, test_statistics, seed,
                      bn_momentum, bn_warm_start)
    elif kind == "resnet18":
        model = ResNet18Baseline(aus, task)
    else:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if pretrained is not None:
        load_imagenet_backbone(model, pretrained_state_dict(pretrained))
    return model
