"""RE-Net model core: Eq. 3-5, the batched all-AU pass, section 4.6, init and checkpoints."""

import copy

import numpy as np
import pytest
import torch
from torchvision.models import resnet18

from renet_core.model import (
    ALL_AUS,
    AUBatchNorm2d,
    build_model,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from renet_core.model.relation import RelationGraph

AUS = [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24]
W3 = np.array([[1.0, 0.5, -0.2], [0.5, 1.0, 0.3], [-0.2, 0.3, 1.0]])
GAMMA3 = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])


def random_relation(c, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-0.3, 0.8, size=(c, c))
    w = (a + a.T) / 2
    np.fill_diagonal(w, 1.0)
    return w


def scramble_norms(model, seed=0):
    """Give every AU its own gamma, beta and statistics, so that equalities are not trivial."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, AUBatchNorm2d):
                m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(1 + 0.5 * torch.rand(m.running_var.shape, generator=gen))
    return model


@pytest.fixture(scope="module")
def images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


# ----------------------------------------------------------------------------- Eq. 5

def test_eq5_hand_computed_three_aus():
    bn = AUBatchNorm2d(2, 3, relation=RelationGraph(3, W3))
    with torch.no_grad():
        bn.weight.copy_(GAMMA3)
        bn.bias.copy_(-GAMMA3)
    gamma_g, beta_g = bn.affine()
    # row 0: (1*[1,2] + 0.5*[3,4] - 0.2*[5,6]) / (1 + 0.5 - 0.2) = [1.5, 2.8] / 1.3
    expected0 = torch.tensor([1.5, 2.8]) / 1.3
    # row 2: (-0.2*[1,2] + 0.3*[3,4] + 1*[5,6]) / 1.1 = [5.7, 6.8] / 1.1
    expected2 = torch.tensor([5.7, 6.8]) / 1.1
    torch.testing.assert_close(gamma_g[0], expected0)
    torch.testing.assert_close(gamma_g[2], expected2)
    torch.testing.assert_close(beta_g[0], -expected0)


def test_eq4_forward_uses_mixed_affine_and_au_statistics():
    bn = AUBatchNorm2d(2, 3, relation=RelationGraph(3, W3)).eval()
    with torch.no_grad():
        bn.weight.copy_(GAMMA3)
        bn.bias.zero_()
        bn.running_mean[1] = torch.tensor([1.0, -1.0])
        bn.running_var[1] = torch.tensor([4.0, 0.25])
    x = torch.randn(5, 2, 3, 3)
    bn.active_au = 1
    out = bn(x)
    gamma1 = (0.5 * GAMMA3[0] + GAMMA3[1] + 0.3 * GAMMA3[2]) / 1.8
    mean, var = torch.tensor([1.0, -1.0]), torch.tensor([4.0, 0.25])
    expected = gamma1[None, :, None, None] * (x - mean[None, :, None, None]) / torch.sqrt(var + 1e-5)[None, :, None, None]
    torch.testing.assert_close(out, expected)


def test_abs_denominator_hand_computed():
    graph = RelationGraph(3, W3, denominator="abs")
    torch.testing.assert_close(graph.mix(GAMMA3)[0], torch.tensor([1.5, 2.8]) / 1.7)


def test_nonpositive_row_sum_refused_by_signed_and_handled_by_abs():
    w = np.array([[1.0, -0.7, -0.6], [-0.7, 1.0, 0.2], [-0.6, 0.2, 1.0]])   # row 0 sums to -0.3
    with pytest.raises(ValueError, match="denominator='abs'"):
        RelationGraph(3, w, denominator="signed")
    graph = RelationGraph(3, w, denominator="abs")
    mixed = graph.mix(GAMMA3)
    assert torch.isfinite(mixed).all()
    torch.testing.assert_close(mixed[0], (GAMMA3[0] - 0.7 * GAMMA3[1] - 0.6 * GAMMA3[2]) / 2.3)
    # row 0 sums to exactly zero: signed undefined, abs defined
    w0 = np.array([[1.0, -0.5, -0.5], [-0.5, 1.0, 0.0], [-0.5, 0.0, 1.0]])
    with pytest.raises(ValueError):
        RelationGraph(3, w0, denominator="signed")
    assert torch.isfinite(RelationGraph(3, w0, denominator="abs").mix(GAMMA3)).all()


def test_none_mode_is_eq3_alone():
    graph = RelationGraph(3, None, mode="none")
    torch.testing.assert_close(graph.mix(GAMMA3), GAMMA3)


def test_fixed_mode_requires_matrix_and_checks_shape():
    with pytest.raises(ValueError, match="pearson_relation"):
        RelationGraph(3, None, mode="fixed")
    with pytest.raises(ValueError, match="3x3"):
        RelationGraph(3, np.eye(4))
    with pytest.raises(ValueError, match="mode"):
        RelationGraph(3, W3, mode="fancy")


# ------------------------------------------------------------------ batched all-AU pass

@pytest.mark.parametrize("task,head", [("occurrence", "shared"), ("intensity", "per_au")])
def test_all_au_pass_equals_per_au_loop_in_eval(images, task, head):
    torch.manual_seed(0)
    model = scramble_norms(build_model("renet", AUS, task, relation=random_relation(12), head=head)).eval()
    with torch.no_grad():
        batched = model(images)
        looped = torch.stack([model(images, au=k) for k in range(len(AUS))], dim=1)
    expected_shape = (3, 12) if task == "occurrence" else (3, 12, 6)
    assert batched.shape == expected_shape
    torch.testing.assert_close(batched, looped, atol=1e-5, rtol=1e-5)
    # the AUs really are different networks
    assert (looped[:, 0] - looped[:, 1]).abs().max() > 1e-3


def test_all_au_pass_in_train_mode_is_strategy_one(images):
    """Training strategy 1: one batched pass equals C conditioned passes (batch statistics per
    AU) and leaves the same running statistics."""
    torch.manual_seed(0)
    aus = AUS[:4]
    # float64: with 3 images, batch statistics at 1x1 resolution amplify float32 rounding
    model = scramble_norms(build_model("renet", aus, relation=random_relation(4))).double().train()
    twin = copy.deepcopy(model)
    batched = model(images.double())
    looped = torch.stack([twin(images.double(), au=k) for k in range(4)], dim=1)
    torch.testing.assert_close(batched, looped, atol=1e-8, rtol=1e-7)
    for a, b in zip(model.modules(), twin.modules()):
        if isinstance(a, AUBatchNorm2d):
            torch.testing.assert_close(a.running_mean, b.running_mean, atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(a.running_var, b.running_var, atol=1e-5, rtol=1e-4)


def test_single_au_training_updates_only_that_aus_statistics(images):
    model = build_model("renet", AUS[:3], relation=np.eye(3)).train()
    bn = model.backbone.bn1
    before = bn.running_mean.clone()
    model(images, au=1)
    assert not torch.equal(bn.running_mean[1], before[1])
    assert torch.equal(bn.running_mean[0], before[0]) and torch.equal(bn.running_mean[2], before[2])


# ------------------------------------------------------------------------- gradients

def test_gradients_reach_every_au_through_fixed_graph(images):
    model = build_model("renet", AUS[:4], relation=random_relation(4)).train()
    model(images, au=0).sum().backward()
    bn = model.backbone.layer1[0].bn1
    assert (bn.weight.grad.abs().sum(1) > 0).all(), "every AU's gamma gets gradient via Eq. 5"
    assert (bn.bias.grad.abs().sum(1) > 0).all()
    assert model.relation.weight.requires_grad is False


def test_gradients_reach_learnable_relation(images):
    model = build_model("renet", AUS[:4], relation_mode="learnable", seed=0).train()
    assert model.relation.denominator == "abs"
    model(images, au=2).sum().backward()
    grad = model.relation.weight.grad
    assert grad is not None
    off_diagonal = grad[2][torch.arange(4) != 2]
    assert (off_diagonal.abs() > 0).all()


def test_identity_graph_isolates_aus(images):
    model = build_model("renet", AUS[:3], relation_mode="none").train()
    model(images, au=1).sum().backward()
    bn = model.backbone.layer2[0].bn2
    assert bn.weight.grad[1].abs().sum() > 0
    assert bn.weight.grad[0].abs().sum() == 0 and bn.weight.grad[2].abs().sum() == 0


# ------------------------------------------------------------------------ section 4.6

def _renet_as_baseline(baseline, relation, denominator="signed"):
    """RE-Net with scale 1, bias 0 for every AU, every AU's statistics equal to the baseline's,
    and the same convolutions and per-AU output layer."""
    renet = build_model("renet", baseline.aus, relation=relation, head="per_au", denominator=denominator)
    source = baseline.backbone.state_dict()
    with torch.no_grad():
        for name, value in renet.backbone.state_dict().items():
            if name.endswith(("relation.weight", "au_batches_tracked")):
                continue
            if name.endswith(("running_mean", "running_var")):
                value.copy_(source[name].unsqueeze(0).expand_as(value))
            elif value.dim() == 2 and source[name].dim() == 1:   # gamma / beta rows
                value.fill_(1.0 if name.endswith("weight") else 0.0)
            else:
                value.copy_(source[name])
        renet.head.load_state_dict(baseline.head.state_dict())
    return renet


@pytest.mark.parametrize("relation", [None, "pcc"])
def test_scale_one_bias_zero_equals_resnet18(images, relation):
    """Section 4.6: with gamma=1 and beta=0 RE-Net is the vanilla ResNet-18. What else must hold,
    and is set here: the baseline's BN also has scale 1 and bias 0, every AU's statistics equal
    the baseline's (eval) or both use batch statistics (train), the convolutions and output layer
    are the same, and Eq. 5 is an affine average (signed denominator, or the identity graph)."""
    torch.manual_seed(0)
    baseline = build_model("resnet18", AUS[:4])
    with torch.no_grad():
        for m in baseline.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.bias.zero_()
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    matrix = random_relation(4) if relation == "pcc" else np.eye(4)
    renet = _renet_as_baseline(baseline, matrix).double()
    baseline = baseline.double()   # float64: see test_all_au_pass_in_train_mode_is_strategy_one
    x = images.double()
    for train in (False, True):
        baseline.train(train)
        renet.train(train)
        with torch.no_grad():
            torch.testing.assert_close(renet(x), baseline(x), atol=1e-8, rtol=1e-7)
            torch.testing.assert_close(renet(x, au=3), baseline(x, au=3), atol=1e-8, rtol=1e-7)


def test_baseline_one_representation_for_all_aus(images):
    baseline = build_model("resnet18", AUS).eval()
    assert baseline.features(images).shape == (3, 512)
    assert build_model("resnet18", AUS, task="intensity").eval()(images).shape == (3, 12, 6)


def test_renet_features_per_au(images):
    model = scramble_norms(build_model("renet", AUS[:3], relation=np.eye(3))).eval()
    with torch.no_grad():
        feats = model.features(images)
        assert feats.shape == (3, 3, 512)
        torch.testing.assert_close(feats[:, 2], model.features(images, au=2), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------- unseen AU (4.6)

def test_derive_unseen_au_statistics_and_head():
    w = np.array([[1.0, 0.6, -0.4], [0.6, 1.0, 0.2], [-0.4, 0.2, 1.0]])
    model = scramble_norms(build_model("renet", [1, 2, 23], relation=w, head="per_au"))
    bn = model.backbone.layer3[1].bn2
    trained_mean = bn.running_mean[[0, 1]].clone()
    head_before = model.head.weight[[0, 1]].clone()
    model.derive_unseen_aus([2])
    # positive weights to trained AUs: AU1 -> max(-0.4, 0) = 0, AU2 -> 0.2: all from AU2
    torch.testing.assert_close(bn.running_mean[2], trained_mean[1])
    # head: Eq. 5 row of AU23 restricted to trained AUs, renormalised: (-0.4*h1 + 0.2*h2) / -0.2
    torch.testing.assert_close(model.head.weight[2], (-0.4 * head_before[0] + 0.2 * head_before[1]) / -0.2)
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(2, 3, 32, 32))).all()


def test_derive_unseen_uniform_rule_and_errors():
    model = scramble_norms(build_model("renet", [1, 2, 4], relation=np.eye(3)))
    bn = model.backbone.bn1
    expected = bn.running_var[[0, 2]].mean(0)
    model.derive_unseen_aus([1], stats_rule="uniform")
    torch.testing.assert_close(bn.running_var[1], expected)
    with pytest.raises(ValueError):
        model.derive_unseen_aus([0, 1, 2])
    with pytest.raises(IndexError):
        model.derive_unseen_aus([7])


# ------------------------------------------------------------------ errors and init

def test_bad_arguments_are_refused(images):
    with pytest.raises(ValueError, match="kind"):
        build_model("vgg", AUS)
    with pytest.raises(ValueError, match="task"):
        build_model("resnet18", AUS, task="valence")
    with pytest.raises(ValueError, match="distinct"):
        build_model("resnet18", [1, 1])
    model = build_model("renet", AUS[:2], relation=np.eye(2)).eval()
    with pytest.raises(IndexError, match="au=5"):
        model(images, au=5)
    bn = AUBatchNorm2d(4, 2)
    with pytest.raises(RuntimeError, match="needs an AU"):
        bn(torch.randn(2, 4, 3, 3))


def test_pretrained_from_local_file(tmp_path, images):
    torch.manual_seed(3)
    source = resnet18()
    with torch.no_grad():
        source.bn1.weight.uniform_(0.5, 1.5)
        source.bn1.running_mean.uniform_(-1, 1)
        source.layer4[1].bn2.bias.uniform_(-1, 1)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    renet = build_model("renet", AUS[:3], relation=np.eye(3), pretrained=path)
    for k in range(3):
        torch.testing.assert_close(renet.backbone.bn1.weight[k], source.bn1.weight)
        torch.testing.assert_close(renet.backbone.bn1.running_mean[k], source.bn1.running_mean)
        torch.testing.assert_close(renet.backbone.layer4[1].bn2.bias[k], source.layer4[1].bn2.bias)
    torch.testing.assert_close(renet.backbone.conv1.weight, source.conv1.weight)
    # pretrained statistics are blended by the usual momentum, not replaced by a warm start
    assert (renet.backbone.bn1.au_batches_tracked >= 10).all()
    baseline = build_model("resnet18", AUS[:3], pretrained=path)
    torch.testing.assert_close(baseline.backbone.layer2[0].conv1.weight, source.layer2[0].conv1.weight)
    # a graph mixing identical per-AU values leaves them identical (signed denominator)
    mixed = build_model("renet", AUS[:3], relation=random_relation(3), pretrained=path)
    gamma_g, _ = mixed.backbone.bn1.affine()
    torch.testing.assert_close(gamma_g[1], source.bn1.weight)


def test_pretrained_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        build_model("resnet18", AUS, pretrained=tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a state dict")
    with pytest.raises(ValueError, match="junk.pth"):
        build_model("resnet18", AUS, pretrained=junk)
    other = tmp_path / "other.pth"
    torch.save({"layer.weight": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="conv1.weight"):
        build_model("resnet18", AUS, pretrained=other)


# ----------------------------------------------------------------------- checkpoints

@pytest.mark.parametrize("kind,mode", [("renet", "fixed"), ("renet", "learnable"), ("resnet18", "fixed")])
def test_checkpoint_round_trip(tmp_path, images, kind, mode):
    relation = random_relation(4) if mode == "fixed" else None
    model = build_model(kind, AUS[:4], "intensity", relation=relation, relation_mode=mode, seed=1)
    if kind == "renet":
        scramble_norms(model)
    model.eval()
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, model, config={"lr": 1e-4, "root": tmp_path}, epoch=3,
                    rng=torch.get_rng_state())
    loaded, payload = load_checkpoint(path, aus=AUS[:4])
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), model(images))
    assert payload["epoch"] == 3 and payload["config"]["lr"] == 1e-4
    assert payload["config"]["root"] == str(tmp_path)
    assert loaded.aus == AUS[:4] and loaded.task == "intensity" and loaded.kind == kind
    if kind == "renet":
        torch.testing.assert_close(payload["relation"], model.relation.edge_weights())


def test_checkpoint_errors(tmp_path):
    model = build_model("renet", [1, 2], relation=np.eye(2))
    path = save_checkpoint(tmp_path / "a.pt", model)
    with pytest.raises(ValueError, match=r"trained for AUs \[1, 2\]"):
        load_checkpoint(path, aus=[1, 4])
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated.pt"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="not a renet_core checkpoint"):
        read_checkpoint(foreign)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "none.pt")
    with pytest.raises(ValueError, match="clash"):
        save_checkpoint(tmp_path / "b.pt", model, aus=[3])


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    model = build_model("renet", [1, 2], relation=np.eye(2))
    path = save_checkpoint(tmp_path / "c.pt", model, epoch=1)
    good = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(path, model, epoch=2)
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


def test_running_statistics_warm_start_per_au():
    """An AU's first training batches set its statistics to their exact average (no 0/1 prior
    lingering when each AU sees ~1/C of the batches); the other AUs' are untouched; afterwards
    the usual momentum applies. Same through the batched all-AU pass."""
    torch.manual_seed(0)
    x = torch.randn(8, 4, 5, 5) * 2 + 3
    mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=True)
    bn = AUBatchNorm2d(4, 3, relation=None).train()
    bn.active_au = 1
    bn(x)
    torch.testing.assert_close(bn.running_mean[1], mean)
    torch.testing.assert_close(bn.running_var[1], var)
    assert bn.running_mean[0].abs().max() == 0 and bn.au_batches_tracked.tolist() == [0, 1, 0]
    bn(x * 0)                                          # second batch: plain average of the two
    torch.testing.assert_close(bn.running_mean[1], mean / 2)

    cold = AUBatchNorm2d(4, 3, relation=None, warm_start_statistics=False).train()
    cold.active_au = 1
    cold(x)
    torch.testing.assert_close(cold.running_mean[1], 0.1 * mean)

    batched = AUBatchNorm2d(4, 3, relation=None).train()
    batched.active_au = ALL_AUS
    batched(torch.cat([x, x, x]))
    torch.testing.assert_close(batched.running_mean, mean.expand(3, 4))
    assert batched.au_batches_tracked.tolist() == [1, 1, 1]


def test_bn_momentum_and_warm_start_reach_every_layer():
    """``bn_momentum`` / ``bn_warm_start`` of the model set every AU-conditioned BN (the first
    update of a cold layer weighs the batch by exactly the momentum)."""
    model = build_model("renet", AUS[:3], relation=np.eye(3), bn_momentum=0.3, bn_warm_start=False)
    norms = [m for m in model.modules() if isinstance(m, AUBatchNorm2d)]
    assert norms and all(m.momentum == 0.3 and not m.warm_start_statistics for m in norms)
    assert model.options["bn_momentum"] == 0.3 and model.options["bn_warm_start"] is False
    default = build_model("renet", AUS[:3], relation=np.eye(3))
    assert all(m.momentum == 0.1 and m.warm_start_statistics for m in default.modules()
               if isinstance(m, AUBatchNorm2d))
    x = torch.randn(8, 4, 5, 5) + 2
    bn = AUBatchNorm2d(4, 2, relation=None, momentum=0.3, warm_start_statistics=False).train()
    bn.active_au = 0
    bn(x)
    torch.testing.assert_close(bn.running_mean[0], 0.3 * x.mean((0, 2, 3)))
    with pytest.raises(ValueError, match="bn_momentum"):
        build_model("renet", AUS[:3], relation=np.eye(3), bn_momentum=0)


def test_au_specific_parameters_are_theta_c():
    """Section 3.1: theta_c = (gamma_c, beta_c) of every BN layer, plus the output rows of a
    per-AU head; the baseline has none (everything it has is trained at every step)."""
    shared = build_model("renet", AUS[:3], relation=np.eye(3))
    names = {id(p): n for n, p in shared.named_parameters()}
    specific = shared.au_specific_parameters()
    assert len(specific) == 2 * 20   # ResNet-18 has 20 BN layers
    assert all(names[id(p)].endswith(("weight", "bias")) and p.shape[0] == 3 for p in specific)
    assert not any(names[id(p)].startswith("head") for p in specific)
    per_au = build_model("renet", AUS[:3], relation=np.eye(3), head="per_au")
    assert {id(per_au.head.weight), id(per_au.head.bias)} <= {id(p) for p in per_au.au_specific_parameters()}
    assert build_model("resnet18", AUS[:3]).au_specific_parameters() == []


def test_imagenet_download_failure_names_the_offline_alternatives(monkeypatch):
    """The paper profile starts from ImageNet; without internet the error says what to do."""
    from torchvision.models import ResNet18_Weights

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(type(ResNet18_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(RuntimeError, match="pretrained=PATH"):
        build_model("resnet18", AUS[:3], pretrained="imagenet")


def test_all_au_layouts_give_the_same_outputs_and_auto_picks_by_device_and_batch(images):
    """The batched all-AU pass and the loop of C conditioned passes are the same function (eval);
    on the CPU the default layout loops once the stacked copies exceed CPU_BATCHED_MAX_PIXELS."""
    model = build_model("renet", AUS, relation=np.eye(len(AUS))).eval()
    with torch.no_grad():
        model.layout = "batched"
        batched = model(images)
        model.layout = "loop"
        looped = model(images)
        model.layout = "auto"
        auto = model(images)
    torch.testing.assert_close(batched, looped, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(auto, looped, rtol=1e-4, atol=1e-5)
    def stem(batch, side):   # the stem convolution halves the input side
        return torch.zeros(batch, 64, side // 2, side // 2)

    assert model.all_au_layout(stem(32, 48)) == "batched" and model.all_au_layout(stem(1, 224)) == "batched"
    twelve = build_model("renet", list(range(1, 13)), relation=np.eye(12))
    assert twelve.all_au_layout(stem(16, 224)) == "loop" and twelve.all_au_layout(stem(1, 224)) == "batched"
