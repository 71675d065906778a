"""Issue 21 (reliability round 3), run_all: a partial run of another profile, or on a cache
without the committed runs, never wipes the committed scoreboard and the README's links stay in
the repository (case 7); ``--only`` matches whole names (case 10); the commit stamp counts code,
notebooks and configs only (case 11)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from renet_core.runall import index, jobs

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"


@pytest.fixture(autouse=True)
def _no_real_roots(monkeypatch, tmp_path):
    for var in ("RENET_BP4D", "RENET_DISFA", "RENET_BP4DPLUS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RENET_CACHE", str(tmp_path / "cache"))


# ----------------------------------------------------------------------------- case 10

def test_only_matches_whole_job_names():
    every = jobs.discover_jobs(NOTEBOOKS)

    def chosen(*only):
        return [j.name for j in jobs.select_jobs(every, list(only))]

    assert chosen("01_detection_bp4d") == ["01_detection_bp4d"]            # not also ..._bp4dplus
    assert chosen("01_detection_bp4dplus") == ["01_detection_bp4dplus"]
    assert chosen("01_detection") == ["01_detection_bp4d", "01_detection_disfa", "01_detection_bp4dplus"]
    assert chosen("01_*") == chosen("01_detection") and chosen("0[12]_*_disfa") == [
        "01_detection_disfa", "02_intensity_disfa"]
    assert chosen("04_relation") == ["04_relation_ablation"]                # an unambiguous start
    assert chosen("07_tsne", "06_relation_matrices") == ["06_relation_matrices", "07_tsne"]
    with pytest.raises(SystemExit, match=r"start of several jobs' names .*01_detection_bp4dplus.*'01_detection_bp\*'"):
        chosen("01_detection_bp")
    with pytest.raises(SystemExit, match="matches no notebook"):
        chosen("99_nothing")


# ----------------------------------------------------------------------------- case 11

def test_the_commit_stamp_ignores_results_and_figures(tmp_path):
    repo = tmp_path / "repo"
    for rel in ("renet_core/code.py", "notebooks/01.ipynb", "results/table1.md", "figures/fig.png",
                "results/notebooks/01.status.json", "docs/notes.md"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("v1\n")

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                       capture_output=True)

    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "one")
    assert "uncommitted" not in index.git_commit(repo)
    for rel in ("results/table1.md", "figures/fig.png", "results/notebooks/01.status.json"):
        (repo / rel).write_text("rewritten by run_all\n")
    assert "uncommitted" not in index.git_commit(repo)
    (repo / "notebooks/01.ipynb").write_text("v2\n")
    assert index.git_commit(repo).endswith("+ uncommitted changes")
    git("checkout", "--", "notebooks")
    (repo / "renet_core/code.py").write_text("v2\n")
    assert index.git_commit(repo).endswith("+ uncommitted changes")


# ----------------------------------------------------------------------------- case 7

def _committed(results: Path, folder: str = "notebooks/records") -> tuple[str, pd.DataFrame]:
    """A results folder as committed by a full demo run: README (provenance line, claims),
    claims.csv, total.json and one notebook's status, the records in ``folder`` (``notebooks``:
    the layout before issue 32 moved them to ``notebooks/records``)."""
    records = results / folder
    records.mkdir(parents=True)
    board = pd.read_csv(REPO / "results" / "claims.csv")
    board.to_csv(results / "claims.csv", index=False)
    line = "- runs behind the tables: 21; the last full run trained 21 (all of them: a fresh cache)"
    (results / "README.md").write_text(f"# Regenerated tables and figures\n\n{line}\n")
    (records / "total.json").write_text(json.dumps(
        {"seconds": 60.0, "notebooks": 14, "profile": "demo", "commit": "abc", "finished": "2026-01-01 10:00:00"}))
    (records / "01_detection_bp4d.status.json").write_text(json.dumps(
        {"name": "01_detection_bp4d", "notebook": "01_detection.ipynb", "status": "ok", "seconds": 10.0,
         "error": "", "profile": "demo", "commit": "abc", "finished": "2026-01-01 10:00:00", "gpu": None}))
    (records / "01_detection_bp4d.outputs.json").write_text(json.dumps(
        [{"name": "table1", "path": "/elsewhere/checkout/results/table1.md", "data_source": "SynthAU", "kind": "table"}]))
    return line, board


@pytest.mark.parametrize("folder", ["notebooks/records", "notebooks"])
@pytest.mark.parametrize("profile", ["smoke", "demo"])
def test_a_partial_run_keeps_the_committed_scoreboard(tmp_path, profile, folder):
    results, store = tmp_path / "results", tmp_path / "empty-store"
    line, board = _committed(results, folder)
    index.write_readme(results, ["01_detection_bp4d", "06_relation_matrices"], profile, store)
    kept = pd.read_csv(results / "claims.csv")
    pd.testing.assert_frame_equal(kept[["claim", "verdict", "difference"]], board[["claim", "verdict", "difference"]])
    readme = (results / "README.md").read_text()
    assert line in readme
    assert "**not run**" not in readme and "**does not hold**" in readme
    assert "[table1](table1.md)" in readme                       # an old absolute path, rebased here


def test_committed_manifests_hold_paths_inside_the_repository():
    manifests = sorted((REPO / "results" / "notebooks" / "records").glob("*.outputs.json"))
    assert manifests
    for manifest in manifests:
        for output in json.loads(manifest.read_text()):
            assert not Path(output["path"]).is_absolute(), (manifest.name, output["path"])
            target = (manifest.parent / output["path"]).resolve()
            assert target.is_relative_to(REPO) and target.is_file(), (manifest.name, output["path"])
    assert index.output_path("../table1.md", REPO / "results") == REPO / "results" / "notebooks" / "../table1.md"
    records = REPO / "results" / "notebooks" / "records"
    assert index.output_path("../../table1.md", REPO / "results", records) == records / "../../table1.md"
    assert index.output_path("/x/y/figures/f.png", REPO / "results") == REPO / "figures" / "f.png"
