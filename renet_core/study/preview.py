"""The preview profile's word in every output (issue 33, "Two ways to run").

``./run_all.sh --profile preview`` runs the whole study quickly: the demo's data and settings,
far fewer steps a run (:mod:`renet_core.engine.profiles`). Its runs are judged against the
demo's measured budgets (the profile's ``budgets_from``, :func:`renet_core.study.budgets.budgets_profile`)
and are far below them, so a preview is never the converged study. Here, stated once:

* :func:`notice`: the line every preview table, the scoreboard and ``results/README.md`` carry
  (empty for any other profile);
* :func:`source_mark`: the words added to a preview output's data source (the README's index);
* :func:`preview_mark`: a claim's convergence mark under a preview: never converged, with the
  rule's own reasons (e.g. "renet 100 < 2815 steps", "no budget measured for renet").
"""

from __future__ import annotations

from renet_core.engine import get_profile, profile_setting
from renet_core.study.budgets import budgets_profile

#: Added to a preview output's data source.
SOURCE_MARK = "preview profile: not converged"


def is_preview(profile: str | None) -> bool:
    """Whether ``profile`` is a preview (its ``preview`` setting); False for None."""
    return bool(profile) and bool(profile_setting(profile, "preview"))


def run_steps(profile: str) -> int | None:
    """Steps a run of ``profile`` trains (its ``epochs`` x ``steps_per_epoch``; None when not capped)."""
    cfg = get_profile(profile)
    return cfg["epochs"] * cfg["steps_per_epoch"] if cfg.get("steps_per_epoch") else None


def notice(profile: str | None) -> str:
    """The preview's line for a table's header and the README's: what it is, that none of its
    verdicts is converged, and what to run for the converged study. "" for any other profile."""
    if not is_preview(profile):
        return ""
    steps = run_steps(profile)
    budget = f"{steps} steps a run" if steps else "a short schedule"
    source = budgets_profile(profile)
    return (f"**Preview, not converged.** Made by the `{profile}` profile (`./run_all.sh --profile {profile}`): "
            f"the {source} profile's data and settings at {budget}, far below the converged budgets measured for "
            f"the {source} profile's runs (`renet_core/resources/converged_budgets.csv`), so none of its numbers "
            "or verdicts is converged: it shows that the whole study runs, quickly. For the converged study "
            "(the committed `results/` and `figures/`) run `./run_all.sh`.")


def source_mark(profile: str | None, source: str) -> str:
    """``source`` with :data:`SOURCE_MARK` added under a preview; unchanged otherwise."""
    return f"{source}; {SOURCE_MARK}" if is_preview(profile) else source


def preview_mark(profile: str | None, mark: tuple[bool, str]) -> tuple[bool, str]:
    """A claim's ``(converged?, why not)`` under ``profile``: unchanged for any profile but a
    preview; under a preview never converged, by construction: the rule's reasons where it has
    them, else (every run at or above its budget) that a preview is not the study."""
    if not is_preview(profile):
        return mark
    converged, why = mark
    if not converged:
        return False, why
    source = budgets_profile(profile)
    return False, (f"preview: its runs reach the {source} profile's measured budgets, but a preview is never "
                   "the converged study (run ./run_all.sh)")
