"""Layer 4, the study: every table and figure of the paper declared once as data
(:mod:`.tables`), turned into runs (:mod:`.configs`), reproduced by one call (:mod:`.reproduce`),
reported beside the paper's values (:mod:`.report`, :mod:`.paper`), judged claim by claim
(:mod:`.claims`, :mod:`.board`), drawn (:mod:`.figures`), studied over training time
(:mod:`.dynamics`), and the relation's premise tested on SynthAU's coupling levels
(:mod:`.premise`, :mod:`.premise_analysis`, notebook 11). Imports the engine and the layers
below it, never an entry point.

    from renet_core import study
    out = study.reproduce("table1", profile="demo")
"""

from renet_core.study.board import finished_rows, scoreboard
from renet_core.study.configs import (
                                      au_steps,
                                      chance_rows,
                                      config,
                                      default_folds,
                                      default_store,
                                      parity_steps,
                                      run_configs,
                                      select_rows,
                                      spec_configs,
                                      table_configs,
                                      training_budget,
                                      under_trained,
)
from renet_core.study.figures import feature_inputs
from renet_core.study.reproduce import (
                                      FIGURES,
                                      Reproduced,
                                      measure_efficiency,
                                      output_entry,
                                      record_outputs,
                                      relation_matrices,
                                      reproduce,
                                      tsne_inputs,
)
from renet_core.study.tables import (
                                      CHANCE_ENTRIES,
                                      CHANCE_ROWS,
                                      DUPLICATED_AUS,
                                      TABLE_OF,
                                      TABLES,
                                      TSNE_AUS,
                                      Row,
                                      TableSpec,
                                      table_name,
)

__all__ = ["reproduce", "Reproduced", "FIGURES", "TABLES", "TABLE_OF", "TableSpec", "Row", "CHANCE_ROWS",
           "CHANCE_ENTRIES", "DUPLICATED_AUS", "TSNE_AUS", "table_name", "config", "spec_configs", "table_configs",
           "default_folds", "default_store", "parity_steps", "au_steps", "under_trained", "training_budget",
           "select_rows", "run_configs", "chance_rows", "finished_rows", "scoreboard", "feature_inputs",
           "measure_efficiency", "output_entry", "record_outputs", "relation_matrices", "tsne_inputs"]
