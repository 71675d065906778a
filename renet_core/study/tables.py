"""The study's tables, declared once as data: what each table and figure of the paper compares.

A :class:`TableSpec` says what a paper table compares: its dataset and task, and one :class:`Row`
per compared method -- a display label, the paper's row label, and the
:class:`renet_core.engine.ExperimentConfig` fields that make the run (e.g.
``{"model": "renet", "holdout_aus": [23]}``). :mod:`renet_core.study.configs` turns a spec into
run configs; :func:`renet_core.study.reproduce` runs them and builds the table.

Every F1 table also carries two chance rows (:data:`CHANCE_ROWS`) computed from the test labels
of its own runs: always-positive (predict every AU present: F1 = 2p / (1 + p) for an AU of
positive rate p, :func:`renet_core.base.metrics.always_positive_f1`) and the label prior
(predict each AU present at random with its positive rate: expected F1 = p).
"""

from __future__ import annotations

from dataclasses import dataclass

from renet_core.data.labels import PAPER_AUS, RARE_AUS


@dataclass(frozen=True)
class Row:
    """One compared method of a table: ``key`` names it in the table's tidy rows (the column
    ``entry``), ``config`` holds the ExperimentConfig overrides that make its runs."""

    key: str
    label: str
    config: dict
    paper: str | None = None          # the paper's row label, None where the paper has no row
    remark: str = ""
    steps_scale: float | str = 1.0    # x the profile's steps_per_epoch (when it sets one); "1/C": / the AU count

    def scale(self, n_aus: int) -> float:
        """``steps_scale`` as a number for a run of ``n_aus`` AUs ("1/C" is 1 / n_aus)."""
        if self.steps_scale == "1/C":
            return 1.0 / n_aus
        if isinstance(self.steps_scale, str):
            raise ValueError(f"row {self.key}: steps_scale={self.steps_scale!r}; expected a number or '1/C'")
        return float(self.steps_scale)


@dataclass(frozen=True)
class TableSpec:
    """A paper table (section 4): what it compares, on which data, with which metrics."""

    name: str
    paper_table: str
    title: str
    dataset: str
    task: str
    rows: tuple[Row, ...]
    metrics: tuple[str, ...] = ("f1",)
    remarks: tuple[str, ...] = ()
    chance: bool = True               # always-positive and label-prior rows (F1 tables)
    paper_only: bool = True           # the paper's other compared methods, as printed

    @property
    def aus(self) -> list[int]:
        return list(PAPER_AUS[(self.dataset, self.task)])

    def row(self, key: str) -> Row:
        for r in self.rows:
            if r.key == key:
                return r
        raise KeyError(f"{self.name} has no row {key!r}; rows: {[r.key for r in self.rows]}")


_RESNET = Row("resnet18", "ResNet-18", {"model": "resnet18"}, "ResNet18")
_RENET = Row("renet", "RE-Net (ours)", {"model": "renet"}, "Ours")
_INTENSITY = (Row("resnet18", "ResNet-18", {"model": "resnet18"}, None, "not in the paper's table"), _RENET)
#: Table 8's augmentation: frames positive for any of these AUs are duplicated (section 4.6).
DUPLICATED_AUS = list(RARE_AUS)

TABLES: dict[str, TableSpec] = {spec.name: spec for spec in (
    TableSpec("table1", "1", "Table 1: AU detection F1 (%) on BP4D, 12 AUs", "bp4d", "occurrence", (_RESNET, _RENET)),
    TableSpec("table2", "2", "Table 2: AU detection F1 (%) on DISFA, 8 AUs", "disfa", "occurrence", (_RESNET, _RENET)),
    TableSpec("table3", "3", "Table 3: AU detection F1 (%) on BP4D+, 12 AUs", "bp4dplus", "occurrence",
              (_RESNET, _RENET)),
    TableSpec("table4", "4", "Table 4: AU intensity ICC(3,1) and MAE on BP4D, 5 AUs", "bp4d", "intensity",
              _INTENSITY, metrics=("icc", "mae"), chance=False),
    TableSpec("table5", "5", "Table 5: AU intensity ICC(3,1) and MAE on DISFA, 12 AUs", "disfa", "intensity",
              _INTENSITY, metrics=("icc", "mae"), chance=False),
    TableSpec(
        "table6", "6", "Table 6: RE-Net F1 (%) on BP4D with one AU removed from training (Eq. 4-5 transfer)",
        "bp4d", "occurrence",
        (Row("renet-unseenAU23", "RE-Net, AU23 unseen", {"model": "renet", "holdout_aus": [23]}, "Ours (row 1)",
             "paper row 1; that AU23 is its removed AU is an assumption (see notes)"),
         Row("renet-unseenAU24", "RE-Net, AU24 unseen", {"model": "renet", "holdout_aus": [24]}, "Ours (row 2)",
             "paper row 2; that AU24 is its removed AU is an assumption (see notes)"),
         Row("renet", "RE-Net, all AUs trained", {"model": "renet"}, None, "reference: Table 1 setting")),
        remarks=("The paper marks the removed AU by colour, which the text source lost; row 1 is taken to "
                 "remove AU23 and row 2 AU24 (the lower of the two in each row).",
                 "Compare each unseen AU with the always-positive row: a transferred AU is only "
                 "recognised where it beats that.")),
    TableSpec(
        "table7", "7", "Table 7: where the AU relation is applied, F1 (%) on BP4D", "bp4d", "occurrence",
        (Row("resnet18", "ResNet-18 (no relation)", {"model": "resnet18"}, "ResNet18"),
         Row("renet-none", "RE-Net, Eq. 3 only (AU-specific BN, no relation)",
             {"model": "renet", "relation_mode": "none"}, None, "section 4.6 discusses it; no number printed"),
         Row("renet", "RE-Net, fixed PCC relation", {"model": "renet"}, "Ours"),
         Row("renet-learnable", "RE-Net, learnable relation", {"model": "renet", "relation_mode": "learnable"},
             "Ours+learnable")),
        remarks=("The paper's Table 7 gives only the Avg column; the AU columns of this run are shown "
                 "for completeness.",)),
    TableSpec(
        "table8", "8", "Table 8: data augmentation (duplication of AU1, 2, 15, 23, 24) ablation, F1 (%) on BP4D",
        "bp4d", "occurrence",
        (Row("resnet18", "ResNet-18 w/o DA", {"model": "resnet18"}, "ResNet18 w/o DA",
             "row empty in the paper's text source"),
         Row("resnet18+DA", "ResNet-18 + DA", {"model": "resnet18", "duplicate_aus": DUPLICATED_AUS},
             "ResNet18 + DA", "row empty in the paper's text source"),
         Row("renet", "RE-Net w/o DA", {"model": "renet"}, "Ours w/o DA"),
         Row("renet+DA", "RE-Net + DA", {"model": "renet", "duplicate_aus": DUPLICATED_AUS}, "Ours + DA",
             "row missing from the paper's text source")),
        remarks=("Only the paper's 'Ours w/o DA' row survives in the text source; the text says ResNet18 "
                 "gains 1.3 F1 with DA and RE-Net changes by 0.1.",)),
    TableSpec(
        "strategies", "3.4", "Section 3.4: RE-Net's two training strategies, F1 (%) on BP4D", "bp4d", "occurrence",
        (Row("renet", "RE-Net, one random AU per batch (strategy 2, the paper's)", {"model": "renet"}),
         Row("renet-all", "RE-Net, every AU every batch (strategy 1)", {"model": "renet", "strategy": "all"},
             None, "1/C of the steps where the profile caps them (C = 12 AUs): each step runs all C AUs, so "
             "every AU is trained as often as in strategy 2, at about the same compute", steps_scale="1/C")),
        remarks=("The paper reports no numbers, only 'no big difference in performance as using two "
                 "training strategies' (section 3.4).",), paper_only=False),
)}

#: The detection / intensity table of each dataset (notebooks 01 and 02 take a dataset).
TABLE_OF = {("occurrence", "bp4d"): "table1", ("occurrence", "disfa"): "table2",
            ("occurrence", "bp4dplus"): "table3", ("intensity", "bp4d"): "table4", ("intensity", "disfa"): "table5"}


def table_name(task: str, dataset: str) -> str:
    """The paper table of (``task``, ``dataset``), e.g. ("occurrence", "disfa") -> "table2"."""
    if (task, dataset) not in TABLE_OF:
        raise ValueError(f"the paper has no {task} table for {dataset!r}; it has {sorted(TABLE_OF)}")
    return TABLE_OF[(task, dataset)]


CHANCE_ROWS = (Row("always-positive", "Always positive (chance)", {}, None,
                   "predicts every AU present; F1 = 2p/(1+p), p = test positive rate"),
               Row("label-prior", "Label prior (chance)", {}, None,
                   "predicts each AU present at random with its test rate; expected F1 = p"))
#: The entries of :data:`CHANCE_ROWS`.
CHANCE_ENTRIES = tuple(r.key for r in CHANCE_ROWS)
#: Fig. 3's AUs: the four the paper shows.
TSNE_AUS = [4, 10, 12, 24]
