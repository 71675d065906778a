"""The model variants behind the claims (issue 33): which (dataset, task, variant) each claim's
runs are, and the study's configs of one variant, one per fold. Read by the convergence ladder
(tools/convergence_curves.py) and the speed levers (tools/levers.py), so both measure the very
runs the study makes."""

from __future__ import annotations

from renet_core.study.board import claim_runs
from renet_core.study.configs import spec_configs, table_configs
from renet_core.study.tables import TABLES


def claim_variants(profile: str) -> list[tuple[str, str, str]]:
    """Every (dataset, task, variant) whose runs are behind a claim of the scoreboard, in order."""
    cfgs = [c for runs in claim_runs(table_configs(profile)).values() for c in runs]
    return list(dict.fromkeys((c.dataset, c.task, c.method_name()) for c in cfgs))


def variant_configs(profile: str, dataset: str, task: str, variant: str, folds, roots=None) -> list:
    """The study's configs of ``variant`` (a table row's method name) on (dataset, task), one per fold."""
    for spec in TABLES.values():
        if (spec.dataset, spec.task) != (dataset, task):
            continue
        for key, cfgs in spec_configs(spec, profile, (roots or {}).get(dataset), list(folds)).items():
            if cfgs[0].method_name() == variant:
                return cfgs
    known = [v for d, t, v in claim_variants(profile) if (d, t) == (dataset, task)]
    raise ValueError(f"no table row of {dataset} {task} is the variant {variant!r}; the claims' variants there: {known}")
