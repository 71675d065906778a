"""Subject-exclusive 3-fold cross-validation (paper section 4.1).

BP4D and DISFA: the standard partitions used by JAA-Net (PyTorch-JAANet
``data/list/*_part{1,2,3}_path.txt``) and ME-GraphAU (``tool/*_image_label_process.py``),
transcribed here in their published order. Fold 1 trains on parts 1+2 and tests on part 3,
fold 2 tests on part 2, fold 3 tests on part 1.

BP4D+ has no standard AU split. Ours (``renet_core/resources/bp4dplus_folds.csv``, produced by
:func:`make_bp4dplus_parts`): within each sex, subjects in ID order are dealt round-robin to
parts 1, 2, 3 (F001 -> 1, F002 -> 2, F003 -> 3, F004 -> 1, ...; likewise M001...). That gives
parts of 48/46/46 subjects with 28/27/27 women and 20/19/19 men, the dataset's 82:58 ratio in
each part.
"""

from __future__ import annotations

import io
from importlib import resources

import pandas as pd

BP4D_PARTS = (
    "F001 M007 F018 F008 F002 M004 F010 F009 M012 M001 F016 M014 F023 M008".split(),
    "M011 F003 M010 M002 F005 F022 M018 M017 F013 M016 F020 F011 M013 M005".split(),
    "F007 F015 F006 F019 M006 M009 F012 M003 F004 F021 F017 M015 F014".split(),
)
DISFA_PARTS = (
    "SN002 SN010 SN001 SN026 SN027 SN032 SN030 SN009 SN016".split(),
    "SN013 SN018 SN011 SN028 SN012 SN006 SN031 SN021 SN024".split(),
    "SN003 SN029 SN023 SN025 SN008 SN005 SN007 SN017 SN004".split(),
)
BP4DPLUS_FOLDS_FILE = "bp4dplus_folds.csv"
#: fold k tests on this part (1-based); the other two parts are its training set
TEST_PART = {1: 3, 2: 2, 3: 1}


def make_bp4dplus_parts() -> pd.DataFrame:
    """The documented BP4D+ split: ``subject, sex, part`` (sex-balanced round-robin)."""
    rows = []
    for sex, count in (("F", 82), ("M", 58)):
        for i in range(count):
            rows.append({"subject": f"{sex}{i + 1:03d}", "sex": sex, "part": i % 3 + 1})
    return pd.DataFrame(rows)


def read_bp4dplus_parts() -> tuple[list[str], list[str], list[str]]:
    """The three BP4D+ parts read from ``renet_core/resources/bp4dplus_folds.csv``."""
    text = (resources.files("renet_core") / "resources" / BP4DPLUS_FOLDS_FILE).read_text()
    table = pd.read_csv(io.StringIO(text), dtype={"subject": str, "sex": str, "part": int})
    return tuple(table.loc[table["part"] == p, "subject"].tolist() for p in (1, 2, 3))


class _Folds(dict):
    """``FOLDS[name]`` -> three subject lists; BP4D+ is read from its CSV on first use."""

    def __missing__(self, key):
        if key == "bp4dplus":
            self[key] = read_bp4dplus_parts()
            return self[key]
        raise KeyError(f"no folds for dataset {key!r}; known: bp4d, disfa, bp4dplus")

    def keys(self):  # noqa: D401 - list every dataset, loaded or not
        return ["bp4d", "disfa", "bp4dplus"]

    def __contains__(self, key):
        return key in ("bp4d", "disfa", "bp4dplus")


FOLDS = _Folds(bp4d=BP4D_PARTS, disfa=DISFA_PARTS)


def split(index: pd.DataFrame, fold: int, dataset: str | None = None, parts=None):
    """``(train_df, test_df)`` for fold 1-3 (fold k tests on part ``TEST_PART[k]``).

    ``parts`` overrides ``FOLDS[dataset]`` (three subject lists). Every subject of the index must
    be in a part; no subject may be in both returned frames.
    """
    if fold not in TEST_PART:
        raise ValueError(f"fold must be 1, 2 or 3, got {fold!r}")
    dataset = dataset or index.attrs.get("dataset")
    if parts is None:
        if dataset is None:
            raise ValueError("split: the index has no attrs['dataset']; pass dataset= or parts=")
        parts = FOLDS[dataset]
    parts = [set(p) for p in parts]
    if len(parts) != 3:
        raise ValueError(f"expected three subject lists, got {len(parts)}")
    known = set().union(*parts)
    unknown = sorted(set(index["subject"].astype(str)) - known)
    if unknown:
        raise ValueError(f"subjects {unknown[:10]} are in no part of the {dataset} folds")
    test_subjects = parts[TEST_PART[fold] - 1]
    is_test = index["subject"].astype(str).isin(test_subjects)
    train, test = index.loc[~is_test].copy(), index.loc[is_test].copy()
    overlap = set(train["subject"]) & set(test["subject"])
    assert not overlap, f"subjects in both train and test: {sorted(overlap)}"
    for frame in (train, test):
        frame.attrs.update(index.attrs)
        frame.attrs["fold"] = fold
    return train, test
