"""ImageNet weights without network (issue 22): a local torchvision resnet18 state_dict file
(``pretrained=PATH``) starts a real run, and ``pretrained="imagenet"`` without network fails
before any data work, saying how to pass a local file. Nothing is downloaded here."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision

from renet_core.engine import ExperimentConfig, run
from renet_core.model import read_checkpoint
from renet_core.model.pretrained import WeightsUnavailableError, pretrained_state_dict


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and an empty torch hub cache: torchvision's download fails as offline."""
    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError(f"no network in tests ({url})")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    for var in ("RENET_BP4D", "RENET_DISFA", "RENET_BP4DPLUS"):
        monkeypatch.delenv(var, raising=False)


def _weights_file(path):
    torch.manual_seed(123)
    state = torchvision.models.resnet18().state_dict()
    state["bn1.weight"] = torch.rand(64) + 0.5              # BN scales unlike a fresh model's ones
    torch.save(state, path)
    return state


@pytest.mark.slow
def test_a_local_state_dict_file_starts_a_smoke_run(tmp_path, offline, model="renet"):
    state = _weights_file(tmp_path / "resnet18.pt")
    cfg = ExperimentConfig.build(profile="smoke", dataset="bp4d", model=model, fold=1, epochs=1,
                                 steps_per_epoch=2, pretrained=str(tmp_path / "resnet18.pt"),
                                 cache_dir=str(tmp_path / "cache"), results_dir=str(tmp_path / "runs"),
                                 progress=False)
    result = run(cfg)
    assert len(result.rows) and result.rows["value"].notna().all()
    trained = read_checkpoint(result.run_dir / "best.pt")["state_dict"]
    # two Adam steps at lr 1e-3 move a shared weight by at most ~2e-3: the run started from the file
    moved = (trained["backbone.conv1.weight"] - state["conv1.weight"]).abs().max()
    assert moved < 3 * cfg.lr * cfg.steps_per_epoch
    scratch = torchvision.models.resnet18().state_dict()["conv1.weight"]   # another start is far away
    assert (scratch - state["conv1.weight"]).abs().mean() > 10 * moved
    # RE-Net: every AU's BN scale started from the file's (one row per AU), then moved a little
    gamma = trained["backbone.bn1.weight"]
    assert gamma.shape[0] == len(cfg.resolved_aus())
    assert (gamma - state["bn1.weight"]).abs().max() < 3 * cfg.lr * cfg.lr_scale() * cfg.steps_per_epoch
    assert cfg.replace(pretrained=None).config_hash() != cfg.config_hash()


def test_imagenet_without_network_says_how_to_pass_a_local_file(tmp_path, offline, capsys):
    with pytest.raises(WeightsUnavailableError, match="no network in tests") as info:
        pretrained_state_dict("imagenet")
    message = str(info.value)
    assert "--set pretrained=PATH" in message and "resnet18(weights='IMAGENET1K_V1')" in message
    assert str(tmp_path / "torch_home") in message          # where torchvision's cache would be
    # a run fails at once, before its data are written or prepared
    cfg = ExperimentConfig.build(profile="smoke", dataset="bp4d", pretrained="imagenet",
                                 cache_dir=str(tmp_path / "cache"), results_dir=str(tmp_path / "runs"))
    with pytest.raises(WeightsUnavailableError):
        run(cfg)
    assert not (tmp_path / "cache" / "synthau").exists()
    # the command line prints the advice, not a traceback
    from renet_core.cli.main import main

    with pytest.raises(SystemExit, match="--set pretrained=PATH"):
        main(["train", "--profile", "smoke", "--set", "pretrained=imagenet", "--set",
              f"cache_dir={tmp_path / 'cache'}", "--no-progress"])
