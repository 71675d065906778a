"""Layer 3, the engine: a run's config (:mod:`.config`, :mod:`.profiles`), identity
(:mod:`.identity`), data splits (:mod:`.splits`), training loop (:mod:`.loop`, :mod:`.precision`,
:mod:`.evaluate`, :mod:`.resume`), execution (:mod:`.execute`, :mod:`.run`), the offline stand-in
backbone (:mod:`.standin`), the results store (:mod:`.store`) and its runs' records between
machines (:mod:`.archive`). Imports the layers below only.

    from renet_core.engine import ExperimentConfig, run
    result = run(ExperimentConfig.build(profile="smoke", dataset="bp4d", model="renet"))
"""

from renet_core.engine.config import ExperimentConfig
from renet_core.engine.execute import RunResult, evaluate, evaluate_model
from renet_core.engine.identity import ROOT_ENV, fingerprints_once
from renet_core.engine.profiles import PROFILE_NAMES, get_profile, profile_setting
from renet_core.engine.run import cross_validate, run
from renet_core.engine.splits import Splits, dataset_root, label_columns, load_splits, synth_twin
from renet_core.engine.store import ResultsStore, summary_table

__all__ = ["ExperimentConfig", "RunResult", "run", "evaluate", "evaluate_model", "cross_validate", "Splits",
           "load_splits", "dataset_root", "label_columns", "synth_twin", "ResultsStore", "summary_table",
           "fingerprints_once", "ROOT_ENV", "PROFILE_NAMES", "get_profile", "profile_setting"]
