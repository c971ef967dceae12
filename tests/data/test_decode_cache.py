"""Decode-once cache for JPEG class folders and the ``cifar10_jpeg`` dataset (a few real files only)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import leannets.data.decode_cache as dc
from leannets.data import build_dataset

CLASSES = ("airplane", "cat", "truck")


@pytest.fixture(autouse=True)
def _console():
    """The one-line messages go through the library's console handler (set up by the CLI; by hand here)."""
    from leannets._log import configure

    configure(0)



def _fixture_tree(root: Path, shared: Path | None) -> Path:
    """3 classes × (3 train, 2 test) 32×32 JPEGs: real CIFAR-10 files when ../shared is there, else synthetic."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for c in CLASSES:
            folder = root / split / c
            folder.mkdir(parents=True)
            real = sorted((shared / split / c).glob("*.jpg"))[:n] if shared else []
            for i in range(n):
                if real:
                    shutil.copy(real[i], folder / f"{i:04d}.jpg")
                else:
                    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i:04d}.jpg")
    return root


@pytest.fixture
def tree(tmp_path, monkeypatch):
    shared = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10-jpeg"
    monkeypatch.setenv("LEANNETS_CACHE", str(tmp_path / "cache"))
    return _fixture_tree(tmp_path / "cifar10-jpeg", shared if shared.is_dir() else None)


def _count_decodes(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = dc.decode_to_tensors

    def counting(samples, *args, **kwargs):
        calls.append(len(samples))
        return real(samples, *args, **kwargs)

    monkeypatch.setattr(dc, "decode_to_tensors", counting)
    return calls


def test_dataset_reads_class_folders_and_decodes_once(tree, monkeypatch, capsys):
    calls = _count_decodes(monkeypatch)
    first = build_dataset({"name": "cifar10_jpeg", "root": str(tree)})
    assert first.class_names == list(CLASSES) and first.num_classes == 3 and first.input_size == (3, 32, 32)
    assert len(first.train) == 9 and len(first.eval) == 6 and first.train.images.dtype == torch.uint8
    assert first.train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert calls == [9, 6] and "decoding 9 cifar10_jpeg training images once" in capsys.readouterr().err
    second = build_dataset({"name": "cifar10_jpeg", "root": str(tree)})
    assert calls == [9, 6]  # both splits came from the cache
    assert torch.equal(second.train.images, first.train.images) and torch.equal(second.eval.labels, first.eval.labels)
    files = list((tree.parent / "cache").glob("decoded-*.pt"))
    assert len(files) == 2 and all(f.stat().st_mode & 0o777 == 0o666 & ~_umask() for f in files)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_changed_file_makes_the_cache_stale(tree, monkeypatch, capsys):
    build_dataset({"name": "cifar10_jpeg", "root": str(tree)})
    calls = _count_decodes(monkeypatch)
    img = tree / "test" / "cat" / "0001.jpg"
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(img)
    later = img.stat().st_mtime + 10
    os.utime(img, (later, later))
    capsys.readouterr()
    rebuilt = build_dataset({"name": "cifar10_jpeg", "root": str(tree)})
    assert calls == [6]  # only the test split changed
    assert "is stale (the image files changed); rebuilding it" in capsys.readouterr().err
    assert int(rebuilt.eval.images[3].max()) <= 8  # the new black image (JPEG noise aside)


def test_a_corrupt_cache_is_rebuilt_with_a_message(tree, monkeypatch, capsys):
    build_dataset({"name": "cifar10_jpeg", "root": str(tree)})
    for f in (tree.parent / "cache").glob("decoded-*.pt"):
        f.write_bytes(b"not a tensor file")
    calls = _count_decodes(monkeypatch)
    capsys.readouterr()
    build_dataset({"name": "cifar10_jpeg", "root": str(tree)})
    assert calls == [9, 6] and capsys.readouterr().err.count("is corrupt") == 2


def test_missing_root_and_layout_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data.root .*nowhere does not exist.*train,test"):
        build_dataset({"name": "cifar10_jpeg", "root": str(tmp_path / "nowhere")})
    (tmp_path / "x" / "train" / "cat").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"contains no images"):
        build_dataset({"name": "cifar10_jpeg", "root": str(tmp_path / "x")})


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LEANNETS_CACHE", str(tmp_path / "c"))
    assert dc.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("LEANNETS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert dc.cache_dir() == tmp_path / "xdg" / "leannets"


def test_limits_take_evenly_spaced_samples_so_class_sorted_folders_keep_every_class(tree):
    full = build_dataset({"name": "cifar10_jpeg", "root": str(tree)})
    limited = build_dataset({"name": "cifar10_jpeg", "root": str(tree), "limit_train": 3, "limit_eval": 3})
    assert limited.train.labels.tolist() == [0, 1, 2]  # the first 3 would all be airplanes
    assert torch.equal(limited.train.images, full.train.images[[0, 3, 6]])
    assert limited.eval.labels.tolist() == [0, 1, 2]


def test_a_cache_damaged_in_place_is_caught_by_its_checksum(tree, monkeypatch, capsys):
    """Bytes of the image tensor zeroed inside a readable file: loading it silently would change every metric."""
    first = build_dataset({"name": "cifar10_jpeg", "root": str(tree)})
    for f in (tree.parent / "cache").glob("decoded-*.pt"):
        obj = torch.load(f, weights_only=True)
        obj["images"][0].zero_()  # the file stays a valid torch file with the right format and content key
        torch.save(obj, f)
    calls = _count_decodes(monkeypatch)
    capsys.readouterr()
    again = build_dataset({"name": "cifar10_jpeg", "root": str(tree)})
    assert calls == [9, 6] and capsys.readouterr().err.count("do not match their checksum") == 2
    assert torch.equal(again.train.images, first.train.images)
