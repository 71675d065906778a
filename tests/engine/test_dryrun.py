"""The paper-shape dry run (``train --profile paper --dry-run``): the paper profile's code path at
224 px crops of 256 px aligned SynthAU faces, here at a reduced batch."""

from __future__ import annotations

import pytest

from renet_core.cli.main import main


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_dry_run_at_paper_shapes_on_the_cpu(tmp_path, monkeypatch, capsys):
    for var in ("RENET_BP4D", "RENET_DISFA", "RENET_BP4DPLUS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RENET_CACHE", str(tmp_path / "cache"))
    code = main(["train", "--profile", "paper", "--dry-run", "--no-progress", "--set", "batch_size=2",
                 "--set", "synth_size=smoke", "--set", "denominator=abs", "--set", "pretrained=null"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "crops 256 px -> 224 px" in out                       # alignment to 256, the 224 crop
    for name in ("resnet18", "renet (one)", "renet (all)"):      # each model and both strategies
        line = next(row for row in out.splitlines() if row.startswith(name + " "))
        assert line.split()[-6] == "2"                             # the batch it ran at
    assert out.count("resuming ") == 3                            # a checkpoint and a resume each
    assert "scores [2, 12]" in out                                # RE-Net's all-AU test pass
    assert "peak RSS" in out and "s/step" in out
    # the dry run never writes into the user's run store; only the data cache is used
    assert not (tmp_path / "cache" / "runs").exists()
    assert (tmp_path / "cache" / "prepared").is_dir()
