"""Splits of generated image trees: a seeded, stratified split of one class-folder tree,
train / test list files, PCam's valid split and a separate test folder, and the one-line
errors for trees and lists that cannot be split or read."""
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from flows.histology import PLAN as HISTOLOGY
from flows.imagenet import PLAN as IMAGENET
from tasks.image_listing import list_images
from tasks.tiles import list_tiles
from terafeat.datasets.image_sets import list_image_set
from terafeat.datasets.splits import (
    read_class_tree,
    read_list_files,
    split_per_class,
    write_list_files,
)
from terafeat.datasets.tile_tables import read_tile_table

SIZES = {"ant": 12, "bee": 9, "cat": 7}


def write_tree(root, sizes=SIZES, extension="png"):
    """``root/<class>/NNN.<extension>``: sizes[class] small seeded RGB images per class."""
    rng = np.random.default_rng(0)
    for name, n in sizes.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(
                root / name / f"{i:03d}.{extension}")
    return root


def split_of(frame):
    return frame[["path", "label", "class_name", "split"]].reset_index(drop=True)


def test_a_count_per_class_keeps_every_stratum_and_the_seed_decides(tmp_path):
    root = write_tree(tmp_path / "tree")
    frame = read_class_tree(root, 5, random_state=0)
    counts = frame.groupby(["class_name", "split"]).size().unstack()
    assert counts["train"].to_dict() == {"ant": 5, "bee": 5, "cat": 5}
    assert counts["test"].to_dict() == {"ant": 7, "bee": 4, "cat": 2}
    pd.testing.assert_frame_equal(split_of(frame), split_of(read_class_tree(root, 5, 0)))
    other = read_class_tree(root, 5, random_state=1)
    assert not other["split"].equals(frame["split"])
    assert other.groupby(["class_name", "split"]).size().equals(
        frame.groupby(["class_name", "split"]).size())
    halves = read_class_tree(root, 0.5, random_state=0)
    # round((1 - 0.5) * n) of each class to test: 6 of 12, 4 of 9 (half-even), 4 of 7
    assert halves[halves["split"] == "test"].groupby("class_name").size().to_dict() == {
        "ant": 6, "bee": 4, "cat": 4}


def test_list_files_read_back_the_split_of_a_tree(tmp_path):
    root = write_tree(tmp_path / "tree")
    tree = list_image_set("class_tree", root, split_train=4, random_state=3)
    written = write_list_files(tree, root, tmp_path / "run")
    for path in written.values():
        shutil.copy(path, root)
    assert (root / "train.txt").read_text().splitlines()[0].split("/")[0] in SIZES
    lists = list_image_set("lists", root)
    key = ["path", "record", "label", "class_name", "split"]
    pd.testing.assert_frame_equal(lists[key].sort_values("path").reset_index(drop=True),
                                  tree[key].sort_values("path").reset_index(drop=True))
    assert lists.attrs["classes"] == tree.attrs["classes"] == sorted(SIZES)
    # the histology reader splits the same tree the same way, and reads the same lists
    tiles, names, _ = read_tile_table("class_folders", root, 4, random_state=3)
    listed, listed_names, _ = read_tile_table("lists", root)
    assert names == listed_names == sorted(SIZES)
    by_path = ["path", "label", "split"]
    pd.testing.assert_frame_equal(tiles[by_path].sort_values("path").reset_index(drop=True),
                                  listed[by_path].sort_values("path").reset_index(drop=True))
    pd.testing.assert_frame_equal(
        tiles[by_path].sort_values("path").reset_index(drop=True),
        tree[by_path].sort_values("path").reset_index(drop=True))


def test_the_default_fraction_is_the_earlier_quarter_to_test():
    labels = np.repeat([0, 1, 2], [12, 9, 7])
    rng = np.random.default_rng(5)
    earlier = np.full(len(labels), "train", dtype=object)
    for label in range(3):
        members = rng.permutation(np.flatnonzero(labels == label))
        earlier[members[:int(round(0.25 * len(members)))]] = "test"
    assert np.array_equal(split_per_class(labels, 0.75, 5), earlier)


def test_trees_and_lists_that_cannot_be_split_say_why(tmp_path):
    root = write_tree(tmp_path / "tree")
    with pytest.raises(ValueError, match=r"split_train=9 needs at least 10 images per class "
                                         r"\(the training images and one to test\): 'bee' "
                                         "has 9, 'cat' has 7$"):
        read_class_tree(root, 9, 0)
    with pytest.raises(ValueError, match="split_train must be a count"):
        read_class_tree(root, 2.5, 0)
    (tmp_path / "flat").mkdir()
    shutil.copy(root / "ant" / "000.png", tmp_path / "flat" / "lone.png")
    with pytest.raises(ValueError, match="flat: a class-folder tree needs at least 2 class "
                                         "folders"):
        read_class_tree(tmp_path / "flat", 5, 0)
    with pytest.raises(FileNotFoundError, match="train.txt: list file not found"):
        read_list_files(root)
    (root / "train.txt").write_text("# training images\nant/000.png\n\nbee/000.png\n"
                                    "bee/404.png\ncat/405.png\n")
    (root / "test.txt").write_text("ant/001.png\n")
    with pytest.raises(FileNotFoundError, match=r"train.txt:5: bee/404.png not found under "
                                                r".*tree \(and 1 more missing\)"):
        read_list_files(root)
    (root / "train.txt").write_text("ant/000.png\nbee/000.png\n")
    (root / "test.txt").write_text("ant/001.png\ncat/000.png\n")
    with pytest.raises(ValueError, match=r"test.txt: class\(es\) \['cat'\] have no training"):
        read_list_files(root)
    (root / "test.txt").write_text("001.png\n")
    with pytest.raises(ValueError, match=r"test.txt:1: '001.png' is not a relative "
                                         "<class>/<image> path"):
        read_list_files(root)
    for plan in (IMAGENET, HISTOLOGY):
        with pytest.raises(ValueError, match="split_train must be a count"):
            plan.validate({"split_train": 30.5})
        assert plan.validate({"split_train": 30}).split_train == 30
    with pytest.raises(ValueError, match="test_split='valid': only the PCam layouts"):
        HISTOLOGY.validate({"dataset": "class_folders", "test_split": "valid"})


def test_pcam_valid_split_and_a_separate_test_folder(tmp_path):
    root = tmp_path / "pcam"
    for split, n in (("train", 4), ("valid", 3), ("test", 2)):
        write_tree(root / split, {"0": n, "1": n}, extension="jpg")
    table, names, _ = read_tile_table("pcam_folders", root)
    assert table.groupby("split").size().to_dict() == {"test": 4, "train": 8}
    assert table.attrs["unused"] == {"valid": 6}  # found, and said to be unused
    valid, _, _ = read_tile_table("pcam_folders", root, test_split="valid")
    assert valid.groupby("split").size().to_dict() == {"test": 6, "train": 8}
    assert valid.loc[valid["split"] == "test", "path"].str.contains("/valid/").all()
    assert valid.attrs["unused"] == {"test": 4}
    held = write_tree(tmp_path / "other-lab", {"0": 5, "1": 5, "2": 1}, extension="jpg")
    separate, _, problems = read_tile_table("pcam_folders", root, test_root=held)
    test = separate[separate["split"] == "test"]
    assert len(test) == 10 and test["path"].str.startswith(str(held)).all()
    assert [path.rsplit("/", 2)[1] for path, _ in problems] == ["2"]  # not a PCam class
    for split in ("train", "test"):
        shutil.copytree(root / split, tmp_path / "no-valid" / split)
    with pytest.raises(ValueError, match="no-valid: no valid tiles found"):
        read_tile_table("pcam_folders", tmp_path / "no-valid", test_split="valid")


def test_the_listing_stages_take_the_split_options(tmp_path):
    root = tmp_path / "pcam"
    for split, n in (("train", 4), ("valid", 3), ("test", 2)):
        write_tree(root / split, {"0": n, "1": n}, extension="jpg")
    (tmp_path / "run").mkdir()
    listed = list_tiles.fn(dataset="pcam_folders", data_root=str(root),
                           run_dir=str(tmp_path / "run"), max_tiles_per_split=None, seed=0)
    assert listed["unused_splits"] == {"valid": 6}
    assert listed["counts"]["test"] == {"0": 2, "1": 2}
    valid = list_tiles.fn(dataset="pcam_folders", data_root=str(root),
                          run_dir=str(tmp_path / "run"), max_tiles_per_split=None, seed=0,
                          test_split="valid")
    assert valid["counts"]["test"] == {"0": 3, "1": 3} and valid["unused_splits"] == {"test": 4}
    tree = write_tree(tmp_path / "tree")
    runs = [tmp_path / "tree-run", tmp_path / "lists-run"]
    for run in runs:
        run.mkdir()
    images = list_images.fn(dataset="class_tree", data_root=str(tree), run_dir=str(runs[0]),
                            max_train_per_class=None, max_test_per_class=None, train_repeat=1,
                            seed=4, split_train=3)
    assert images["n_train"] == 9 and images["n_test"] == sum(SIZES.values()) - 9
    for path in images["split_lists"].values():
        shutil.copy(path, tree)
    again = list_images.fn(dataset="lists", data_root=str(tree), run_dir=str(runs[1]),
                           max_train_per_class=None, max_test_per_class=None, train_repeat=1,
                           seed=0)
    assert again["split_lists"] is None and again["n_train"] == 9
    listings = [pd.read_csv(run / "listing.csv")[["path", "label", "split"]]
                .sort_values("path", ignore_index=True) for run in runs]
    pd.testing.assert_frame_equal(*listings)  # the same split, read back from the lists
