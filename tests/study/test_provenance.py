"""Reading the runs' environments where results are read (renet_core.study.provenance, issue 32):
a table's data source names them and says when they are mixed, run_all's copy writes
<profile>_environments.csv beside <profile>_runs.csv, and results/README.md lists them."""

from __future__ import annotations

import json

import pandas as pd

from renet_core import study
from renet_core.base.environment import environment_key, environment_record, write_environment
from renet_core.engine import ResultsStore
from renet_core.runall.index import copy_store_rows
from renet_core.study import provenance


def _record(**change) -> dict:
    return dict(environment_record(device="cpu", threads=2, precision="float32"), **change)


def _store_with_runs(root, runs: dict) -> ResultsStore:
    """A store whose finished runs ``{hash: record or None}`` each have one result row."""
    store = ResultsStore(root)
    rows = pd.DataFrame([{"dataset": "bp4d", "task": "occurrence", "method": "renet", "fold": 1, "au": 1,
                          "metric": "f1", "seed": 0, "value": 0.5, "config_hash": h} for h in runs])
    store.add_rows(rows)
    for h, record in runs.items():
        store.mark_done(h, {"finished": "2026-01-01 00:00:00"})
        if record is not None:
            write_environment(store.run_dir(h), record)
    return store


def test_one_environment_is_named_with_its_processor():
    record = _record()
    record["key"] = environment_key(record)
    label, text = provenance.table_environments({"a": record, "b": dict(record)})
    assert label == record["key"]
    assert "2 runs" in text and record["processor"] in text and "mixes" not in text


def test_a_table_of_two_environments_says_it_mixes_them():
    amx, other = _record(), _record(isa_flags="avx2 fma", processor="AMD EPYC 7763")
    for r in (amx, other):
        r["key"] = environment_key(r)
    label, text = provenance.table_environments({"a": amx, "b": other, "c": None})
    assert label.startswith("3 environments (mixed)") and amx["key"] in label and other["key"] in label
    assert "not recorded" in label
    assert "mixes 3 environments" in text and "AMD EPYC 7763" in text and "environment not recorded" in text


def test_runs_without_a_record_say_so():
    label, text = provenance.table_environments({"a": None})
    assert label == "environment not recorded" and "1 run: environment not recorded" in text


def test_config_run_dirs_follow_each_configs_store(tmp_path):
    class Cfg:
        def __init__(self, h, root):
            self.h, self.results_dir = h, root

        def config_hash(self):
            return self.h

    dirs = provenance.config_run_dirs({"renet": [Cfg("aa", tmp_path / "s1")], "resnet": [Cfg("bb", tmp_path / "s2")]})
    assert dirs == {"aa": tmp_path / "s1" / "runs" / "aa", "bb": tmp_path / "s2" / "runs" / "bb"}


def test_copy_store_rows_writes_the_environments_and_keeps_committed_ones(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    committed = _record(processor="Committed CPU", isa_flags="avx2")
    old = provenance.environment_rows({"cc": dict(committed, key=environment_key(committed)),
                                       "aa": None})
    old.to_csv(results / "smoke_environments.csv", index=False)
    before = _record(threads=4)
    here = _record(earlier=[before])   # a run resumed in another environment (the engine keeps the first)
    store = _store_with_runs(tmp_path / "store", {"aa": here, "bb": None})
    copy_store_rows("smoke", results, store.root)
    envs = pd.read_csv(results / "smoke_environments.csv", dtype={"config_hash": str}).set_index("config_hash")
    assert sorted(envs.index) == ["aa", "bb", "cc"]
    assert envs.loc["aa", "environment"] == environment_key(here)            # this store's record replaces
    assert envs.loc["bb", "environment"] == provenance.NOT_RECORDED
    assert envs.loc["cc", "processor"] == "Committed CPU"                    # made elsewhere: kept
    assert envs.loc["aa", "earlier"] == environment_key(before) and pd.isna(envs.loc["bb", "earlier"])
    assert envs.loc["aa", "isa_flags"] == here["isa_flags"] and envs.loc["aa", "torch"] == here["torch"]
    assert (results / "smoke_runs.csv").is_file()


def test_readme_section_lists_each_environment_and_its_runs(tmp_path):
    a, b = _record(), _record(threads=8, commit="f" * 40, dirty=True)
    frame = provenance.environment_rows({"r1": dict(a, key=environment_key(a)), "r2": dict(a, key=environment_key(a)),
                                         "r3": dict(b, key=environment_key(b)), "r4": None})
    frame.to_csv(tmp_path / "demo_environments.csv", index=False)
    text = provenance.environments_section(tmp_path, "demo")
    assert "## Environments behind the results" in text and "from 3 environments" in text
    summary = provenance.summarise_environments(provenance.read_environments_csv(tmp_path / "demo_environments.csv"))
    by_key = summary.set_index("environment")
    assert by_key.loc[environment_key(a), "runs"] == 2 and by_key.loc[environment_key(b), "threads"] == "8"
    assert by_key.loc[environment_key(b), "commits"] == "ffffffffffff + changes"
    assert by_key.loc[provenance.NOT_RECORDED, "runs"] == 1
    assert environment_key(a) in text and a["processor"] in text
    assert provenance.environments_section(tmp_path, "paper") == ""   # no file: no section


def test_a_damaged_environments_csv_is_named(tmp_path):
    (tmp_path / "demo_environments.csv").write_text(json.dumps({"not": "a csv"}))
    text = provenance.environments_section(tmp_path, "demo")
    assert "Not read" in text and "demo_environments.csv" in text


def test_a_reproduced_table_names_its_environments(synth_roots, tmp_path):
    """Table 4 on one smoke fold: its runs' environment.json (as the engine writes them, or two
    different ones) are named in its data source and its Markdown, a mix in bold."""
    kwargs = dict(roots={"bp4d": synth_roots["bp4d"]}, folds=[1], store_dir=tmp_path / "store",
                  tables_dir=tmp_path / "tables", device="cpu")
    first = study.reproduce("table4", "smoke", **kwargs)
    configs = study.spec_configs(study.TABLES["table4"], "smoke", synth_roots["bp4d"], [1], tmp_path / "store")
    dirs = provenance.config_run_dirs(configs)
    assert len(dirs) == 2
    engine_wrote = all((d / "environment.json").is_file() for d in dirs.values())
    if not engine_wrote:
        assert "environment not recorded" in first.table["data source"].iloc[-1]
    records = [_record(), _record(processor="AMD EPYC 7763", isa_flags="avx2 fma")]
    for folder, record in zip(dirs.values(), records):
        write_environment(folder, record)
    again = study.reproduce("table4", "smoke", **kwargs)   # the runs are reused, their records read
    sources = again.table.loc[again.table["row"] == "this run", "data source"]
    for record in records:   # each row names the environment of its own runs
        assert sources.str.contains(environment_key(record)).sum() == 2   # ICC and MAE
    assert "2 environments (mixed)" in again.source   # the README's one source per table says the mix
    assert "**This table mixes 2 environments**" in again.markdown and "AMD EPYC 7763" in again.markdown
