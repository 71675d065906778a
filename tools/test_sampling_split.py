"""Which part of the test sampling would a larger SynthAU test set shrink? (docs/findings.md)

The scoreboard's ``se_test_sampling`` resamples test *subjects* within each fold: it holds the
between-subject part (which subjects a fold tests on) and the within-subject part (which
sequences and frames of them). More frames or tasks per subject shrink only the second. This
prints, per claim, the subject-level standard error beside two finer ones: sequences (a subject's
run of consecutive frames, e.g. one BP4D task) resampled as units, and frames resampled as if
independent (an underestimate, since neighbouring frames are correlated). Reads the finished runs
of the profile; trains nothing and writes nothing.

    RENET_CACHE=<the cache the runs are in> python tools/test_sampling_split.py --profile demo
"""

from __future__ import annotations

import argparse

import numpy as np

from renet_core.study import board, claims, intervals

RESAMPLES = 500


def frame_bootstrap(folds, resamples: int = RESAMPLES, seed: int = 0, level: float = intervals.LEVEL):
    """:func:`intervals.subject_bootstrap` with every test frame its own unit (at most
    :data:`RESAMPLES` resamples: its se is steady well before the scoreboard's count)."""
    resamples = min(resamples, RESAMPLES)
    rng = np.random.default_rng(seed)
    draws = np.zeros(resamples)
    for subjects, score in folds:
        n = len(subjects)
        for r in range(resamples):
            draws[r] += score(rng.integers(0, n, n))
    draws /= max(len(folds), 1)
    tail = (1 - level) / 2
    return float(draws.std(ddof=1)), float(np.quantile(draws, tail)), float(np.quantile(draws, 1 - tail))


def sequence_ids(subjects, frames) -> np.ndarray:
    """One id per run of consecutive frame numbers of one subject (a SynthAU sequence: a BP4D
    task, a DISFA video); frames that are not numbers start a sequence each."""
    ids, k, last = np.zeros(len(subjects), dtype=int), -1, (None, None)
    for i, (subject, frame) in enumerate(zip(subjects, frames)):
        number = int(frame) if str(frame).isdigit() else None
        if subject != last[0] or number is None or last[1] is None or number != last[1] + 1:
            k += 1
        ids[i], last = k, (subject, number)
    return ids


def _by_sequence(test_sampling_se):
    def se(claim, predictions, *args, **kwargs):
        def sequences(table, entry):
            got = predictions(table, entry)
            if not got:
                return got
            return {f: dict(a, subject=sequence_ids(a["subject"], a["frame"])) if "frame" in a and len(a["frame"])
                    else a for f, a in got.items()}
        return test_sampling_se(claim, sequences, *args, **kwargs)
    return se


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo")
    args = parser.parse_args()
    by_subject = board.scoreboard(args.profile)          # the scoreboard's own se_test_sampling
    subject_bootstrap, test_sampling_se = intervals.subject_bootstrap, claims.test_sampling_se
    claims.test_sampling_se = _by_sequence(test_sampling_se)
    try:
        by_sequence = board.scoreboard(args.profile)
    finally:
        claims.test_sampling_se = test_sampling_se
    intervals.subject_bootstrap = frame_bootstrap
    try:
        by_frame = board.scoreboard(args.profile)
    finally:
        intervals.subject_bootstrap = subject_bootstrap
    print("standard error of each claim's difference: over folds (sd / sqrt folds), and test sampling alone by "
          "subject / sequence / frame bootstrap")
    for (_, s), (_, q), (_, f) in zip(by_subject.iterrows(), by_sequence.iterrows(), by_frame.iterrows()):
        fold_se = s["sd_over_folds"] / np.sqrt(s["folds"]) if s["folds"] else np.nan
        print(f"{s['claim'][:70]:70s} folds {fold_se:7.3f}  subject {s['se_test_sampling']:7.3f}  "
              f"sequence {q['se_test_sampling']:7.3f}  frame {f['se_test_sampling']:7.3f}", flush=True)


if __name__ == "__main__":
    main()
