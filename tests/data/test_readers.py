"""Every reader on tiny fixtures in the official on-disk format, plus layout/corruption errors."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from leannets.data import build_dataset, list_datasets
from leannets.engine.recipe import load_recipe


def _data_cfg(name: str, root: Path | None, **kw) -> dict:
    return load_recipe({"model": {"name": "densenet_bc_cifar_6_6_6"},
                        "data": {"name": name, "root": str(root) if root else None, **kw}})["data"]


# ---------------------------------------------------------------------------------------- CIFAR
def _cifar_batch(path: Path, n: int, seed: int, label_key: str = "labels", classes: int = 10) -> tuple:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = rng.integers(0, classes, n).tolist()
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"x", b"data": data, label_key.encode(): labels}, f, protocol=2)
    return data, labels


@pytest.fixture
def cifar10_root(tmp_path: Path) -> Path:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        _cifar_batch(folder / f"data_batch_{i}", 4, i)
    _cifar_batch(folder / "test_batch", 3, 9)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f, protocol=2)
    return tmp_path


def test_cifar10_reads_pixels_in_channel_major_order(cifar10_root: Path):
    splits = build_dataset(_data_cfg("cifar10", cifar10_root))
    assert len(splits.train) == 20 and len(splits.eval) == 3
    with open(cifar10_root / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    first = torch.from_numpy(raw[b"data"][0].reshape(3, 32, 32))
    assert torch.equal(splits.train.images[0], first)
    assert splits.train.labels[:4].tolist() == raw[b"labels"]
    assert splits.class_names == [f"c{i}" for i in range(10)]
    assert splits.train.images.dtype == torch.uint8 and splits.input_size == (3, 32, 32)
    # The batches folder itself is accepted as data.root.
    same = build_dataset(_data_cfg("cifar10", cifar10_root / "cifar-10-batches-py"))
    assert torch.equal(same.train.images, splits.train.images)


def test_cifar10_missing_and_corrupt_files_are_named(cifar10_root: Path):
    folder = cifar10_root / "cifar-10-batches-py"
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        build_dataset(_data_cfg("cifar10", cifar10_root))
    (folder / "data_batch_3").write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match="data_batch_3.*corrupt"):
        build_dataset(_data_cfg("cifar10", cifar10_root))
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        build_dataset(_data_cfg("cifar10", cifar10_root / "nowhere"))


def test_cifar_pickle_with_code_is_refused(cifar10_root: Path, tmp_path: Path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return os.system, (f"touch {marker}",)

    with open(cifar10_root / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": [0]}, f, protocol=2)
    with pytest.raises(ValueError, match="test_batch"):
        build_dataset(_data_cfg("cifar10", cifar10_root))
    assert not marker.exists()


def test_cifar10_wrong_shape_is_rejected(cifar10_root: Path):
    with open(cifar10_root / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f, protocol=2)
    with pytest.raises(ValueError, match=r"test_batch.*\(N, 3072\)"):
        build_dataset(_data_cfg("cifar10", cifar10_root))


def test_cifar100_fine_and_coarse(tmp_path: Path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n in (("train", 6), ("test", 2)):
        rng = np.random.default_rng(n)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"fine_labels": list(range(90, 90 + n)), b"coarse_labels": [19] * n}, f, protocol=2)
    fine = build_dataset(_data_cfg("cifar100", tmp_path))
    assert fine.num_classes == 100 and fine.train.labels.tolist() == list(range(90, 96))
    coarse = build_dataset(_data_cfg("cifar100", tmp_path, label_type="coarse"))
    assert coarse.num_classes == 20 and coarse.eval.labels.tolist() == [19, 19]


# ----------------------------------------------------------------------------------------- SVHN
def _svhn(path: Path, n: int, seed: int) -> np.ndarray:
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = (np.arange(n) % 10 + 1).reshape(-1, 1).astype(np.uint8)
    savemat(str(path), {"X": x, "y": y})
    return x


def test_svhn_mat_layout_and_label_10_is_zero(tmp_path: Path):
    x = _svhn(tmp_path / "train_32x32.mat", 12, 0)
    _svhn(tmp_path / "test_32x32.mat", 5, 1)
    s = build_dataset(_data_cfg("svhn", tmp_path))
    assert len(s.train) == 12 and len(s.eval) == 5
    assert torch.equal(s.train.images[3], torch.from_numpy(x[:, :, :, 3].transpose(2, 0, 1).copy()))
    assert s.train.labels[:10].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    with pytest.raises(FileNotFoundError, match="extra_32x32.mat"):
        build_dataset(_data_cfg("svhn", tmp_path, svhn_extra=True))
    _svhn(tmp_path / "extra_32x32.mat", 3, 2)
    assert len(build_dataset(_data_cfg("svhn", tmp_path, svhn_extra=True)).train) == 15
    (tmp_path / "test_32x32.mat").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="test_32x32.mat"):
        build_dataset(_data_cfg("svhn", tmp_path))


# ---------------------------------------------------------------------------------------- STL-10
def test_stl10_binary_column_major(tmp_path: Path):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (3, 3, 96, 96), dtype=np.uint8)  # (N, C, H, W)
    # The official files store each channel column-major (transposed).
    imgs.transpose(0, 1, 3, 2).tofile(folder / "train_X.bin")
    np.array([1, 10, 5], np.uint8).tofile(folder / "train_y.bin")
    imgs[:2].transpose(0, 1, 3, 2).tofile(folder / "test_X.bin")
    np.array([2, 3], np.uint8).tofile(folder / "test_y.bin")
    (folder / "class_names.txt").write_text("\n".join(f"n{i}" for i in range(10)))
    s = build_dataset(_data_cfg("stl10", tmp_path))
    assert torch.equal(s.train.images, torch.from_numpy(imgs))
    assert s.train.labels.tolist() == [0, 9, 4] and s.input_size == (3, 96, 96)
    assert s.class_names[0] == "n0"
    with open(folder / "test_X.bin", "ab") as f:
        f.write(b"\x01\x02")
    with pytest.raises(ValueError, match="test_X.bin.*multiple"):
        build_dataset(_data_cfg("stl10", tmp_path))


# ---------------------------------------------------------------------------------- ImageNet32
def test_imagenet32_npz_batches(tmp_path: Path):
    rng = np.random.default_rng(0)
    for i in (1, 2, 10):
        np.savez(tmp_path / f"train_data_batch_{i}.npz", data=rng.integers(0, 256, (2, 3072), dtype=np.uint8),
                 labels=np.array([i, 1000]))
    vx = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
    np.savez(tmp_path / "val_data.npz", data=vx, labels=np.array([1, 2, 3]))
    s = build_dataset(_data_cfg("imagenet32", tmp_path))
    assert len(s.train) == 6 and s.num_classes == 1000
    assert s.train.labels.tolist() == [0, 999, 1, 999, 9, 999]  # numeric batch order, labels 0-based
    assert torch.equal(s.eval.images[2], torch.from_numpy(vx[2].reshape(3, 32, 32)))
    np.savez(tmp_path / "val_data.npz", data=vx, labels=np.array([1, 2, 1001]))
    with pytest.raises(ValueError, match="val_data.npz.*1..1000"):
        build_dataset(_data_cfg("imagenet32", tmp_path))
    (tmp_path / "val_data.npz").unlink()
    with pytest.raises(FileNotFoundError, match="val_data.npz"):
        build_dataset(_data_cfg("imagenet32", tmp_path))


# ------------------------------------------------------------------------- Tiny-ImageNet, folders
def _img(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    root = tmp_path / "tiny-imagenet-200"
    wnids = ["n01", "n02", "n03"]
    (root).mkdir()
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for i, w in enumerate(wnids):
        for j in range(2):
            _img(root / "train" / w / "images" / f"{w}_{j}.JPEG", (80 * i, 10 * j, 0))
    lines = []
    for i, w in enumerate(reversed(wnids)):
        _img(root / "val" / "images" / f"val_{i}.JPEG", (0, 0, 80 * i))
        lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_tiny_imagenet_folders_in_memory_and_streamed(tiny_root: Path):
    s = build_dataset(_data_cfg("tiny_imagenet", tiny_root))
    assert s.in_memory and len(s.train) == 6 and len(s.eval) == 3 and s.num_classes == 3
    assert [s.train[i][1] for i in range(6)] == [0, 0, 1, 1, 2, 2]
    assert [s.eval[i][1] for i in range(3)] == [2, 1, 0]
    assert s.class_names == ["n01", "n02", "n03"]
    streamed = build_dataset(_data_cfg("tiny_imagenet", tiny_root, in_memory=False))
    x, y = streamed.eval[0]
    assert x.shape == (3, 64, 64) and x.dtype == torch.uint8 and y == 2


@pytest.mark.parametrize("name", ["tiny_imagenet", "imagefolder"])
def test_in_memory_and_streamed_resolve_to_the_same_preprocessing(tmp_path: Path, tiny_root: Path, name: str):
    """data.in_memory chooses storage only: the same recipe gives the same transforms, statistics and
    description, and the same pixels for one image in training (same seed, epoch) and in evaluation."""
    if name == "imagefolder":
        rng = np.random.default_rng(0)
        for split in ("train", "val"):
            for c in ("cat", "dog"):
                path = tmp_path / "folder" / split / c / "0.png"
                path.parent.mkdir(parents=True)
                Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(path)
        root, kw = tmp_path / "folder", {"input_size": 24}
    else:
        noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(noisy).save(tiny_root / "tiny-imagenet-200" / "train" / "n01" / "images" / "n01_1.JPEG")
        root, kw = tiny_root, {"input_size": 56}
    held = build_dataset(_data_cfg(name, root, in_memory=True, **kw))
    streamed = build_dataset(_data_cfg(name, root, in_memory=False, **kw))
    assert held.in_memory and not streamed.in_memory
    assert (held.mean, held.std, held.input_size) == (streamed.mean, streamed.std, streamed.input_size)
    prep_h, prep_s = held.meta["preprocessing"], streamed.meta["preprocessing"]
    assert prep_h.pop("storage") != prep_s.pop("storage") and prep_h == prep_s
    assert prep_h["train"].startswith("RandomResizedCrop(") and "crop_pct 0.875" in prep_h["eval"]
    for split in ("train", "eval"):
        a, b = getattr(held, split), getattr(streamed, split)
        a.set_seed(3), b.set_seed(3), a.set_epoch(2), b.set_epoch(2)
        xa, ya = a[1]
        xb, yb = b[1]
        assert ya == yb and xa.shape == (3, kw["input_size"], kw["input_size"]) and torch.equal(xa, xb)
    held.train.set_epoch(4)  # another epoch draws another crop: the comparison above is not vacuous
    assert not torch.equal(held.train[1][0], streamed.train[1][0])


def test_tiny_imagenet_errors_name_the_problem(tiny_root: Path):
    root = tiny_root / "tiny-imagenet-200"
    ann = root / "val" / "val_annotations.txt"
    ann.write_text(ann.read_text() + "val_9.JPEG\tn99\t0\t0\t1\t1\n")
    with pytest.raises(ValueError, match="val_annotations.txt:4.*n99"):
        build_dataset(_data_cfg("tiny_imagenet", tiny_root))
    ann.unlink()
    with pytest.raises(FileNotFoundError, match="val_annotations.txt"):
        build_dataset(_data_cfg("tiny_imagenet", tiny_root))


def test_imagefolder_streams_with_random_resized_crop(tmp_path: Path):
    for split, n in (("train", 3), ("val", 1)):
        for c, color in (("cat", (255, 0, 0)), ("dog", (0, 255, 0))):
            for j in range(n):
                _img(tmp_path / split / c / f"{j}.png", color, (50, 40))
    s = build_dataset(_data_cfg("imagefolder", tmp_path, input_size=24))
    assert not s.in_memory and s.class_names == ["cat", "dog"] and len(s.train) == 6
    s.train.set_seed(0)
    x, y = s.train[4]
    assert x.shape == (3, 24, 24) and y == 1
    assert x[1].float().mean() > 250 and x[0].float().mean() < 5  # a crop of a green image stays green
    x2, _ = s.train[4]
    assert torch.equal(x, x2)  # same (seed, epoch, index) -> same crop
    (tmp_path / "val" / "dog" / "0.png").write_bytes(b"broken")
    with pytest.raises(ValueError, match="0.png.*corrupt"):
        s2 = build_dataset(_data_cfg("imagefolder", tmp_path, input_size=24))
        s2.eval[1]
    (tmp_path / "val" / "bird").mkdir()
    _img(tmp_path / "val" / "bird" / "0.png", (1, 2, 3))
    with pytest.raises(ValueError, match="bird"):
        build_dataset(_data_cfg("imagefolder", tmp_path, input_size=24))


def test_an_empty_class_folder_is_an_error_naming_it(tmp_path: Path):
    for split in ("train", "val"):
        for c in ("cat", "dog"):
            _img(tmp_path / split / c / "0.png", (9, 9, 9))
    (tmp_path / "train" / "emu").mkdir()
    with pytest.raises(ValueError, match=r"class folder\(s\) .*train/emu contain no images"):
        build_dataset(_data_cfg("imagefolder", tmp_path, input_size=8))


# -------------------------------------------------------------------------------- embedded + real
def test_digits_embedded_is_real_and_fixed():
    s = build_dataset(_data_cfg("digits", None))
    assert len(s.train) + len(s.eval) == 1797 and s.input_size == (3, 32, 32)
    assert sorted(set(s.eval.labels.tolist())) == list(range(10))
    again = build_dataset(_data_cfg("digits", None))
    assert torch.equal(s.eval.images, again.eval.images)
    assert all(0 < m < 1 for m in s.mean) and all(0 < v < 1 for v in s.std)


def test_unknown_dataset_and_missing_root():
    assert {"cifar10", "cifar100", "svhn", "stl10", "tiny_imagenet", "imagenet32", "imagefolder",
            "digits"} <= set(list_datasets())
    with pytest.raises(ValueError, match="cifar10"):
        build_dataset(_data_cfg("cifar10", None))
    with pytest.raises(ValueError, match="unknown dataset 'cifar11'.*cifar10"):
        _data_cfg("cifar11", None)


def test_shared_cifar10_subset_loads(shared_data: Path):
    s = build_dataset(_data_cfg("cifar10", shared_data / "cifar10-subset"))
    assert len(s.train) == 5085 and len(s.eval) == 1017 and s.num_classes == 10
    assert s.class_names[0] == "airplane"
    # Real photos: per-channel means close to CIFAR-10's published (0.491, 0.482, 0.447).
    assert np.allclose(s.mean, (0.4914, 0.4822, 0.4465), atol=0.02)


def test_image_files_are_checked_for_truncation_in_list_order(tmp_path):
    import numpy as np
    from PIL import Image

    from leannets.data.transforms import check_image_files

    paths = []
    for i in range(300):  # above the threaded threshold
        path = tmp_path / (f"{i}.png" if i % 2 else f"{i}.jpg")
        Image.fromarray(np.full((8, 8, 3), i % 255, np.uint8)).save(path)
        paths.append(path)
    check_image_files(paths)  # intact files pass
    paths[201].write_bytes(paths[201].read_bytes()[:-12])  # a PNG without its IEND chunk
    paths[250].write_bytes(paths[250].read_bytes()[:40])  # a JPEG cut short
    with pytest.raises(ValueError, match=r"201.png is a truncated PNG"):
        check_image_files(paths)
    paths[201].write_bytes(b"")
    with pytest.raises(ValueError, match=r"201.png is empty"):
        check_image_files(paths[:210])
    with pytest.raises(ValueError, match=r"250.jpg is a truncated JPEG"):
        check_image_files(paths[240:])


def test_a_text_file_named_jpg_fails_the_up_front_check(tmp_path):
    """It used to pass (no JPEG magic, so no end-marker check) and fail mid-epoch, or not at all."""
    from leannets.data.transforms import check_image_files

    fake = tmp_path / "notes.jpg"
    fake.write_text("these are my notes, not a picture\n")
    with pytest.raises(ValueError, match=r"notes\.jpg is corrupt or not an image"):
        check_image_files([fake])
