"""Data set layouts (KTH, UCF101-style, Hollywood2, class folders) built from real small videos."""
import shutil

import numpy as np
import pytest
from video_fixtures import extracted_shared, write_video

from terafeat.datasets.folders import LayoutError, group_folds, read_class_folders
from terafeat.datasets.hollywood2 import label_matrix, read_hollywood2
from terafeat.datasets.kth import KTH_PERSON_SPLIT, parse_kth_name, read_kth
from terafeat.datasets.ucf import read_ucf_folders
from terafeat.media.video import scan_videos


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """One real 8-frame MJPG clip, copied under every name a layout needs."""
    return write_video(tmp_path_factory.mktemp("clip") / "clip.avi", n_frames=8)


def place(clip, root, *names):
    """Copies of ``clip`` at ``root/name`` for each name (folders made as needed)."""
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip, root / name)


# KTH

def test_kth_person_split_covers_25_persons_once():
    persons = [p for split in KTH_PERSON_SPLIT.values() for p in split]
    assert sorted(persons) == list(range(1, 26))
    assert {s: len(p) for s, p in KTH_PERSON_SPLIT.items()} == {"train": 8, "validation": 8,
                                                                "test": 9}


@pytest.mark.parametrize("name, expected", [
    ("person01_boxing_d1_uncomp.avi", ("boxing", 1, 1, "validation")),
    ("person22_walking_d4_uncomp.mp4", ("walking", 22, 4, "test")),
    ("dir/person11_handclapping_d3.avi", ("handclapping", 11, 3, "train")),
])
def test_parse_kth_name(name, expected):
    fields = parse_kth_name(name)
    assert (fields["label"], fields["person"], fields["scenario"], fields["split"]) == expected


@pytest.mark.parametrize("name, problem", [
    ("persn01_boxing_d1_uncomp.avi", "not a KTH name"),
    ("person01_swimming_d1_uncomp.avi", "unknown action 'swimming'"),
    ("person01_boxing_d5_uncomp.avi", "scenario d5"),
    ("person26_boxing_d1_uncomp.avi", "person 26"),
])
def test_parse_kth_name_rejects(name, problem):
    with pytest.raises(ValueError, match=problem) as caught:
        parse_kth_name(name)
    assert name in str(caught.value)


@pytest.fixture()
def kth_root(clip, tmp_path):
    """KTH clips flat and in an action folder, plus a readme, odd names and a duplicate clip."""
    place(clip, tmp_path, "person02_running_d2_uncomp.avi", "person11_boxing_d1_uncomp.avi",
          "boxing/person11_boxing_d2_uncomp.avi", "boxing/person19_boxing_d4_uncomp.mp4")
    (tmp_path / "00sequences.txt").write_text("not a video\n")
    place(clip, tmp_path, "person11_boxing_d1_uncomp.mp4", "person07_swimming_d1_uncomp.avi",
          "clip_0001.avi")
    return tmp_path


def test_read_kth_reports_names_that_do_not_parse(kth_root):
    with pytest.raises(LayoutError) as caught:
        read_kth(kth_root)
    bad = {path.split("/")[-1]: problem for path, problem in caught.value.problems}
    assert set(bad) == {"person11_boxing_d1_uncomp.mp4", "person07_swimming_d1_uncomp.avi",
                        "clip_0001.avi"}
    assert "same clip as" in bad["person11_boxing_d1_uncomp.mp4"]
    assert "clip_0001.avi" in str(caught.value) and str(kth_root) in str(caught.value)

    with pytest.warns(UserWarning, match="3 file"):
        frame = read_kth(kth_root, strict=False)
    assert len(frame.attrs["problems"]) == 3
    assert list(frame.columns) == ["path", "label", "person", "scenario", "group", "split"]
    assert frame[["label", "person", "scenario", "split"]].values.tolist() == [
        ["boxing", 11, 2, "train"], ["boxing", 19, 4, "validation"],
        ["running", 2, 2, "test"], ["boxing", 11, 1, "train"]]
    assert (frame.group == frame.person).all()


def test_readers_name_a_missing_or_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_kth(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no video files"):
        read_ucf_folders(tmp_path)


# UCF101-style names, as in the Weizmann set

@pytest.fixture()
def weizmann_like(clip, tmp_path):
    """3 actions x 4 groups x (c01, c02 = c01 mirrored)."""
    place(clip, tmp_path, *(f"{action}/v_{action}_g{group:02d}_c{copy:02d}.avi"
                            for action in ("bend", "jack", "wave1")
                            for group in range(1, 5) for copy in (1, 2)))
    return tmp_path


def test_read_ucf_folders_without_split_lists(weizmann_like):
    frame = read_ucf_folders(weizmann_like)
    assert len(frame) == 24 and set(frame.split) == {"all"}
    assert frame.label.value_counts().to_dict() == {"bend": 8, "jack": 8, "wave1": 8}
    assert sorted(frame.group.unique()) == [1, 2, 3, 4] and set(frame.clip_number) == {1, 2}
    assert frame.path.iloc[0].endswith("bend/v_bend_g01_c01.avi")


def assert_groups_kept_together(folds, groups):
    groups = np.asarray(groups)
    held = [set(groups[test]) for _, test in folds]
    for train, test in folds:
        assert set(groups[train]).isdisjoint(groups[test])
        assert len(train) + len(test) == len(groups)
    assert sorted(g for fold in held for g in fold) == sorted(set(groups))  # each held out once


def test_leave_one_group_out_keeps_mirrored_copies_together(weizmann_like):
    frame = read_ucf_folders(weizmann_like)
    folds = group_folds(frame.group)
    assert len(folds) == 4
    assert_groups_kept_together(folds, frame.group)
    for group, (_, test) in zip([1, 2, 3, 4], folds):
        held = frame.iloc[test]
        assert set(held.group) == {group}
        assert sorted(held.clip_number) == [1, 1, 1, 2, 2, 2]  # c01 and c02 of each action


def test_group_k_fold_is_seeded(weizmann_like):
    groups = read_ucf_folders(weizmann_like).group
    folds = group_folds(groups, n_folds=2, random_state=3)
    assert len(folds) == 2
    assert_groups_kept_together(folds, groups)
    again = group_folds(groups, n_folds=2, random_state=3)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    with pytest.raises(ValueError, match="between 2 and the 4 groups"):
        group_folds(groups, n_folds=5)
    with pytest.raises(ValueError, match="at least 2 groups"):
        group_folds([7, 7, 7])


@pytest.fixture()
def ucf_root(clip, tmp_path):
    """UCF-101/ beside ucfTrainTestlist/, with UCF101's HandstandPushups name quirk."""
    root = tmp_path / "UCF-101"
    names = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
             "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
             "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c02.avi",
             "HandstandPushups/v_HandStandPushups_g01_c01.avi",
             "HandstandPushups/v_HandStandPushups_g08_c01.avi"]
    place(clip, root, *names)
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    train = [name for name in names if "_g08_" in name]
    test = [name for name in names if "_g01_" in name]
    (lists / "trainlist01.txt").write_bytes(
        "".join(f"{name} {1 + name.startswith('H')}\r\n" for name in train).encode())
    (lists / "testlist01.txt").write_text("".join(f"{name}\n" for name in test))
    return root


def test_official_split_lists_are_used_when_present(ucf_root):
    frame = read_ucf_folders(ucf_root)
    assert dict(zip(frame.group, frame.split)) == {1: "test", 8: "train"}
    assert frame.label.tolist() == ["ApplyEyeMakeup"] * 3 + ["HandstandPushups"] * 2
    with pytest.raises(FileNotFoundError, match="trainlist02.txt"):
        read_ucf_folders(ucf_root, split_number=2)


def test_clips_off_the_lists_and_misplaced_names_are_reported(ucf_root, clip):
    place(clip, ucf_root, "ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c01.avi",
          "ApplyEyeMakeup/v_Knitting_g01_c01.avi", "ApplyEyeMakeup/notes.avi")
    (ucf_root / "HandstandPushups/v_HandStandPushups_g08_c01.avi").unlink()
    with pytest.warns(UserWarning, match="4 file"):
        frame = read_ucf_folders(ucf_root, strict=False)
    assert len(frame) == 4
    problems = dict(frame.attrs["problems"])
    assert "not a UCF101-style name" in problems[str(ucf_root / "ApplyEyeMakeup/notes.avi")]
    assert "folder" in problems[str(ucf_root / "ApplyEyeMakeup/v_Knitting_g01_c01.avi")]
    assert "neither list" in problems[str(ucf_root / "ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c01.avi")]
    assert "v_handstandpushups_g08_c01.avi" in problems[str(ucf_root.parent / "ucfTrainTestlist")]


# Hollywood2

@pytest.fixture()
def hollywood2_root(clip, tmp_path):
    """AVIClips + ClipSets for 3 actions; train clip 2 shows both Kiss and Run."""
    truth = {"train": {"actioncliptrain00001": ["AnswerPhone"],
                       "actioncliptrain00002": ["Kiss", "Run"],
                       "actioncliptrain00003": ["Run"]},
             "test": {"actioncliptest00001": ["Kiss"], "actioncliptest00002": ["AnswerPhone"]}}
    (tmp_path / "ClipSets").mkdir()
    for split, clips in truth.items():
        place(clip, tmp_path / "AVIClips", *(f"{name}.avi" for name in clips))
        for action in ("AnswerPhone", "Kiss", "Run"):
            (tmp_path / "ClipSets" / f"{action}_{split}.txt").write_text("".join(
                f"{name}  {1 if action in labels else -1}\n" for name, labels in clips.items()))
    return tmp_path


def test_read_hollywood2_gives_multi_labels(hollywood2_root):
    classes = ["AnswerPhone", "Kiss", "Run"]
    frame = read_hollywood2(hollywood2_root, classes=classes)
    assert frame.split.tolist() == ["train"] * 3 + ["test"] * 2
    assert frame.labels.tolist() == [("AnswerPhone",), ("Kiss", "Run"), ("Run",),
                                     ("Kiss",), ("AnswerPhone",)]
    assert frame.path.iloc[0].endswith("AVIClips/actioncliptrain00001.avi")
    np.testing.assert_array_equal(label_matrix(frame.labels, classes),
                                  [[1, 0, 0], [0, 1, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0]])
    with pytest.raises(ValueError, match="clip 0: label 'AnswerPhone' is not one of"):
        label_matrix(frame.labels, ["Run"])


def test_hollywood2_problems_name_file_and_line(hollywood2_root):
    (hollywood2_root / "AVIClips/actioncliptrain00003.avi").unlink()
    with open(hollywood2_root / "ClipSets/Run_test.txt", "a") as file:
        file.write("actioncliptest00009 1\n")  # not in AnswerPhone_test / Kiss_test
    with pytest.raises(LayoutError) as caught:
        read_hollywood2(hollywood2_root, classes=["AnswerPhone", "Kiss", "Run"])
    problems = dict(caught.value.problems)
    assert "not found" in problems[str(hollywood2_root / "AVIClips/actioncliptrain00003.avi")]
    assert "absent from AnswerPhone, Kiss" in problems[
        str(hollywood2_root / "AVIClips/actioncliptest00009.avi")]

    with pytest.raises(FileNotFoundError, match="Eat_train.txt"):
        read_hollywood2(hollywood2_root, classes=["Eat"])
    with pytest.raises(FileNotFoundError, match="AVIClips"):
        read_hollywood2(hollywood2_root / "ClipSets")
    (hollywood2_root / "ClipSets/Kiss_train.txt").write_text("actioncliptrain00001 yes\n")
    with pytest.raises(ValueError, match=r"Kiss_train.txt:1: expected"):
        read_hollywood2(hollywood2_root, classes=["Kiss"])


# Generic class folders

def test_read_class_folders(clip, tmp_path):
    place(clip, tmp_path, "cat/a.avi", "cat/b.MP4", "dog/c.mkv", ".cache/d.avi")
    (tmp_path / "dog" / "labels.csv").write_text("x")
    frame = read_class_folders(tmp_path, split="train")
    assert frame[["label", "split"]].values.tolist() == [["cat", "train"]] * 2 + [["dog", "train"]]
    place(clip, tmp_path, "loose.avi", "dog/deeper/e.avi")
    with pytest.raises(LayoutError, match="2 file"):
        read_class_folders(tmp_path)


# The shared benchmark data

@pytest.fixture(scope="module")
def kth_sample(tmp_path_factory):
    return extracted_shared("kth-sample.tar", tmp_path_factory)


@pytest.fixture(scope="module")
def weizmann4(tmp_path_factory):
    return extracted_shared("weizmann4.tar", tmp_path_factory)


def test_real_kth_sample_names(kth_sample):
    frame = read_kth(kth_sample)
    assert len(frame) == 6 and frame.attrs["problems"] == []
    assert frame.label.value_counts().to_dict() == {"boxing": 3, "handclapping": 2, "jogging": 1}
    assert dict(zip(frame.person, frame.split)) == {1: "validation", 3: "test", 4: "validation"}
    assert sorted(p.rsplit(".", 1)[1] for p in frame.path) == ["avi"] * 3 + ["mp4"] * 3


def test_real_weizmann_layout(weizmann4):
    frame = read_ucf_folders(weizmann4)
    assert len(frame) == 72 and frame.group.nunique() == 9
    assert frame.label.value_counts().to_dict() == {a: 18 for a in ("bend", "jack", "wave1",
                                                                     "wave2")}
    folds = group_folds(frame.group)
    assert len(folds) == 9
    assert_groups_kept_together(folds, frame.group)
    assert all(sorted(frame.clip_number.iloc[test]) == [1] * 4 + [2] * 4 for _, test in folds)
    good, problems = scan_videos(frame.path)
    assert problems == []
    assert {(i.width, i.height, i.fps) for i in good} == {(64, 64, 25.0)}
    assert (min(i.n_frames for i in good), max(i.n_frames for i in good)) == (51, 146)
