"""Image data set layouts (class folders, Kather, PatchCamelyon, ImageNet family, CIFAR),
built from small real files in temporary folders, and the shared benchmark data."""
import collections
import gzip
import hashlib
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image
from video_fixtures import extracted_shared, shared_data_dir

from terafeat.datasets.cifar import (
    load_cifar10,
    load_cifar100,
    read_cifar_binary,
    read_cifar_pickle,
)
from terafeat.datasets.download import (
    DATASETS,
    ArchiveError,
    ChecksumError,
    RemoteFile,
    extract,
    fetch,
)
from terafeat.datasets.folders import IMAGE_COLUMNS, LayoutError, read_image_folders
from terafeat.datasets.imagenet import read_ilsvrc, read_imagenette, read_tiny_imagenet
from terafeat.datasets.tiles import (
    iter_pcam_batches,
    read_kather2016,
    read_pcam_folders,
    read_pcam_h5,
)
from terafeat.media.images import iter_image_batches, read_images

h5py = pytest.importorskip("h5py")

TENCH, GOLDFISH, SHARK = "n01440764", "n01443537", "n01484850"


def write_images(root, *names, size=(8, 8)):
    """A small seeded RGB image at ``root/name`` for each name, in the format of its suffix."""
    for seed, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path)


def problem_names(frame_or_error):
    """File names of the problems of a frame (attrs) or a LayoutError, sorted."""
    problems = getattr(frame_or_error, "problems", None) or frame_or_error.attrs["problems"]
    return sorted(path.rsplit("/", 1)[1] for path, _ in problems)


# Generic class folders

def test_class_folders_number_classes_and_report_misplaced_images(tmp_path):
    write_images(tmp_path, "cat/a.png", "cat/b.JPG", "dog/c.tif", ".cache/d.png",
                 "dog/._e.png", "loose.jpg", "dog/deeper/f.png")
    (tmp_path / "dog" / "labels.csv").write_text("not an image")
    with pytest.raises(LayoutError, match="2 file") as caught:
        read_image_folders(tmp_path)
    assert problem_names(caught.value) == ["f.png", "loose.jpg"]
    with pytest.warns(UserWarning, match="2 file"):
        frame = read_image_folders(tmp_path, strict=False, class_names={"cat": "Felis"})
    assert list(frame.columns) == IMAGE_COLUMNS
    assert frame[["label", "class_name", "split"]].values.tolist() == [
        [0, "Felis", "all"], [0, "Felis", "all"], [1, "dog", "all"]]
    assert frame.attrs["classes"] == ["cat", "dog"]
    assert frame.attrs["class_names"] == ["Felis", "dog"]


def test_split_folders_share_one_numbering(tmp_path):
    write_images(tmp_path, "train/b/1.png", "train/c/2.png", "test/a/3.png", "test/c/4.png",
                 "extra/z/5.png")
    frame = read_image_folders(tmp_path, splits=("train", "val", "test"))
    assert frame.attrs["classes"] == ["a", "b", "c"]  # union over the splits; extra/ ignored
    assert frame[["split", "label"]].values.tolist() == [["train", 1], ["train", 2],
                                                         ["test", 0], ["test", 2]]
    with pytest.raises(LayoutError, match="'a' is not one of the 2 classes"):
        read_image_folders(tmp_path, splits=("test",), classes=["b", "c"])
    with pytest.raises(FileNotFoundError, match="none of the split folders"):
        read_image_folders(tmp_path, splits=("valid",))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: no image files found"):
        read_image_folders(tmp_path / "empty")


# Kather 2016 and PatchCamelyon JPEG folders

def test_kather2016(tmp_path):
    tiles = tmp_path / "Kather_texture_2016_image_tiles_5000"
    write_images(tiles, "01_TUMOR/1A11_CRC-Prim-HE-07_022.tif_Row_601_Col_151.tif",
                 "01_TUMOR/10A1_CRC-Prim-HE-04_011.tif_Row_1_Col_1.tif",
                 "02_STROMA/1A2_CRC-Prim-HE-07_022.tif_Row_451_Col_1.tif",
                 "08_EMPTY/1A3_CRC-Prim-HE-03_032.tif_Row_1_Col_301.tif", size=(150, 150))
    frame = read_kather2016(tmp_path)
    assert frame[["label", "class_name"]].values.tolist() == [[0, "tumor"], [0, "tumor"],
                                                              [1, "stroma"], [2, "empty"]]
    assert frame.attrs["class_names"] == ["tumor", "stroma", "empty"]
    images, kept, problems = read_images(frame.path)
    assert images.shape == (4, 150, 150, 3) and problems == []


def test_pcam_folders(tmp_path):
    write_images(tmp_path, "train/0/patch0000000.jpg", "train/1/patch0000001.jpg",
                 "train/1/patch0000003.jpg", "test/0/patch0000002.jpg", "train/2/patch9.jpg",
                 "valid/patch8.jpg", size=(96, 96))
    with pytest.warns(UserWarning):
        frame = read_pcam_folders(tmp_path, strict=False)
    assert problem_names(frame) == ["patch8.jpg", "patch9.jpg"]
    assert frame[["split", "label", "class_name"]].values.tolist() == [
        ["train", 0, "normal"], ["train", 1, "metastatic"], ["train", 1, "metastatic"],
        ["test", 0, "normal"]]


# PatchCamelyon HDF5

def write_pcam_h5(root, split, n_tiles, labels=None, chunk=4):
    """PCam-format files: x (n, 96, 96, 3) uint8 chunked as the originals, y (n, 1, 1, 1)."""
    tiles = np.random.default_rng(n_tiles).integers(0, 256, (n_tiles, 96, 96, 3), np.uint8)
    labels = np.arange(n_tiles) % 2 if labels is None else labels
    with h5py.File(root / f"camelyonpatch_level_2_split_{split}_x.h5", "w") as file:
        file.create_dataset("x", data=tiles, chunks=(min(chunk, n_tiles), 96, 96, 3))
    with h5py.File(root / f"camelyonpatch_level_2_split_{split}_y.h5", "w") as file:
        file.create_dataset("y", data=np.asarray(labels, np.uint8).reshape(-1, 1, 1, 1))
    return tiles


@pytest.fixture()
def reads(monkeypatch):
    """Shapes of every slice read from an h5py Dataset with [], in order."""
    shapes, original = [], h5py.Dataset.__getitem__

    def recording(dataset, selection, *args, **kwargs):
        result = original(dataset, selection, *args, **kwargs)
        shapes.append(np.shape(result))
        return result
    monkeypatch.setattr(h5py.Dataset, "__getitem__", recording)
    return shapes


def test_pcam_h5_index_and_lazy_batches(tmp_path, reads):
    train = write_pcam_h5(tmp_path, "train", 10)
    write_pcam_h5(tmp_path, "test", 3, labels=[1, 1, 0])
    frame = read_pcam_h5(tmp_path)
    assert reads == []  # the index reads no tile
    assert list(frame.columns) == ["path", "index", "label", "split"]
    assert frame.groupby("split").size().to_dict() == {"test": 3, "train": 10}
    assert frame[frame.split == "test"].label.tolist() == [1, 1, 0]
    x_path = frame.path[0]
    batches = list(iter_pcam_batches(x_path, batch_size=4))
    assert [indices.tolist() for indices, _ in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [shape[0] for shape in reads] == [4, 4, 2]  # never the whole file at once
    np.testing.assert_array_equal(np.concatenate([tiles for _, tiles in batches]), train)
    reads.clear()
    subset = list(iter_pcam_batches(x_path, batch_size=2, indices=[7, 1, 3]))
    assert [indices.tolist() for indices, _ in subset] == [[1, 3], [7]]
    assert [shape[0] for shape in reads] == [2, 1]
    np.testing.assert_array_equal(subset[1][1][0], train[7])
    with pytest.raises(IndexError, match=r"\[0, 10\)"):
        next(iter_pcam_batches(x_path, indices=[10]))


def test_pcam_h5_problems_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="camelyonpatch_level_2_split_train_x.h5"):
        read_pcam_h5(tmp_path)
    write_pcam_h5(tmp_path, "valid", 4, labels=[0, 1, 0])
    with pytest.raises(ValueError, match=r"_valid_y.h5: 3 labels for the 4 tiles"):
        read_pcam_h5(tmp_path)
    (tmp_path / "camelyonpatch_level_2_split_valid_y.h5").unlink()
    with pytest.raises(FileNotFoundError, match="_valid_y.h5: PatchCamelyon file not found"):
        read_pcam_h5(tmp_path)


def test_pcam_h5_gz_is_decompressed_by_extract(tmp_path):
    write_pcam_h5(tmp_path, "test", 2)
    for part in ("x", "y"):
        h5 = tmp_path / f"camelyonpatch_level_2_split_test_{part}.h5"
        (tmp_path / f"{h5.name}.gz").write_bytes(gzip.compress(h5.read_bytes()))
        h5.unlink()
    with pytest.raises(FileNotFoundError, match="decompress it"):
        read_pcam_h5(tmp_path)
    gzipped = tmp_path / "camelyonpatch_level_2_split_test_x.h5.gz"
    assert extract(gzipped, tmp_path) == [tmp_path / "camelyonpatch_level_2_split_test_x.h5"]
    extract(tmp_path / "camelyonpatch_level_2_split_test_y.h5.gz", tmp_path)
    assert len(read_pcam_h5(tmp_path)) == 2
    (tmp_path / "cut.h5.gz").write_bytes(gzipped.read_bytes()[:200])
    with pytest.raises(ArchiveError, match="cut.h5.gz: corrupt gzip data"):
        extract(tmp_path / "cut.h5.gz", tmp_path)
    assert not (tmp_path / "cut.h5").exists() and not (tmp_path / "cut.h5.part").exists()


# The ImageNet family

SYNSETS = f"{TENCH} tench, Tinca tinca\n{GOLDFISH} goldfish, Carassius auratus\n" \
          f"{SHARK} great white shark, white shark\n"


@pytest.fixture()
def kaggle_ilsvrc(tmp_path):
    """Kaggle's layout: lists at the top, images in ILSVRC/Data/CLS-LOC/{train,val}, val flat."""
    (tmp_path / "LOC_synset_mapping.txt").write_text(SYNSETS)
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n"
        f"ILSVRC2012_val_00000001,{SHARK} 10 20 30 40 {SHARK} 1 2 3 4\n"
        f"ILSVRC2012_val_00000002,{TENCH} 5 6 7 8\n"
        f"ILSVRC2012_val_00000003,{GOLDFISH} 5 6 7 8\n")
    root = tmp_path / "ILSVRC" / "Data" / "CLS-LOC"
    write_images(root, f"train/{TENCH}/{TENCH}_1.JPEG", f"train/{TENCH}/{TENCH}_2.JPEG",
                 f"train/{SHARK}/{SHARK}_9.JPEG", "val/ILSVRC2012_val_00000001.JPEG",
                 "val/ILSVRC2012_val_00000002.JPEG", "test/ILSVRC2012_test_00000001.JPEG")
    return root


def test_ilsvrc_flat_validation_labelled_by_the_solution_file(kaggle_ilsvrc):
    with pytest.warns(UserWarning, match="1 file"):
        frame = read_ilsvrc(kaggle_ilsvrc, strict=False)
    assert list(frame.columns) == ["path", "label", "wnid", "class_name", "split"]
    assert frame[["split", "label", "wnid", "class_name"]].values.tolist() == [
        ["train", 0, TENCH, "tench"], ["train", 0, TENCH, "tench"],
        ["train", 2, SHARK, "great white shark"],
        ["val", 2, SHARK, "great white shark"], ["val", 0, TENCH, "tench"]]
    assert frame.attrs["problems"] == [(str(kaggle_ilsvrc / "val" / "ILSVRC2012_val_00000003"),
                                        f"listed in {kaggle_ilsvrc.parents[2]}/"
                                        "LOC_val_solution.csv but absent")]
    write_images(kaggle_ilsvrc, "val/ILSVRC2012_val_00000003.JPEG", "val/stray.JPEG")
    with pytest.raises(LayoutError, match="stray.JPEG: not listed in"):
        read_ilsvrc(kaggle_ilsvrc)


def test_ilsvrc_validation_in_class_folders(tmp_path):
    write_images(tmp_path, f"train/{TENCH}/a.JPEG", f"train/{GOLDFISH}/b.JPEG",
                 f"val/{GOLDFISH}/c.JPEG", f"val/{SHARK}/d.JPEG")
    with pytest.raises(LayoutError, match=f"'{SHARK}' is not one of the 2 classes"):
        read_ilsvrc(tmp_path)  # without a synset list, the classes are train's folders
    (tmp_path / "LOC_synset_mapping.txt").write_text(SYNSETS)
    frame = read_ilsvrc(tmp_path)
    assert frame[["split", "label", "wnid", "class_name"]].values.tolist() == [
        ["train", 0, TENCH, "tench"], ["train", 1, GOLDFISH, "goldfish"],
        ["val", 1, GOLDFISH, "goldfish"], ["val", 2, SHARK, "great white shark"]]


def test_ilsvrc_flat_validation_without_solution_file(tmp_path):
    write_images(tmp_path, f"train/{TENCH}/a.JPEG", "val/ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(FileNotFoundError, match="LOC_val_solution.csv"):
        read_ilsvrc(tmp_path)
    (tmp_path / "LOC_val_solution.csv").write_text("ImageId,Label\nx,y\n")
    with pytest.raises(ValueError, match="expected columns ImageId, PredictionString"):
        read_ilsvrc(tmp_path)


def test_tiny_imagenet(tmp_path):
    (tmp_path / "wnids.txt").write_text(f"{SHARK}\n{TENCH}\n")
    (tmp_path / "words.txt").write_text("".join(line.replace(" ", "\t", 1) + "\n"
                                                for line in SYNSETS.splitlines()))
    write_images(tmp_path, f"train/{TENCH}/images/{TENCH}_0.JPEG",
                 f"train/{SHARK}/images/{SHARK}_0.JPEG", f"train/{SHARK}/images/{SHARK}_1.JPEG",
                 "val/images/val_0.JPEG", "val/images/val_1.JPEG", "test/images/test_0.JPEG",
                 size=(64, 64))
    (tmp_path / "train" / SHARK / f"{SHARK}_boxes.txt").write_text(f"{SHARK}_0.JPEG\t0\t0\t9\t9\n")
    (tmp_path / "val" / "val_annotations.txt").write_text(
        f"val_0.JPEG\t{SHARK}\t0\t0\t63\t63\nval_1.JPEG\t{TENCH}\t1\t2\t3\t4\n")
    frame = read_tiny_imagenet(tmp_path)
    assert frame[["split", "label", "wnid", "class_name"]].values.tolist() == [
        ["train", 0, TENCH, "tench"], ["train", 1, SHARK, "great white shark"],
        ["train", 1, SHARK, "great white shark"], ["val", 1, SHARK, "great white shark"],
        ["val", 0, TENCH, "tench"]]
    write_images(tmp_path, f"train/{GOLDFISH}/images/x.JPEG", f"train/{TENCH}/y.JPEG")
    with pytest.raises(LayoutError) as caught:
        read_tiny_imagenet(tmp_path)
    assert sorted(problem for _, problem in caught.value.problems) == [
        f"{GOLDFISH} is not in {tmp_path}/wnids.txt",
        "not in a train/<wnid>/images/<image> position"]


def test_imagenette(tmp_path):
    write_images(tmp_path, "train/n03888257/a.JPEG", "train/n01440764/b.JPEG",
                 "val/n03888257/c.JPEG")
    frame = read_imagenette(tmp_path)
    assert frame[["split", "label", "wnid", "class_name"]].values.tolist() == [
        ["train", 0, "n01440764", "tench"], ["train", 1, "n03888257", "parachute"],
        ["val", 1, "n03888257", "parachute"]]


# CIFAR, written in the publisher's formats

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck"]


def cifar_batch(n, seed, n_classes=10):
    """images (n, 32, 32, 3) uint8 and labels (n,) as the loaders should return them."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
            rng.integers(0, n_classes, n))


def planes(images):
    """(n, 3072) rows: the R, G and B planes of each image, row by row."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


@pytest.fixture()
def cifar10_batches():
    """{file stem: (images, labels)}: five training batches of 3 images, a test batch of 2."""
    stems = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    return {stem: cifar_batch(2 if stem == "test_batch" else 3, seed)
            for seed, stem in enumerate(stems)}


def write_cifar10_binary(root, batches):
    folder = root / "cifar-10-batches-bin"
    folder.mkdir()
    for stem, (images, labels) in batches.items():
        records = np.hstack([np.asarray(labels, np.uint8)[:, None], planes(images)])
        (folder / f"{stem}.bin").write_bytes(records.tobytes())
    (folder / "batches.meta.txt").write_text("\n".join(CIFAR10_NAMES) + "\n\n")
    return folder


def write_cifar10_python(root, batches):
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    for stem, (images, labels) in batches.items():
        content = {b"batch_label": stem.encode(), b"labels": [int(x) for x in labels],
                   b"data": planes(images), b"filenames": [b"x.png"] * len(labels)}
        (folder / stem).write_bytes(pickle.dumps(content, protocol=2))
    meta = {b"num_cases_per_batch": 3, b"label_names": [n.encode() for n in CIFAR10_NAMES],
            b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


@pytest.mark.parametrize("write", [write_cifar10_binary, write_cifar10_python])
def test_cifar10_versions(tmp_path, cifar10_batches, write):
    folder = write(tmp_path, cifar10_batches)
    for root in (tmp_path, folder):
        images, labels, names = load_cifar10(root, "train")
        assert images.shape == (15, 32, 32, 3) and images.dtype == np.uint8
        assert labels.dtype == np.int64 and names == CIFAR10_NAMES
        expected = [cifar10_batches[f"data_batch_{i}"] for i in range(1, 6)]
        np.testing.assert_array_equal(images, np.concatenate([e[0] for e in expected]))
        np.testing.assert_array_equal(labels, np.concatenate([e[1] for e in expected]))
    images, labels, _ = load_cifar10(tmp_path, "test")
    np.testing.assert_array_equal(images, cifar10_batches["test_batch"][0])


def test_cifar100_binary_and_python(tmp_path):
    images, fine = cifar_batch(4, 0, n_classes=100)
    coarse = fine // 5
    binary = tmp_path / "cifar-100-binary"
    binary.mkdir()
    records = np.hstack([coarse[:, None], fine[:, None], planes(images)]).astype(np.uint8)
    (binary / "train.bin").write_bytes(records.tobytes())
    (binary / "fine_label_names.txt").write_text("\n".join(f"f{i}" for i in range(100)))
    (binary / "coarse_label_names.txt").write_text("\n".join(f"c{i}" for i in range(20)))
    python = tmp_path / "python" / "cifar-100-python"
    python.mkdir(parents=True)
    (python / "train").write_bytes(pickle.dumps({b"data": planes(images),
                                                 b"fine_labels": fine.tolist(),
                                                 b"coarse_labels": coarse.tolist()}, protocol=2))
    (python / "meta").write_bytes(pickle.dumps(
        {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
         b"coarse_label_names": [f"c{i}".encode() for i in range(20)]}, protocol=2))
    for root in (tmp_path, python.parent):
        got_images, got_fine, fine_names = load_cifar100(root, "train")
        np.testing.assert_array_equal(got_images, images)
        np.testing.assert_array_equal(got_fine, fine)
        _, got_coarse, coarse_names = load_cifar100(root, "train", labels="coarse")
        np.testing.assert_array_equal(got_coarse, coarse)
        assert len(fine_names) == 100 and coarse_names[3] == "c3"


def test_cifar_damaged_files_name_the_file(tmp_path, cifar10_batches):
    folder = write_cifar10_binary(tmp_path, cifar10_batches)
    path = folder / "data_batch_2.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="data_batch_2.bin: 9218 bytes is not a whole number"):
        load_cifar10(tmp_path)
    with pytest.raises(ValueError, match=r"test_batch.bin: labels run from \d+ to \d+, outside "
                                         "the 3 classes"):
        read_cifar_binary(folder / "test_batch.bin", n_classes=3)
    with pytest.raises(ValueError, match="labels must be one of"):
        load_cifar100(tmp_path, labels="medium")
    with pytest.raises(FileNotFoundError, match="neither cifar-100-binary/ nor cifar-100-python/"):
        load_cifar100(tmp_path)


def test_cifar_pickles_build_only_arrays(tmp_path):
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": collections.OrderedDict()}))
    with pytest.raises(ValueError, match="collections.OrderedDict is not allowed"):
        read_cifar_pickle(tmp_path / "test_batch")
    (tmp_path / "notes.pkl").write_bytes(pickle.dumps({}))
    with pytest.raises(ValueError, match="notes.pkl: not a CIFAR file name"):
        read_cifar_pickle(tmp_path / "notes.pkl")
    (tmp_path / "meta").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="meta: not a CIFAR pickle"):
        read_cifar_pickle(tmp_path / "meta")


# Download registry: the image sets, and MD5 checking

def test_registry_lists_the_image_sets():
    assert [f.filename for f in DATASETS["pcam"]] == [
        f"camelyonpatch_level_2_split_{split}_{part}.h5.gz"
        for split in ("train", "valid", "test") for part in ("x", "y")]
    assert [f.filename for f in DATASETS["kather2016"]] == [
        "Kather_texture_2016_image_tiles_5000.zip"]
    assert [f.filename for f in DATASETS["imagenette"]] == ["imagenette2-160.tgz"]
    (cifar10,) = DATASETS["cifar10"]
    assert cifar10.filename == "cifar-10-binary.tar.gz"
    assert cifar10.md5 == "c32a1d4ab5d03f1284b67883e8d87530"


def test_fetch_checks_md5(tmp_path, monkeypatch):
    payload = b"cifar bytes"
    monkeypatch.setitem(DATASETS, "toy", (RemoteFile("https://example.invalid/toy.bin",
                                                     extract=False,
                                                     md5="0" * 32),))
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "toy.bin").write_bytes(payload)  # already downloaded: no network
    with pytest.raises(ChecksumError, match="toy.bin: MD5 mismatch") as caught:
        fetch("toy", tmp_path)
    assert "delete it to download again" in str(caught.value)
    assert str(pickle.loads(pickle.dumps(caught.value))) == str(caught.value)
    good = RemoteFile("https://example.invalid/toy.bin", extract=False,
                      md5=hashlib.md5(payload).hexdigest().upper())
    monkeypatch.setitem(DATASETS, "toy", (good,))
    assert fetch("toy", tmp_path) == tmp_path / "toy"


# The shared benchmark data

@pytest.fixture(scope="module")
def pcam_subset(tmp_path_factory):
    return extracted_shared("pcam-subset.tar", tmp_path_factory)


@pytest.fixture(scope="module")
def cifar10_sample(tmp_path_factory):
    """From the real cifar10.tar: its member names, and a tree holding the test split's
    names (empty placeholders: the layout reader reads names only) and the real first
    image of every class folder. Writing all 60000 files takes 20-40 s on a busy machine."""
    archive = shared_data_dir() / "cifar10.tar"
    if not archive.is_file():
        pytest.skip(f"{archive} not found (set TERAFEAT_SHARED_DATA to the benchmark data folder)")
    dest = tmp_path_factory.mktemp("cifar10")
    with tarfile.open(archive) as tarred:
        members = tarred.getmembers()
        for member in members:
            path = dest / member.name
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
            elif path.name == "0000.jpg":
                path.write_bytes(tarred.extractfile(member).read())
            elif member.isfile() and path.parts[-3] == "test":
                path.touch()
    return dest / "cifar10", [member.name for member in members if member.isfile()]


def test_real_pcam_subset(pcam_subset):
    frame = read_pcam_folders(pcam_subset)
    assert frame.attrs["problems"] == []
    assert frame.groupby(["split", "label"]).size().to_dict() == {
        ("test", 0): 1500, ("test", 1): 1500, ("train", 0): 5000, ("train", 1): 5000}
    assert (frame.path.str.split("/").str[-2].astype(int) == frame.label).all()
    sample = frame.groupby(["split", "label"]).head(50)  # 200 tiles
    batches = list(iter_image_batches(sample.path, batch_size=64))
    assert [len(images) for _, images, _ in batches] == [64, 64, 64, 8]
    assert all(problems == [] for _, _, problems in batches)
    assert {images.shape[1:] for _, images, _ in batches} == {(96, 96, 3)}
    tiles = np.concatenate([images for _, images, _ in batches])
    assert 0.3 < tiles.mean() < 0.9 and tiles.std() > 0.05  # H&E stain, not blank


def test_real_cifar10_folders(cifar10_sample):
    root, names = cifar10_sample
    per_class = collections.Counter(tuple(name.split("/")[1:3]) for name in names)
    assert len(per_class) == 20 and {n for (split, _), n in per_class.items()
                                     if split == "train"} == {5000}
    frame = read_image_folders(root, splits=("train", "test"))
    assert frame.attrs["classes"] == CIFAR10_NAMES and frame.attrs["problems"] == []
    counts = frame.groupby(["split", "class_name"]).size()
    assert set(counts["test"]) == {1000} and set(counts["train"]) == {1}  # train: 0000.jpg
    firsts = frame[frame.path.str.endswith("/0000.jpg")]
    images, kept, problems = read_images(firsts.path)
    assert images.shape == (20, 32, 32, 3) and problems == []
    assert (frame.groupby("class_name").label.unique().map(len) == 1).all()


# One listing over every image set (terafeat.datasets.image_sets)

@pytest.mark.parametrize("write", [write_cifar10_binary, write_cifar10_python])
def test_cifar_listing_reads_records_exactly(tmp_path, cifar10_batches, write):
    from terafeat.datasets.image_sets import list_image_set, read_listed_images
    write(tmp_path, cifar10_batches)
    listing = list_image_set("cifar10", tmp_path)
    assert len(listing) == 17 and set(listing["split"]) == {"train", "test"}
    assert listing.attrs["classes"] == CIFAR10_NAMES
    test_rows = listing[listing["split"] == "test"]
    images, kept, problems = read_listed_images(test_rows, 32, listing.attrs["reader"])
    expected, labels = cifar10_batches["test_batch"]
    np.testing.assert_array_equal(np.round(images * 255).astype(np.uint8), expected)
    assert kept.tolist() == [0, 1] and problems == []
    assert test_rows["label"].tolist() == list(labels)
    resized, _, _ = read_listed_images(test_rows, 16, listing.attrs["reader"])
    assert resized.shape == (2, 16, 16, 3)


def test_prepared_listing_mirrors_training_copies(tmp_path):
    from terafeat.datasets.image_sets import list_image_set, prepare_listing, read_listed_images
    write_images(tmp_path, "train/cat/a.png", "train/dog/b.png", "test/cat/c.png",
                 size=(8, 8))
    listing = list_image_set("folders", tmp_path)
    plain = prepare_listing(listing, random_state=3)
    mirrored = prepare_listing(listing, random_state=3, mirror_train=True)
    assert not plain["mirror"].any()
    train = mirrored[mirrored["split"] == "train"].reset_index(drop=True)
    assert len(train) == 4 and train["mirror"].sum() == 2
    assert sorted(train["path"][train["mirror"]]) == sorted(train["path"][~train["mirror"]])
    assert not mirrored[mirrored["split"] == "test"]["mirror"].any()
    both = prepare_listing(listing, random_state=3, mirror_test=True)
    test = both[both["split"] == "test"].reset_index(drop=True)
    assert test["mirror"].tolist() == [False, True] and test["path"].nunique() == 1
    images, kept, _ = read_listed_images(train, 8)
    assert kept.tolist() == [0, 1, 2, 3]
    for path in set(train["path"]):
        rows = train["path"] == path
        flipped = images[(rows & train["mirror"]).to_numpy()][0]
        original = images[(rows & ~train["mirror"]).to_numpy()][0]
        np.testing.assert_array_equal(flipped, original[:, ::-1])
        assert not np.array_equal(flipped, original)


def test_prepared_listing_shifts_training_copies(tmp_path):
    from terafeat.datasets.image_sets import list_image_set, prepare_listing, read_listed_images
    write_images(tmp_path, "train/cat/a.png", "train/dog/b.png", "test/cat/c.png",
                 size=(8, 8))
    listing = list_image_set("folders", tmp_path)
    shifted = prepare_listing(listing, random_state=5, train_repeat=2, shift_train=3, max_shift=2)
    assert shifted.equals(prepare_listing(listing, random_state=5, train_repeat=2, shift_train=3,
                                          max_shift=2))
    train = shifted[shifted["split"] == "train"].reset_index(drop=True)
    assert len(train) == 2 * 2 * (1 + 3)
    offsets = train[["shift_y", "shift_x"]].to_numpy()
    moved = np.any(offsets != 0, axis=1)
    assert moved.sum() == 2 * 2 * 3 and np.abs(offsets).max() <= 2
    assert not train["mirror"].any()  # only mirror_train mirrors shifted copies
    assert not shifted[shifted["split"] == "test"][["shift_y", "shift_x"]].to_numpy().any()
    images, kept, _ = read_listed_images(train, 8)
    assert kept.tolist() == list(range(len(train)))
    for row in np.flatnonzero(moved):
        dy, dx = offsets[row]
        original = images[np.flatnonzero((train["path"] == train["path"][row]) & ~moved)[0]]
        # every pixel comes from the original, moved by (dy, dx), clipped at the edges
        ys = np.clip(np.arange(8) - dy, 0, 7)
        xs = np.clip(np.arange(8) - dx, 0, 7)
        np.testing.assert_array_equal(images[row], original[ys][:, xs])
        assert not np.array_equal(images[row], original)
    mirrored = prepare_listing(listing, random_state=5, mirror_train=True, shift_train=4)
    copies = mirrored[(mirrored["shift_y"] != 0) | (mirrored["shift_x"] != 0)]
    assert len(copies) == 2 * 4 and 0 < copies["mirror"].sum() < len(copies)
    with pytest.raises(ValueError, match="max_shift >= 1"):
        prepare_listing(listing, shift_train=1, max_shift=0)


def test_folder_listing_skips_a_corrupt_image_and_names_it(tmp_path):
    from terafeat.datasets.image_sets import COLUMNS, list_image_set, read_listed_images
    write_images(tmp_path, "train/cat/a.png", "train/dog/b.jpg", "test/cat/c.png",
                 size=(12, 10))
    (tmp_path / "train" / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    listing = list_image_set("folders", tmp_path)
    assert list(listing.columns) == COLUMNS and (listing["record"] == -1).all()
    assert listing.attrs["classes"] == ["cat", "dog"]
    train = listing[listing["split"] == "train"].reset_index(drop=True)
    images, kept, problems = read_listed_images(train, 8)
    assert images.shape == (2, 8, 8, 3) and images.dtype == np.float32
    assert [train["path"][i].rsplit("/", 1)[1] for i in kept] == ["a.png", "b.jpg"]
    assert len(problems) == 1 and problems[0][0].endswith("broken.jpg")
    with pytest.raises(ValueError, match="dataset"):
        list_image_set("mnist", tmp_path)
