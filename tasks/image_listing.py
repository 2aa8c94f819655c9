"""Stage: list a labelled image set -> ``listing.csv`` (training rows, then test rows)."""
from __future__ import annotations

from pathlib import Path

from prefect import task

from tasks.logs import stage_logger
from terafeat.atomic_files import atomic_write
from terafeat.datasets.image_sets import list_image_set, prepare_listing
from terafeat.datasets.splits import write_list_files


@task(name="list-images")
def list_images(*, dataset: str, data_root: str, run_dir: str, max_train_per_class: int | None,
                max_test_per_class: int | None, train_repeat: int, seed: int,
                mirror_train: bool = False, mirror_test: bool = False, shift_train: int = 0,
                max_shift: int = 2, split_train: float = 0.75) -> dict:
    """Writes ``listing.csv`` (every row) and ``train_images.csv`` (the distinct training
    images, which patches are sampled from: unchanged by ``train_repeat``, ``mirror_train``
    and ``shift_train``); for a ``class_tree`` split here (``split_train``, seeded by
    ``seed``), also its ``train.txt`` and ``test.txt`` (read back as ``dataset=lists``).

    Returns {"listing": path, "train_images": path, "n_train" (rows), "n_test" (images),
    "classes", "class_names", "reader" (CIFAR batch files) or None, "layout_problems":
    [[path, problem]], "split_lists": {split: path} or None}."""
    images = list_image_set(dataset, data_root, split_train=split_train, random_state=seed)
    split_lists = (write_list_files(images, data_root, run_dir) if dataset == "class_tree"
                   else None)
    frame = prepare_listing(images, max_train_per_class,
                            max_test_per_class, train_repeat, seed, mirror_train,
                            mirror_test, shift_train, max_shift)
    copies = frame["mirror"] | (frame["shift_y"] != 0) | (frame["shift_x"] != 0)
    train = frame[(frame["split"] == "train") & ~copies].drop_duplicates(
        ["path", "record"]).drop(columns=["mirror", "shift_y", "shift_x"])
    paths = {}
    for name, table in (("listing", frame), ("train_images", train.sort_values(["path", "record"]))):
        paths[name] = Path(run_dir) / f"{name}.csv"
        atomic_write(paths[name], lambda file, t=table: file.write(t.to_csv(index=False).encode()))
    n_train = int((frame["split"] == "train").sum())
    n_test = int(((frame["split"] == "test") & ~frame["mirror"]).sum())
    summary = {"listing": str(paths["listing"]), "train_images": str(paths["train_images"]),
               "n_train": n_train, "n_test": n_test,
               "classes": list(frame.attrs["classes"]),
               "class_names": list(frame.attrs["class_names"]),
               "reader": frame.attrs.get("reader"),
               "layout_problems": [list(p) for p in frame.attrs.get("problems", [])],
               "split_lists": split_lists}
    stage_logger().info("%s under %s: %d training rows (listed %d time(s)%s%s), %d test "
                        "images%s, %d classes, %d layout problems", dataset, data_root, n_train,
                        train_repeat, ", each also mirrored" if mirror_train else "",
                        f", {shift_train} shifted copies each" if shift_train else "", n_test,
                        " (each also mirrored)" if mirror_test else "", len(summary["classes"]),
                        len(summary["layout_problems"]))
    return summary
