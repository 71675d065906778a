"""RE-Net (Yang & Yin, ACCV 2020): a ResNet-18 whose BatchNorm layers are conditioned on the AU.

* :class:`AUBatchNorm2d` is Eq. 3-5: per-AU running statistics (mu_c, sigma_c^2), per-AU scale and
  bias (gamma_c, beta_c), and the scale and bias actually applied being their relation-weighted
  averages gamma_c^G, beta_c^G over all AUs (:class:`renet_core.relation.RelationGraph`).
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
import json
import math
import os
from pathlib import Path
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

from renet_core.io import torch_save_atomic
from renet_core.relation import RelationGraph

TASKS = {"occurrence": 1, "intensity": 6}
KINDS = ("renet", "resnet18")
HEADS = ("shared", "per_au")
TEST_STATISTICS = ("running", "batch")
CHECKPOINT_FORMAT = "renet-checkpoint"
FEATURE_DIM = 512

ALL_AUS = "all"


class AUBatchNorm2d(nn.Module):
    """AU-conditioned batch normalisation, Eq. 3-5.

    BN(x, c, G) = gamma_c^G * (x - mu_c) / sqrt(sigma_c^2 + eps) + beta_c^G, with
    gamma_c^G = sum_k w_ck gamma_k / sum_k w_ck (Eq. 5; same for beta).

    ``relation`` is the network's :class:`RelationGraph`, shared by every layer (not registered
    here; its owner registers it once), or None: the identity graph, Eq. 3 alone.

    Which AU the layer is conditioned on is set by the owning network through ``active_au``: an
    AU index (input ``[B, F, H, W]`` of that AU) or :data:`ALL_AUS` (input ``[C*B, F, H, W]``, the C
    AUs' copies stacked AU-major). ``test_statistics="running"`` (default) normalises with each
    AU's running statistics in eval mode; ``"batch"`` uses the test batch's own statistics.

    Running statistics are updated only when an AU is trained, so with one AU per batch each AU
    gets ~1/C of the updates. ``warm_start_statistics=True`` (default) makes AU c's first updates
    an exact average of its batches so far (momentum max(momentum, 1/(n_c + 1)) after n_c
    updates), so the initial 0/1 statistics do not linger in short runs; after 1/momentum updates
    it is the usual exponential average. ImageNet-initialised statistics are blended as usual
    (:func:`load_imagenet_backbone` marks them as already tracked). See docs/reproduction-notes.md.

    As ``torch.nn.BatchNorm2d``: ``momentum=None`` makes the running statistics a cumulative
    average of every batch since :meth:`reset_running_stats`, so re-estimating them is the loop of
    ``torch.optim.swa_utils.update_bn`` (``renet_core.train.refresh_statistics``).
    """

    def __init__(self, num_features: int, num_aus: int, relation: RelationGraph | None = None,
                 eps: float = 1e-5, momentum: float | None = 0.1, test_statistics: str = "running",
                 warm_start_statistics: bool = True):
        super().__init__()
        if test_statistics not in TEST_STATISTICS:
            raise ValueError(f"test_statistics must be one of {TEST_STATISTICS}, got {test_statistics!r}")
        self.num_features, self.num_aus = int(num_features), int(num_aus)
        self.eps, self.momentum, self.test_statistics = eps, momentum, test_statistics
        self.weight = nn.Parameter(torch.ones(num_aus, num_features))   # gamma_k
        self.bias = nn.Parameter(torch.zeros(num_aus, num_features))    # beta_k
        self.register_buffer("running_mean", torch.zeros(num_aus, num_features))
        self.register_buffer("running_var", torch.ones(num_aus, num_features))
        self.warm_start_statistics = bool(warm_start_statistics)
        self.register_buffer("au_batches_tracked", torch.zeros(num_aus, dtype=torch.long))
        if relation is None:
            self.relation = RelationGraph(num_aus, mode="none")      # Eq. 3 alone, owned here
        elif isinstance(relation, RelationGraph):
            if relation.num_aus != self.num_aus:
                raise ValueError(f"relation graph has {relation.num_aus} AUs, layer has {num_aus}")
            object.__setattr__(self, "_shared_graph", relation)   # owner registers it
        else:
            raise TypeError(f"relation must be a renet_core.relation.RelationGraph or None, got "
                            f"{type(relation).__name__}")
        self.active_au: int | str | None = None

    @property
    def graph(self) -> RelationGraph:
        return self.__dict__.get("_shared_graph") or self.relation

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(gamma^G, beta^G), each ``[C, F]``: Eq. 5 applied to every AU."""
        return self.graph.mix(self.weight), self.graph.mix(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        au = self.active_au
        if au is None:
            raise RuntimeError("AUBatchNorm2d needs an AU: call the owning network as model(x, au=k) or model(x)")
        # Eq. 5 in the statistics' precision: under autocast the mix is a bf16/fp16 matmul, and
        # batch_norm refuses low-precision affine parameters beside float32 running statistics
        gamma, beta = (t.to(self.running_mean.dtype) for t in self.affine())
        use_batch_stats = self.training or self.test_statistics == "batch"
        if au != ALL_AUS:
            keep_running = self.training
            momentum = self.momentum
            if keep_running:
                momentum = float(self._momenta()[au])
                self.au_batches_tracked[au] += 1
            return F.batch_norm(
                x,
                self.running_mean[au] if keep_running or not use_batch_stats else None,
                self.running_var[au] if keep_running or not use_batch_stats else None,
                gamma[au], beta[au], use_batch_stats, momentum, self.eps)
        return self._forward_all(x, gamma, beta, use_batch_stats)

    def _forward_all(self, x, gamma, beta, use_batch_stats):
        """All AUs at once: x is ``[C*B, F, H, W]``, slice c normalised as AU c."""
        num, feat = self.num_aus, x.shape[1]
        if x.shape[0] % num:
            raise ValueError(f"all-AU input batch {x.shape[0]} is not a multiple of the {num} AUs")
        per_au = x.shape[0] // num
        if use_batch_stats:
            var, mean = torch.var_mean(x.view(num, per_au, feat, *x.shape[2:]), dim=(1, 3, 4), correction=0)
            if self.training:
                self._update_running(mean, var, per_au * x.shape[2] * x.shape[3])
        else:
            mean, var = self.running_mean, self.running_var
        scale = gamma * torch.rsqrt(var + self.eps)
        shift = beta - mean * scale
        scale = scale.repeat_interleave(per_au, dim=0)[:, :, None, None]
        shift = shift.repeat_interleave(per_au, dim=0)[:, :, None, None]
        return torch.addcmul(shift.to(x.dtype), x, scale.to(x.dtype))

    def reset_running_stats(self) -> None:
        """Every AU's statistics back to mean 0, variance 1, no batch seen (as BatchNorm2d)."""
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.au_batches_tracked.zero_()

    @torch.no_grad()
    def transfer_statistics(self, unseen: Sequence[int], trained: Sequence[int], weights: torch.Tensor) -> None:
        """Give AUs never run in training statistics: ``weights`` [U, T] (rows summing to 1)
        average the trained AUs' running mean and variance (Table 6, :meth:`RENet.derive_unseen_aus`)."""
        weights = weights.to(self.running_mean.dtype)
        self.running_mean[list(unseen)] = weights @ self.running_mean[list(trained)]
        self.running_var[list(unseen)] = weights @ self.running_var[list(trained)]

    def _momenta(self) -> torch.Tensor:
        """Per-AU update weight of the running statistics: ``[C]`` (``momentum=None``: the
        cumulative average 1 / (n_c + 1))."""
        cumulative = 1.0 / (self.au_batches_tracked.float() + 1.0)
        if self.momentum is None:
            return cumulative
        base = torch.full(self.au_batches_tracked.shape, self.momentum, dtype=torch.float32,
                          device=self.au_batches_tracked.device)
        if not self.warm_start_statistics:
            return base
        return torch.maximum(base, cumulative)

    @torch.no_grad()
    def _update_running(self, mean, var, count):
        unbiased = var * (count / max(count - 1, 1))
        weight = self._momenta().unsqueeze(1)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), weight.to(self.running_mean.dtype))
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), weight.to(self.running_var.dtype))
        self.au_batches_tracked += 1

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before the counter existed: treat their statistics as converged
        key = prefix + "au_batches_tracked"
        if key not in state_dict and prefix + "running_mean" in state_dict:
            state_dict[key] = torch.full((self.num_aus,), 10_000, dtype=torch.long)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"{self.num_features}, num_aus={self.num_aus}, eps={self.eps}, momentum={self.momentum}"


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
        net, batch = self.backbone, x.shape[0]
        x = net.conv1(x)
        if au is None and not self.training and self.all_au_layout(x) == "loop":
            return torch.stack([self._from_stem(x, k) for k in range(self.num_aus)], dim=1)
        if au is None:
            x = x.repeat(self.num_aus, 1, 1, 1)
            mode = ALL_AUS
        else:
            mode = self.au_index(au)
        with self._conditioned(mode):
            x = net.maxpool(net.relu(net.bn1(x)))
            x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
            x = torch.flatten(net.avgpool(x), 1)
        if au is None:
            x = x.view(self.num_aus, batch, -1).transpose(0, 1)
        return x

    def _from_stem(self, x: torch.Tensor, k: int) -> torch.Tensor:
        net = self.backbone
        with self._conditioned(k):
            x = net.maxpool(net.relu(net.bn1(x)))
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
    (loaded with ``weights_only=True``), or ``"imagenet"`` to download torchvision's ImageNet
    weights (the user's opt-in; never used by the tests). With pretrained weights every AU's
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
        load_imagenet_backbone(model, _pretrained_state_dict(pretrained))
    return model


def _pretrained_state_dict(pretrained) -> dict:
    if str(pretrained).lower() == "imagenet":
        from torchvision.models import ResNet18_Weights
        try:
            return ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
        except Exception as exc:   # offline, proxy, disk full ...
            raise RuntimeError(
                f"could not get torchvision's ImageNet ResNet-18 weights ({exc}); on a machine "
                "without internet give a local torchvision resnet18 state_dict (pretrained=PATH, "
                "CLI --set pretrained=PATH) or train from scratch (pretrained=None, --set pretrained=null)"
            ) from exc
    path = Path(pretrained)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"could not read pretrained weights from {path}: expected a torchvision "
                         f"resnet18 state_dict saved with torch.save ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or "conv1.weight" not in state:
        raise ValueError(f"{path} does not hold a torchvision resnet18 state_dict (no 'conv1.weight')")
    return state


@torch.no_grad()
def load_imagenet_backbone(model: _AUModel, state: dict) -> None:
    """Copy a torchvision ResNet-18 state_dict into ``model.backbone`` (the classifier ``fc`` is
    dropped). For RE-Net, each BN's weight, bias and running statistics are copied to every AU."""
    target = model.backbone.state_dict()
    missing = []
    for name, value in target.items():
        if name.endswith("au_batches_tracked"):
            value.fill_(10_000)   # pretrained statistics: blend by the usual momentum, no warm start
            continue
        if name not in state:
            missing.append(name)
            continue
        source = state[name]
        if value.shape == source.shape:
            value.copy_(source)
        elif value.dim() == 2 and source.dim() == 1 and value.shape[1] == source.shape[0]:
            value.copy_(source.unsqueeze(0).expand_as(value))   # one row per AU
        else:
            raise ValueError(f"pretrained tensor {name} has shape {tuple(source.shape)}, "
                             f"model expects {tuple(value.shape)}")
    if missing:
        raise ValueError(f"pretrained state_dict lacks {len(missing)} backbone tensors, e.g. {missing[:3]}")


# --------------------------------------------------------------------------- checkpoints

def _plain(config):
    """Config as JSON-safe primitives, so that ``weights_only=True`` loading accepts it."""
    if config is None:
        return None
    if hasattr(config, "__dataclass_fields__"):
        import dataclasses
        config = dataclasses.asdict(config)
    return json.loads(json.dumps(config, default=str))


def save_checkpoint(path, model: _AUModel, config=None, **extra) -> Path:
    """Write weights, AU list, task, relation matrix, model options and config atomically.

    ``extra`` (optimizer state, epoch, RNG state, ...) must consist of tensors, numbers,
    strings, lists and dicts, since :func:`load_checkpoint` uses ``weights_only=True``.
    """
    model = getattr(model, "module", model)   # unwrap DDP
    payload = {
        "format": CHECKPOINT_FORMAT,
        "kind": model.kind,
        "aus": list(model.aus),
        "task": model.task,
        "options": dict(model.options),
        "relation": model.relation.edge_weights().detach().cpu() if model.kind == "renet" else None,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": _plain(config),
    }
    clash = set(extra) & set(payload)
    if clash:
        raise ValueError(f"extra checkpoint keys clash with reserved ones: {sorted(clash)}")
    payload.update(extra)
    return torch_save_atomic(payload, path)


def read_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint payload (``weights_only=True``), with clear errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"checkpoint {path} is unreadable (truncated or corrupt?): {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a renet_core checkpoint (expected a dict with "
                         f"format={CHECKPOINT_FORMAT!r})")
    return payload


#: Settings that decide what a checkpoint's model is; :func:`load_checkpoint` compares them.
MODEL_SETTINGS = ("model", "task", "aus", "relation_mode", "head")


def checkpoint_settings(payload: dict) -> dict:
    """What the checkpoint's model is: ``model`` (kind), ``task``, ``aus``, and for RE-Net its
    ``relation_mode`` and ``head``; from the model description, else the config it carries (older
    checkpoints lack some options), else the defaults of the time."""
    options = dict(payload.get("options") or {})
    config = payload.get("config") if isinstance(payload.get("config"), dict) else {}
    out = {"model": payload["kind"], "task": payload["task"], "aus": [int(a) for a in payload["aus"]]}
    if payload["kind"] == "renet":
        for key, default in (("relation_mode", "fixed"), ("head", "shared")):
            out[key] = options.get(key) or config.get(key) or default
    return out


def load_checkpoint(path, aus: Sequence[int] | None = None, map_location="cpu", expect: dict | None = None):
    """Rebuild the model stored in ``path``; returns ``(model, payload)``.

    ``aus``, when given, must equal the checkpoint's AU list (order included): a model trained
    for other AUs would silently answer for the wrong ones. ``expect`` (keys of
    :data:`MODEL_SETTINGS`, e.g. from an ExperimentConfig) must match the checkpoint's own settings
    (:func:`checkpoint_settings`); every difference is named (relation_mode and head only count
    for RE-Net).
    """
    payload = read_checkpoint(path, map_location)
    if expect:
        have = checkpoint_settings(payload)
        want = {k: ([int(a) for a in v] if k == "aus" else v) for k, v in expect.items()
                if k in MODEL_SETTINGS and v is not None}
        if have["model"] != "renet" or want.get("model", have["model"]) != "renet":
            want.pop("relation_mode", None)
            want.pop("head", None)
        diff = [k for k in MODEL_SETTINGS if k in want and want[k] != have.get(k)]
        if diff:
            def show(values):
                return ", ".join(f"{k}={values.get(k)}" for k in diff)
            sets = " ".join(f"--set {k}={json.dumps(have[k], separators=(',', ':')) if k == 'aus' else have[k]}"
                            for k in diff if k in have)
            raise ValueError(f"checkpoint {path} is {show(have)}, config says {show(want)}: it is not "
                             f"the model this config describes. Evaluate it with a config that matches "
                             f"(CLI: {sets}) or give the checkpoint of this config's own run")
    if aus is not None and [int(a) for a in aus] != payload["aus"]:
        raise ValueError(f"checkpoint {path} was trained for AUs {payload['aus']}, "
                         f"but AUs {list(aus)} were requested")
    options = dict(payload.get("options") or {})
    model = build_model(payload["kind"], payload["aus"], payload["task"],
                        relation=payload.get("relation"), **options)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"checkpoint {path} does not match the model it describes: {exc}") from exc
    return model.to(map_location) if map_location is not None else model, payload
