"""AU label files of BP4D, DISFA and BP4D+: parsing, codes and validation.

Paper section 4.1: 12 AUs on BP4D and BP4D+, 8 of DISFA's 12 AUs "with intensity greater than 0"
for detection; 5 BP4D AUs and 12 DISFA AUs for intensity (Tables 4, 5).

Codes (see docs/reproduction-notes.md, "Data layer"):

* occurrence files (BP4D, BP4D+): 0 = absent, 1 = present, **9 = unknown** -> NaN, never a
  negative;
* intensity files (BP4D, BP4D+, DISFA): 0-5; 9 = invalid -> NaN (BP4D/BP4D+ only; DISFA has
  no 9 code, so a 9 there is rejected as outside the codes).

Every reader raises :class:`LabelFileError` naming the file and what was expected.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

BP4D_AUS = [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24]
BP4D_INTENSITY_AUS = [6, 10, 12, 14, 17]
BP4DPLUS_AUS = list(BP4D_AUS)
BP4DPLUS_INTENSITY_AUS = list(BP4D_INTENSITY_AUS)
DISFA_AUS = [1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26]
DISFA_DETECTION_AUS = [1, 2, 4, 6, 9, 12, 25, 26]
DISFA_INTENSITY_AUS = list(DISFA_AUS)

#: the AUs each dataset is evaluated on (paper section 4.1)
DETECTION_AUS = {"bp4d": BP4D_AUS, "disfa": DISFA_DETECTION_AUS, "bp4dplus": BP4DPLUS_AUS}
INTENSITY_AUS = {"bp4d": BP4D_INTENSITY_AUS, "disfa": DISFA_INTENSITY_AUS,
                 "bp4dplus": BP4DPLUS_INTENSITY_AUS}
#: AU lists of the paper's tables (Tables 1-5), per (dataset, task): the datasets' detection AUs
#: and the intensity AUs of the two intensity tables.
PAPER_AUS = {
    **{(ds, "occurrence"): list(aus) for ds, aus in DETECTION_AUS.items()},
    **{(ds, "intensity"): list(INTENSITY_AUS[ds]) for ds in ("bp4d", "disfa")},
}
#: BP4D's rare AUs, whose frames section 4.6 duplicates (Table 8) and whose F1 its claim is about.
RARE_AUS = (1, 2, 15, 23, 24)

UNKNOWN_CODE = 9
#: a header with at least this many columns may be read by position (legacy ``0,1,...,99``)
POSITIONAL_MIN_COLUMNS = 50
_AU_NAME = re.compile(r"^\s*(?:AU)?\s*0*(\d+)\s*$", re.IGNORECASE)


class LabelFileError(ValueError):
    """A label file that does not have the expected header, shape or codes."""


def occ_col(au: int) -> str:
    """Occurrence column name: ``AU12``."""
    return f"AU{int(au)}"


def int_col(au: int) -> str:
    """Intensity column name: ``AU12_int``."""
    return f"AU{int(au)}_int"


def parse_au_name(name: str) -> int | None:
    """``"12"``, ``"AU12"``, ``"au012"`` -> 12; anything else -> None."""
    match = _AU_NAME.match(str(name).strip().strip('"').strip("'"))
    return int(match.group(1)) if match else None


def _read_rows(path: Path, skip_header: bool) -> np.ndarray:
    """All data rows of a comma-separated numeric file as a float array (rows x columns)."""
    try:  # fast path: well-formed files (the slow path below only explains what is wrong)
        with open(path, encoding="utf-8-sig") as fh:
            lines = fh.read().splitlines()[int(skip_header):]
        rows = [line.rstrip().rstrip(",").split(",") for line in lines if line.strip()]
        if not rows:
            return np.zeros((0, 0))
        return np.array(rows, dtype=float)
    except (ValueError, UnicodeDecodeError):
        pass
    return _read_rows_slow(path, skip_header)


def _read_rows_slow(path: Path, skip_header: bool) -> np.ndarray:
    try:
        table = pd.read_csv(path, header=None, skiprows=1 if skip_header else 0,
                            skipinitialspace=True, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        return np.zeros((0, 0))
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise LabelFileError(f"{path}: not a comma-separated table of numbers ({exc})") from exc
    table = table.loc[:, ~(table == "").all(axis=0)]  # trailing comma -> empty column
    values = table.apply(lambda col: pd.to_numeric(col.str.strip(), errors="coerce"))
    bad = values.isna().to_numpy()
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        line = row + 1 + int(skip_header)
        raise LabelFileError(f"{path}: line {line}, column {col + 1}: expected a number, "
                             f"found {table.iat[row, col]!r}")
    return values.to_numpy(dtype=float)


def _frames(path: Path, column: np.ndarray) -> np.ndarray:
    if not np.all(column == np.round(column)) or (column < 0).any():
        raise LabelFileError(f"{path}: column 1 must hold non-negative integer frame numbers")
    frames = column.astype(np.int64)
    if len(np.unique(frames)) != len(frames):
        raise LabelFileError(f"{path}: duplicated frame numbers in column 1")
    return frames


def _check_codes(path: Path, values: np.ndarray, allowed: set[int], what: str) -> None:
    ok = np.isin(values, sorted(allowed))
    if not ok.all():
        row, col = map(int, np.argwhere(~ok.reshape(len(values), -1))[0])
        raise LabelFileError(f"{path}: value {values.reshape(len(values), -1)[row, col]:g} "
                             f"at data row {row + 1} is outside the {what} codes "
                             f"{sorted(allowed)}")


def read_header(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        line = fh.readline()
    cells = [c.strip().strip('"').strip("'") for c in line.strip().split(",")]
    while cells and cells[-1] == "":
        cells.pop()
    return cells


def occurrence_columns(path: Path, header: list[str], aus: list[int]) -> dict[int, int]:
    """Map each requested AU to its column index in an occurrence CSV.

    Column 0 is always the frame number (so BP4D+'s duplicated first name ``1,1,2,...`` is read
    right). AUs are read by header name (``12`` or ``AU12``); a header of at least
    50 columns whose names do not give every AU falls back to position (legacy BP4D header
    ``0,1,...,99``: column N holds AU N; there name and position agree).
    """
    if len(header) < 2:
        raise LabelFileError(f"{path}: bad header {header!r}: expected the frame column then "
                             "AU names ('1,2,4,...' or 'AU01,...') or the legacy '0,1,...,99'")
    by_name: dict[int, int] = {}
    for index, name in enumerate(header[1:], start=1):
        au = parse_au_name(name)
        if au is None:
            continue
        if au in by_name:
            raise LabelFileError(f"{path}: AU{au} named twice in the header (columns "
                                 f"{by_name[au] + 1} and {index + 1})")
        by_name[au] = index
    missing = [au for au in aus if au not in by_name]
    if not missing:
        return {au: by_name[au] for au in aus}
    if len(header) >= POSITIONAL_MIN_COLUMNS and all(au < len(header) for au in aus):
        return {au: au for au in aus}
    if not by_name:
        raise LabelFileError(f"{path}: bad header {header[:6]!r}...: expected AU names "
                             "('1,2,4,...' or 'AU01,...') after the frame column, or the legacy "
                             "'0,1,...,99'")
    raise LabelFileError(f"{path}: no column for AU {missing} in the header "
                         f"(AUs found: {sorted(by_name)})")


def read_occurrence_csv(path: str | Path, aus: list[int]) -> pd.DataFrame:
    """Read a BP4D/BP4D+ occurrence CSV -> DataFrame ``frame, AU1, ...`` (1.0/0.0/NaN).

    Values must be 0, 1 or 9; 9 (unknown) becomes NaN.
    """
    path = Path(path)
    header = read_header(path)
    columns = occurrence_columns(path, header, aus)
    rows = _read_rows(path, skip_header=True)
    if rows.size == 0:
        raise LabelFileError(f"{path}: no data rows after the header")
    if rows.shape[1] < len(header):
        raise LabelFileError(f"{path}: rows have {rows.shape[1]} columns, header has "
                             f"{len(header)}")
    out = {"frame": _frames(path, rows[:, 0])}
    block = rows[:, [columns[au] for au in aus]]
    _check_codes(path, block, {0, 1, UNKNOWN_CODE}, "occurrence")
    block = np.where(block == UNKNOWN_CODE, np.nan, block)
    for i, au in enumerate(aus):
        out[occ_col(au)] = block[:, i]
    return pd.DataFrame(out).sort_values("frame", kind="stable").reset_index(drop=True)


def read_intensity_file(path: str | Path, allow_unknown: bool = True) -> pd.Series:
    """Read a headerless two-column ``frame,intensity`` file -> Series indexed by frame.

    Intensities 0-5; 9 = invalid -> NaN when ``allow_unknown`` (BP4D, BP4D+), rejected otherwise
    (DISFA has no 9 code).
    """
    path = Path(path)
    header = read_header(path)
    if header and not all(_is_number(c) for c in header):
        raise LabelFileError(f"{path}: bad first line {header!r}: expected no header, "
                             "rows 'frame,intensity'")
    rows = _read_rows(path, skip_header=False)
    if rows.size == 0:
        return pd.Series([], index=pd.Index([], name="frame", dtype=np.int64), dtype=float)
    if rows.shape[1] != 2:
        raise LabelFileError(f"{path}: expected 2 columns 'frame,intensity', found "
                             f"{rows.shape[1]}")
    frames = _frames(path, rows[:, 0])
    codes = {0, 1, 2, 3, 4, 5} | ({UNKNOWN_CODE} if allow_unknown else set())
    _check_codes(path, rows[:, 1:], codes, "intensity")
    values = np.where(rows[:, 1] == UNKNOWN_CODE, np.nan, rows[:, 1])
    return pd.Series(values, index=pd.Index(frames, name="frame"), dtype=float).sort_index()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def occurrence_from_intensity(intensity: pd.Series | np.ndarray, threshold: int):
    """Occurrence 1.0/0.0/NaN from intensity: present when ``intensity >= threshold``.

    DISFA (paper section 4.1): "AUs with intensity greater than 0" are positive, i.e.
    ``threshold=1``; ME-GraphAU, JAA-Net and SRERL use ``threshold=2``.
    """
    values = np.asarray(intensity, dtype=float)
    return np.where(np.isnan(values), np.nan, (values >= threshold).astype(float))
