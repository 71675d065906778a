"""The experiment engine: learning, kill-and-resume, non-finite loss, corrupt checkpoints,
idempotent results, configs and the CLI.

Most tests use a tiny in-memory dataset (three AUs drawn as bright bands on 16 px noise) so
that they take seconds; ``test_synthau_*`` run the real data path on SynthAU smoke data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from renet_core.base import metrics
from renet_core.engine import ExperimentConfig, Splits, cross_validate, evaluate, run
from renet_core.engine.loop import NonFiniteLossError
from renet_core.engine.store import ResultsStore, summary_table

AUS = [1, 2, 4]


def toy_frames(n_subjects=6, per_subject=40, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_subjects):
        for f in range(per_subject):
            a1 = rng.random() < 0.4
            a2 = a1 if rng.random() < 0.8 else not a1  # AU1 and AU2 correlated
            rows.append({"subject": f"S{s}", "frame": f, "AU1": float(a1), "AU2": float(a2),
                         "AU4": float(rng.random() < 0.3)})
    df = pd.DataFrame(rows)
    df.loc[rng.random(len(df)) < 0.05, "AU4"] = np.nan  # unknown labels
    return df


def toy_splits() -> Splits:
    df = toy_frames()
    test = df[df.subject.isin(["S4", "S5"])].reset_index(drop=True)
    rest = df[~df.subject.isin(["S4", "S5"])]
    return Splits(rest[rest.subject != "S3"].reset_index(drop=True),
                  rest[rest.subject == "S3"].reset_index(drop=True), test, "toy (synthetic)", True)


class ToyDataset(torch.utils.data.Dataset):
    """Item = (image, target, mask) as renet_core.data.AUDataset; ``poison`` makes NaN images."""

    poison = False

    def __init__(self, frames, aus, size, train):
        self.y = frames[[f"AU{a}" for a in aus]].to_numpy(float)
        self.ids = frames["frame"].to_numpy() + 1000 * frames["subject"].str[1:].astype(int).to_numpy()
        self.size, self.train = size, train

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        img = torch.randn(3, self.size, self.size, generator=torch.Generator().manual_seed(int(self.ids[i]))) * 0.5
        y = np.nan_to_num(self.y[i])
        for k in np.flatnonzero(y):
            img[k % 3, 4 * k:4 * k + 4, :] += 1.5
        if self.train and torch.rand(1).item() < 0.5:  # augmentation draws from the global RNG
            img = img.flip(-1)
        if ToyDataset.poison:
            img = img * float("nan")
        return img, torch.tensor(y, dtype=torch.float32), torch.tensor(~np.isnan(self.y[i]))


def toy_factory(frames, cfg, train):
    return ToyDataset(frames, cfg.resolved_aus(), cfg.image_size, train)


def toy_config(tmp_path, **changes) -> ExperimentConfig:
    base = dict(dataset="bp4d", aus=AUS, model="resnet18", image_size=16, batch_size=16, epochs=3,
                patience=5, lr=1e-3, results_dir=str(tmp_path / "results"), progress=False, save_features=8)
    base.update(changes)
    return ExperimentConfig(**base)


def toy_run(cfg, **kwargs):
    return run(cfg, splits=toy_splits(), dataset_factory=toy_factory, **kwargs)


@pytest.mark.slow
def test_training_learns_and_beats_label_prior(tmp_path):
    result = toy_run(toy_config(tmp_path, epochs=4))
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0]
    f1 = result.per_au("f1").to_numpy()
    truth = toy_splits().test[[f"AU{a}" for a in AUS]].to_numpy(float)
    assert np.nanmean(f1) > np.nanmean(metrics.always_positive_f1(truth)) + 0.1


def test_renet_strategies_run_and_record_tidy_rows(tmp_path):
    for strategy in ("one", "all"):
        result = toy_run(toy_config(tmp_path, model="renet", strategy=strategy, epochs=1))
        rows = result.rows
        assert set(rows["au"]) == set(AUS) and set(rows["metric"]) == {"f1"}
        assert rows["synthetic"].all() and (rows["data_source"] == "toy (synthetic)").all()
        assert rows["method"].iloc[0] == ("renet" if strategy == "one" else "renet-all")
        pred = ResultsStore(tmp_path / "results").load_predictions(result.config_hash)
        assert pred["scores"].shape == (80, 3) and pred["features"].shape == (8, 3, 512)


@pytest.mark.slow
def test_kill_and_resume_gives_identical_metrics(tmp_path):
    straight = toy_run(toy_config(tmp_path / "a", model="renet", epochs=2))

    def killed(epoch, state):
        if epoch == 1:
            raise KeyboardInterrupt("simulated kill after epoch 1")

    cfg = toy_config(tmp_path / "b", model="renet", epochs=2)
    with pytest.raises(KeyboardInterrupt):
        toy_run(cfg, on_epoch_end=killed)
    store = ResultsStore(cfg.results_dir)
    assert (store.run_dir(cfg.config_hash()) / "last.pt").exists() and not store.is_done(cfg.config_hash())
    resumed = toy_run(cfg)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    # the run's wall seconds include the epoch the killed process trained
    record = store.done_summary(cfg.config_hash())
    assert record["seconds"] >= round(sum(h["seconds"] for h in resumed.history), 1) - 0.1
    assert resumed.rows["value"].tolist() == straight.rows["value"].tolist()
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = toy_config(tmp_path, epochs=3)

    def poison(epoch, state):
        ToyDataset.poison = True

    try:
        with pytest.raises(NonFiniteLossError, match="epoch 2"):
            toy_run(cfg, on_epoch_end=poison)
    finally:
        ToyDataset.poison = False
    from renet_core.model import read_checkpoint

    last = read_checkpoint(ResultsStore(cfg.results_dir).run_dir(cfg.config_hash()) / "last.pt")
    assert last["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    cfg = toy_config(tmp_path)
    last = ResultsStore(cfg.results_dir).run_dir(cfg.config_hash()) / "last.pt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="last.pt"):
        toy_run(cfg)


def test_results_are_idempotent_and_finished_runs_skipped(tmp_path):
    cfg = toy_config(tmp_path, epochs=1)
    first = toy_run(cfg)
    store = ResultsStore(cfg.results_dir)
    n = len(store.load())
    store.add_rows(first.rows)  # the same rows written twice
    assert len(store.load()) == n == 3
    again = toy_run(cfg)
    assert again.skipped and again.rows["value"].tolist() == first.rows["value"].tolist()
    forced = toy_run(cfg.replace(force=True))
    assert not forced.skipped and len(store.load()) == n
    # re-evaluating from the best checkpoint reproduces the numbers without retraining
    rows = evaluate(cfg, splits=toy_splits(), dataset_factory=toy_factory)
    assert np.allclose(rows["value"], first.rows["value"])


def test_cross_validate_and_summary_average(tmp_path):
    cfg = toy_config(tmp_path, epochs=1)
    rows = cross_validate(cfg, folds=(1, 2), splits=toy_splits(), dataset_factory=toy_factory)
    assert sorted(rows["fold"].unique()) == [1, 2]
    table = summary_table(rows, "f1")
    per_fold = [rows[rows.fold == f]["value"].mean() for f in (1, 2)]
    assert table.loc["resnet18", "Avg"] == pytest.approx(np.mean(per_fold))


@pytest.mark.slow
def test_intensity_and_holdout_runs(tmp_path):
    frames = toy_splits()
    for part in (frames.train, frames.val, frames.test):
        for a in AUS:
            part[f"AU{a}_int"] = part[f"AU{a}"] * 3

    def factory(df, cfg, train):
        ds = ToyDataset(df, cfg.resolved_aus(), cfg.image_size, train)
        ds.y = df[[f"AU{a}_int" for a in cfg.resolved_aus()]].to_numpy(float)
        return ds

    cfg = toy_config(tmp_path, dataset="disfa", task="intensity", model="renet", epochs=1)  # AU1, 2, 4 have DISFA intensities
    rows = run(cfg, splits=frames, dataset_factory=factory).rows
    assert set(rows["metric"]) == {"icc", "mae"}
    cfg = toy_config(tmp_path, model="renet", holdout_aus=[2], epochs=1)
    rows = toy_run(cfg).rows
    assert rows["method"].iloc[0] == "renet-unseenAU2" and rows.loc[rows.au == 2, "heldout"].all()


def test_config_from_dict_and_yaml(tmp_path):
    cfg = ExperimentConfig.from_dict({"dataset": "disfa", "fold": 2})
    assert cfg.resolved_aus() == [1, 2, 4, 6, 9, 12, 25, 26]
    with pytest.raises(ValueError, match="unknown config keys"):
        ExperimentConfig.from_dict({"datset": "disfa"})
    with pytest.raises(ValueError, match="fold"):
        ExperimentConfig.from_dict({"fold": 4})
    path = tmp_path / "c.yaml"
    path.write_text("dataset: bp4d\ntask: intensity\nmodel: resnet18\n")
    loaded = ExperimentConfig.from_yaml(path)
    assert loaded.resolved_aus() == [6, 10, 12, 14, 17]
    assert loaded.config_hash() == loaded.replace(device="cpu", results_dir="elsewhere").config_hash()
    assert loaded.config_hash() != loaded.replace(seed=1).config_hash()


def test_cli_config_precedence(tmp_path):
    from renet_core.cli.main import build_config, parse_args
    from renet_core.engine.profiles import get_profile

    path = tmp_path / "run.yaml"
    path.write_text("dataset: disfa\nlr: 0.01\nepochs: 7\n")
    args = parse_args(["train", "--profile", "smoke", "--config", str(path), "--fold", "2",
                       "--set", "epochs=3", "--set", "holdout_aus=[4]", "--model", "renet"])
    cfg = build_config(args)
    smoke = get_profile("smoke")
    assert (cfg.dataset, cfg.fold, cfg.lr, cfg.epochs, cfg.holdout_aus) == ("disfa", 2, 0.01, 3, [4])
    assert cfg.image_size == smoke["image_size"] and cfg.synth_size == "smoke" and cfg.profile == "smoke"
    with pytest.raises(SystemExit, match="bad config"):
        build_config(parse_args(["train", "--set", "fold=9"]))
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("huge")


@pytest.mark.slow
def test_synthau_smoke_run_through_cli_and_data_layer(synth_roots, tmp_path):
    """The real data path (prepare, folds, AUDataset) on SynthAU smoke data, via the CLI.

    Only "the loss falls" is asserted here: beating the always-present F1 on SynthAU smoke data
    after a few CPU steps is not reliable (the toy test above checks learning instead).
    """
    import json

    from renet_core.cli.main import main

    results = tmp_path / "results"
    code = main(["train", "--profile", "smoke", "--dataset", "disfa", "--model", "resnet18",
                 "--root", str(synth_roots["disfa"]), "--results-dir", str(results), "--no-progress",
                 "--set", f"cache_dir={tmp_path / 'cache'}", "--set", "epochs=3", "--set", "patience=3"])
    assert code == 0
    rows = ResultsStore(results).load()
    assert sorted(rows["au"]) == [1, 2, 4, 6, 9, 12, 25, 26]
    assert rows["synthetic"].all() and rows["data_source"].str.contains("SynthAU").all()
    assert rows["profile"].eq("smoke").all() and rows["value"].between(0, 1).all()
    done = json.loads(next((results / "runs").glob("*/done.json")).read_text())
    losses = [h["loss"] for h in done["history"]]
    assert len(losses) == 3 and losses[-1] < losses[0]


def test_refresh_statistics_is_the_exact_batch_average_for_both_models():
    """bn_refresh_batches: every BN's running statistics become those of the refresh batch (all
    AUs for RE-Net), and the layers' momentum / warm-start settings are restored afterwards."""
    from types import SimpleNamespace

    from renet_core.engine.evaluate import refresh_statistics
    from renet_core.model import build_model

    torch.manual_seed(0)
    images = torch.randn(8, 3, 16, 16) * 2 + 1
    dataset = torch.utils.data.TensorDataset(images, torch.zeros(8, 3), torch.ones(8, 3, dtype=torch.bool))
    cfg = SimpleNamespace(bn_refresh_batches=1, batch_size=8, seed=0, num_workers=0, amp="off", channels_last=False)
    for kind in ("resnet18", "renet"):
        model = build_model(kind, AUS, relation=np.eye(3) if kind == "renet" else None).eval()
        refresh_statistics(model, dataset, cfg, epoch=0, device=torch.device("cpu"))
        with torch.no_grad():
            stem = model.backbone.conv1(images)
        bn = model.backbone.bn1
        mean, var = stem.mean((0, 2, 3)), stem.var((0, 2, 3), unbiased=True)
        means = bn.running_mean if kind == "resnet18" else bn.running_mean[2]
        variances = bn.running_var if kind == "resnet18" else bn.running_var[0]
        torch.testing.assert_close(means, mean, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(variances, var, atol=1e-4, rtol=1e-4)
        assert not model.training
        if kind == "resnet18":
            assert bn.momentum == 0.1
        else:
            assert bn.warm_start_statistics and bn.au_batches_tracked.tolist() == [1, 1, 1]


# ------------------------------------------------------------------ training-dynamics options

def test_au_lr_scale_gives_theta_c_its_own_learning_rate(tmp_path):
    """``au_lr_scale`` puts RE-Net's AU-specific parameters in a second Adam group at lr x scale;
    at the default 1 there is one group, as the paper's single learning rate."""
    from renet_core.engine.loop import make_optimizer, parameter_groups
    from renet_core.model import build_model

    model = build_model("renet", AUS, relation=np.eye(3))
    one = parameter_groups(model, toy_config(tmp_path, model="renet"))
    assert len(one) == 1 and one[0]["lr"] == 1e-3
    two = parameter_groups(model, toy_config(tmp_path, model="renet", au_lr_scale=12))
    assert [g["lr"] for g in two] == [1e-3, pytest.approx(12e-3)]
    assert {id(p) for p in two[1]["params"]} == {id(p) for p in model.au_specific_parameters()}
    assert sum(len(g["params"]) for g in two) == len(list(model.parameters()))
    # one Adam step: the first step moves each parameter by ~lr, so theta_c moves ~12x as far
    x, y = torch.randn(4, 3, 16, 16), torch.ones(4)
    moved = {}
    for scale in (1.0, 12.0):
        torch.manual_seed(0)
        net = build_model("renet", AUS, relation=np.eye(3)).train()
        opt = make_optimizer(net, toy_config(tmp_path, model="renet", au_lr_scale=scale))
        before = [p.detach().clone() for p in (net.backbone.bn1.weight, net.backbone.conv1.weight)]
        torch.nn.functional.binary_cross_entropy_with_logits(net(x, au=0), y).backward()
        opt.step()
        moved[scale] = [float((p.detach() - b).abs().max()) for p, b in
                        zip((net.backbone.bn1.weight, net.backbone.conv1.weight), before)]
    assert moved[12.0][0] == pytest.approx(12 * moved[1.0][0], rel=1e-3)
    assert moved[12.0][1] == pytest.approx(moved[1.0][1], rel=1e-3)


def test_new_model_options_reach_the_model_and_the_run_identity(tmp_path):
    """``head``, ``bn_momentum``, ``bn_warm_start`` and ``au_lr_scale`` change the run identity only
    when they leave their defaults (runs made before they existed keep theirs), and are checked
    before any work starts."""
    base = toy_config(tmp_path, model="renet")
    assert base.config_hash() == toy_config(tmp_path, model="renet", head="shared", bn_momentum=0.1,
                                            bn_warm_start=True, au_lr_scale=1.0).config_hash()
    for change in ({"head": "per_au"}, {"bn_momentum": 0.5}, {"bn_warm_start": False}, {"au_lr_scale": 12}):
        assert base.replace(**change).config_hash() != base.config_hash()
    assert base.replace(au_lr_scale="12").au_lr_scale == 12.0
    for bad in ({"head": "twin"}, {"au_lr_scale": 0}, {"au_lr_scale": "x"}, {"bn_momentum": 1.5}):
        with pytest.raises(ValueError):
            base.replace(**bad)
    result = toy_run(toy_config(tmp_path, model="renet", head="per_au", bn_momentum=0.2, epochs=1))
    payload = torch.load(result.run_dir / "best.pt", weights_only=True)
    assert payload["options"]["head"] == "per_au" and payload["options"]["bn_momentum"] == 0.2


@pytest.mark.slow
def test_history_records_per_au_loss_and_validation(tmp_path):
    """Every epoch records each AU's mean training loss (NaN for an AU not drawn) and validation
    F1, and the training wall time without validation: the curves of the dynamics study."""
    for model, strategy in (("resnet18", "one"), ("renet", "one"), ("renet", "all")):
        result = toy_run(toy_config(tmp_path / f"{model}-{strategy}", model=model, strategy=strategy, epochs=1))
        h = result.history[0]
        assert len(h["loss_per_au"]) == 3 and len(h["val_per_au"]) == 3
        assert 0 < h["train_seconds"] <= h["seconds"]
        trained = [v for v in h["loss_per_au"] if not np.isnan(v)]
        assert trained and all(0 < v < 5 for v in trained)
        if model == "resnet18" or strategy == "all":
            assert len(trained) == 3
            assert h["loss"] == pytest.approx(sum(trained), rel=1e-5)


def test_cosine_schedule_is_opt_in_and_a_function_of_position(tmp_path):
    """``lr_schedule="cosine"`` decays every group's lr from its base value to 0 over the planned
    epochs; "constant" (the paper) never changes it; the factor depends only on the position,
    so a resumed run continues the same schedule."""
    from renet_core.engine.loop import lr_factor, make_optimizer, set_learning_rate
    from renet_core.model import build_model

    const = toy_config(tmp_path, epochs=4, steps_per_epoch=10)
    cos = toy_config(tmp_path, epochs=4, steps_per_epoch=10, lr_schedule="cosine", model="renet", au_lr_scale=3)
    assert const.lr_schedule == "constant" and const.config_hash() != const.replace(lr_schedule="cosine").config_hash()
    assert {lr_factor(const, e, s, 10) for e in range(4) for s in range(10)} == {1.0}
    assert lr_factor(cos, 0, 0, 10) == 1.0 and lr_factor(cos, 2, 0, 10) == pytest.approx(0.5)
    assert lr_factor(cos, 3, 9, 10) == pytest.approx(0.5 * (1 + np.cos(np.pi * 39 / 40)))
    opt = make_optimizer(build_model("renet", AUS, relation=np.eye(3)), cos)
    set_learning_rate(opt, cos, 2, 0, 10)
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(5e-4), pytest.approx(1.5e-3)]
    with pytest.raises(ValueError, match="lr_schedule"):
        const.replace(lr_schedule="step")
    result = toy_run(toy_config(tmp_path, epochs=2, lr_schedule="cosine"))
    assert len(result.history) == 2 and np.isfinite(result.history[-1]["loss"])


def test_standin_backbone_is_trained_on_the_pretraining_twin_and_loads(tmp_path):
    """``pretrained="standin"``: a ResNet-18 trained on a SynthAU pretraining twin (other seed),
    cached as a torchvision state_dict that both models load; refused for real data."""
    from renet_core.engine.profiles import get_profile
    from renet_core.engine.standin import standin_backbone, standin_config
    from renet_core.model import build_model

    cfg = ExperimentConfig(**{**get_profile("smoke"), "dataset": "bp4d", "cache_dir": str(tmp_path / "cache"),
                              "progress": False, "pretrained": "standin"})
    pre = standin_config(cfg, steps=2)
    assert pre.dataset == "bp4d" and pre.synth_seed == cfg.synth_seed + 1000    # the pretraining twin
    assert pre.data_identity() != cfg.data_identity()                           # never the target
    assert pre.model == "resnet18" and pre.val_fraction == 0
    assert pre.epochs * pre.steps_per_epoch == 2
    unseen = cfg.replace(model="renet", holdout_aus=[23])       # Table 6: never trained on AU23's labels
    assert standin_config(unseen, steps=2).resolved_aus() == [a for a in pre.resolved_aus() if a != 23]
    assert standin_config(unseen, steps=2).config_hash() != pre.config_hash()
    path = standin_backbone(cfg, steps=2)
    state = torch.load(path, weights_only=True)
    assert "conv1.weight" in state and not any(k.startswith(("fc", "backbone")) for k in state)
    assert standin_backbone(cfg, steps=2) == path          # cached: not trained again
    model = build_model("renet", [1, 2, 4], relation=np.eye(3), pretrained=path)
    torch.testing.assert_close(model.backbone.conv1.weight, state["conv1.weight"])
    torch.testing.assert_close(model.backbone.bn1.weight[2], state["bn1.weight"])
    with pytest.raises(ValueError, match="standin"):
        standin_backbone(cfg.replace(data="real", root=str(tmp_path)))


def test_au_lr_scale_c_is_the_number_of_trained_aus(tmp_path):
    cfg = toy_config(tmp_path, model="renet", au_lr_scale="C")
    assert cfg.lr_scale() == 3.0 and cfg.replace(holdout_aus=[4]).lr_scale() == 2.0
    assert toy_config(tmp_path).lr_scale() == 1.0
    assert toy_config(tmp_path, model="renet", au_lr_scale="C").config_hash() == \
        toy_config(tmp_path, model="renet", au_lr_scale=3).config_hash()


def test_profiles_paper_stays_faithful_and_demo_trains_theta_c_faster():
    """Section 4.3 for the paper profile (Adam lr 1e-4 for every parameter, no schedule; ImageNet
    initialisation, docs/reproduction-notes.md); the demo's opt-in remedies are explicit."""
    from renet_core.engine.profiles import get_profile

    paper = ExperimentConfig(**{k: v for k, v in get_profile("paper").items() if k != "synth_size"})
    assert (paper.lr, paper.lr_scale(), paper.lr_schedule, paper.batch_size) == (1e-4, 1.0, "constant", 100)
    assert paper.pretrained == "imagenet" and paper.bn_refresh_batches == 0
    assert paper.num_workers >= 1                  # decoding in loader workers, not the training process
    demo = get_profile("demo")
    assert demo["au_lr_scale"] == "C" and demo["lr_schedule"] == "cosine"
