"""The claims already decidable at convergence (issue 33), from the runs in the store; trains nothing.

The converged study (``per_run_budgets`` on) is regenerated once every budget is measured; until
then this page shows, for each claim whose every run exists at its variant's measured budget
(``renet_core/resources/converged_budgets.csv``), the scoreboard row that study will show: the
same code (:func:`renet_core.study.board.scoreboard` with the profile's ``per_run_budgets``
switched on for this process only), the same runs by identity, listed under the table. Claims
with a run not yet at its budget are left out (the committed scoreboard, results/README.md, still
shows every claim at the demo's 1250 steps).

    RENET_CACHE=/work/cache python tools/converged_so_far.py          # writes results/converged_so_far.{md,csv}
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from pathlib import Path

from renet_core.base.io import to_csv_atomic, write_text_atomic
from renet_core.engine import profiles
from renet_core.study import board, claims
from renet_core.study.budgets import au_steps
from renet_core.study.configs import table_configs


@contextmanager
def per_run_budgets(profile: str):
    """The profile trains (here: looks up) each run at its recorded budget, for this block only."""
    saved = profiles.PROFILES[profile]["per_run_budgets"]
    profiles.PROFILES[profile]["per_run_budgets"] = True
    try:
        yield
    finally:
        profiles.PROFILES[profile]["per_run_budgets"] = saved


def converged_claims(profile: str = "demo", store_dir=None):
    """``(board rows of the converged claims, {claim: [(variant, fold, steps, identity), ...]}, [claim, ...])``:
    the last, claims whose variants all have budgets but that the store cannot score: a run at its
    budget not trained yet, or records without the test features Fig. 3's silhouette reads (an
    imported record leaves them out: :mod:`renet_core.engine.archive`)."""
    with per_run_budgets(profile):
        full = board.scoreboard(profile, store_dir)
        runs = board.claim_runs(table_configs(profile, store_dir))
    converged = full["converged"].astype(bool)
    done = full[converged & (full["verdict"] != "not run")].reset_index(drop=True)
    unscored = list(full.loc[converged & (full["verdict"] == "not run"), "claim"])
    behind = {c: sorted({(cfg.method_name(), cfg.fold, au_steps(cfg), cfg.config_hash()) for cfg in runs[c]})
              for c in list(done["claim"]) + unscored}
    return done, behind, unscored


def page(done, behind, profile: str, unscored=()) -> str:
    lines = [f"# Claims decided at convergence so far ({profile} profile, issue 33)", "",
             "Made by `python tools/converged_so_far.py`: the claims whose every run trained at least its "
             "variant's measured budget (`renet_core/resources/converged_budgets.csv`), scored by the study's own "
             "scoreboard code on those runs, read from the store (nothing trained). The converged study itself "
             "(every claim, `./run_all.sh` with per-run budgets on) is regenerated once every budget is measured; "
             "until then `results/README.md` shows the demo's 1250-step runs.", ""]
    if done.empty:
        lines += ["No claim has all its runs at their measured budgets yet.", ""]
    else:
        lines += [claims.render(done).replace("## Claims scoreboard\n\n", "", 1), "## The runs behind each claim", ""]
        for claim in done["claim"]:
            rows = behind.get(claim, [])
            lines.append(f"- {claim}: " + "; ".join(f"{v} fold {f}, {s} one-AU steps, run {h}" for v, f, s, h in rows))
        lines.append("")
    if unscored:
        lines += ["## At their budgets but not scored from the store", "",
                  "Every variant of these claims has its budget measured, but the store cannot score them: a run at "
                  "its budget is not trained yet, or (Fig. 3's silhouette) its record holds no test features (a record "
                  "imported from `results/archive` before 2026-12-08 left them out; `./run_all.sh` retrains such runs "
                  "before Table 1 reads them, and `archive export` now keeps Fig. 3's runs' features):", ""]
        lines += [f"- {claim}" + (": " + "; ".join(f"{v} fold {f}, run {h}" for v, f, _, h in behind.get(claim, []))
                                  if behind.get(claim) else "") for claim in unscored]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="demo")
    p.add_argument("--out", default="results", help="folder for converged_so_far.md and .csv (default: results)")
    a = p.parse_args(argv)
    done, behind, unscored = converged_claims(a.profile)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    text = page(done, behind, a.profile, unscored)
    to_csv_atomic(done, out / "converged_so_far.csv", index=False)
    write_text_atomic(out / "converged_so_far.md", text)
    print(text)


if __name__ == "__main__":
    main()
