"""Alignment (section 4.3, JAA-Net 49-point rule) and fold lists (section 4.1)."""

import numpy as np
import pandas as pd
import pytest

from renet_core.data import FOLDS, split
from renet_core.data.align import AlignmentError, align_face, alignment_matrix, eye_centres
from renet_core.data.fixtures import draw_face, face_landmarks
from renet_core.data.folds import make_bp4dplus_parts, read_bp4dplus_parts


def _red_blobs(crop):
    red = (crop[:, :, 2] > 200) & (crop[:, :, 1] < 35) & (crop[:, :, 0] < 35)
    ys, xs = np.nonzero(red)
    left = xs < crop.shape[1] / 2
    return (np.array([xs[left].mean(), ys[left].mean()]),
            np.array([xs[~left].mean(), ys[~left].mean()]))


@pytest.mark.parametrize("angle,eye_distance,centre", [(0, 90, (320, 200)), (28, 55, (250, 260)),
                                                       (-35, 140, (330, 230)), (12, 70, (200, 180))])
def test_eye_centres_land_on_the_same_pixels_under_roll_and_scale(angle, eye_distance, centre):
    reference = face_landmarks(640, 480, 90, 0, (320, 200))
    _, ref_points = align_face(np.zeros((480, 640, 3), np.uint8), reference, 256)
    ref_left, ref_right = eye_centres(ref_points)
    points = face_landmarks(640, 480, eye_distance, angle, centre)
    crop, aligned = align_face(draw_face(points, 640, 480), points, 256)
    left, right = eye_centres(aligned)
    np.testing.assert_allclose(left, ref_left, atol=1e-6)
    np.testing.assert_allclose(right, ref_right, atol=1e-6)
    assert abs(left[1] - right[1]) < 1e-6  # eye line horizontal
    # and the drawn eyes (the pixels, not just the landmark arithmetic) are there too
    blob_left, blob_right = _red_blobs(crop)
    np.testing.assert_allclose(blob_left, ref_left, atol=1.5)
    np.testing.assert_allclose(blob_right, ref_right, atol=1.5)
    assert crop.shape == (256, 256, 3)


def test_alignment_box_follows_jaa_rule():
    points = face_landmarks(640, 480, 100, 0, (320, 200))
    _, aligned = align_face(np.zeros((480, 640, 3), np.uint8), points, 200)
    anchors = np.stack([*eye_centres(aligned), aligned[13], aligned[31], aligned[37]])
    box = anchors.max(0) - anchors.min(0)
    # halfSize = 0.5 * 2.9 * max(w, h) maps to (S - 1) / 2 pixels
    assert box.max() == pytest.approx((200 - 1) / 2.9, rel=1e-6)
    np.testing.assert_allclose((anchors.max(0) + anchors.min(0)) / 2, [99.5, 99.5], atol=1e-6)


def test_degenerate_landmarks_are_rejected():
    points = np.zeros((49, 2))
    with pytest.raises(AlignmentError):
        alignment_matrix(points)
    with pytest.raises(AlignmentError):
        alignment_matrix(np.full((49, 2), np.nan))


def test_standard_folds_are_disjoint_and_complete():
    bp4d = [s for part in FOLDS["bp4d"] for s in part]
    assert len(bp4d) == len(set(bp4d)) == 41
    assert FOLDS["bp4d"][0][:3] == ["F001", "M007", "F018"]
    disfa = [s for part in FOLDS["disfa"] for s in part]
    assert len(disfa) == len(set(disfa)) == 27
    assert not {"SN014", "SN015", "SN019", "SN020", "SN022"} & set(disfa)


def test_bp4dplus_split_file_is_the_documented_sex_balanced_rule():
    parts = read_bp4dplus_parts()
    expected = make_bp4dplus_parts()
    assert [list(p) for p in parts] == [expected.loc[expected.part == k, "subject"].tolist()
                                        for k in (1, 2, 3)]
    everyone = [s for p in parts for s in p]
    assert len(everyone) == len(set(everyone)) == 140
    women = [sum(s.startswith("F") for s in p) for p in parts]
    men = [sum(s.startswith("M") for s in p) for p in parts]
    assert women == [28, 27, 27] and men == [20, 19, 19]
    assert FOLDS["bp4dplus"] == parts


@pytest.mark.parametrize("fold,test_part", [(1, 3), (2, 2), (3, 1)])
def test_split_tests_on_the_right_part_and_never_mixes_subjects(fold, test_part):
    subjects = [s for p in FOLDS["disfa"] for s in p]
    index = pd.DataFrame({"subject": np.repeat(subjects, 3), "frame": np.tile([1, 2, 3], 27)})
    index.attrs["dataset"] = "disfa"
    train, test = split(index, fold)
    assert set(test["subject"]) == set(FOLDS["disfa"][test_part - 1])
    assert not set(train["subject"]) & set(test["subject"])
    assert len(train) + len(test) == len(index)
    assert train.attrs["dataset"] == "disfa" and test.attrs["fold"] == fold


def test_split_rejects_unknown_subjects_and_folds():
    index = pd.DataFrame({"subject": ["F001", "X999"], "frame": [1, 1]})
    index.attrs["dataset"] = "bp4d"
    with pytest.raises(ValueError, match="X999"):
        split(index, 1)
    with pytest.raises(ValueError, match="fold"):
        split(index, 4)
