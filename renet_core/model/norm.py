"""AU-conditioned batch normalisation (Eq. 3-5): the one layer RE-Net changes in ResNet-18."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from renet_core.model.relation import RelationGraph

TEST_STATISTICS = ("running", "batch")
#: ``active_au`` value of a pass that runs every AU at once (the copies stacked AU-major).
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
    ``torch.optim.swa_utils.update_bn`` (``renet_core.engine.evaluate.refresh_statistics``).
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
            raise TypeError(f"relation must be a renet_core.model.relation.RelationGraph or None, got "
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
