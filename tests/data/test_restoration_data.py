"""Restoration datasets: folders, patches (flips / rot90), determinism, bad files, embedded photos."""
import numpy as np
import pytest
import torch
from PIL import Image

from leannets.data import build_dataset, list_datasets
from leannets.data.restoration import (ImageDataset, PatchDataset, list_images, load_image, save_image,
                                       skimage_photo_paths)


def _write(folder, name, arr):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(folder / name)


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        _write(tmp_path / "train", f"t{i}.png", rng.integers(0, 256, (40 + i, 50, 3)).astype(np.uint8))
    _write(tmp_path / "train", "gray.bmp", rng.integers(0, 256, (44, 36)).astype(np.uint8))
    _write(tmp_path / "train", "photo.jpg", rng.integers(0, 256, (48, 48, 3)).astype(np.uint8))
    (tmp_path / "train" / "notes.txt").write_text("not an image")
    for i in range(2):
        _write(tmp_path / "test", f"e{i}.png", rng.integers(0, 256, (30, 21 + i)).astype(np.uint8))
    return tmp_path


def test_datasets_are_registered():
    assert {"restoration_folder", "skimage_photos"} <= set(list_datasets())


def test_folder_dataset_gray_and_rgb(folders):
    for channels in (1, 3):
        splits = build_dataset({"name": "restoration_folder", "root": str(folders), "channels": channels,
                                "patch_size": 16, "patches_per_epoch": 10})
        assert splits.in_chans == channels and splits.num_classes == 0
        assert splits.input_size == (channels, 16, 16)
        assert len(splits.train) == 10 and len(splits.eval) == 2
        patch, idx = splits.train[3]
        assert patch.dtype == torch.uint8 and patch.shape == (channels, 16, 16) and idx == 3
        img, _ = splits.eval[1]
        assert img.shape == (channels, 30, 22)  # whole image, not cropped
        assert splits.eval.names == ["e0.png", "e1.png"]
    assert [f.name for f in list_images(folders / "train")] == ["gray.bmp", "photo.jpg", "t0.png", "t1.png", "t2.png"]


def test_eval_root_option_and_missing_eval_folder(folders):
    splits = build_dataset({"name": "restoration_folder", "root": str(folders / "train"),
                            "eval_root": str(folders / "test"), "patch_size": 8, "patches_per_epoch": 2})
    assert len(splits.eval) == 2
    with pytest.raises(ValueError, match="eval_root"):
        build_dataset({"name": "restoration_folder", "root": str(folders / "train")})


def test_patches_are_deterministic_per_seed_epoch_index():
    img = np.random.default_rng(1).integers(0, 256, (30, 40, 1)).astype(np.uint8)
    a = PatchDataset([img], ["x"], 8, 20, seed=3)
    b = PatchDataset([img], ["x"], 8, 20, seed=3)
    assert all(torch.equal(a[i][0], b[i][0]) for i in range(20))
    b.set_epoch(1)
    assert not all(torch.equal(a[i][0], b[i][0]) for i in range(20))
    c = PatchDataset([img], ["x"], 8, 20, seed=4)
    assert not all(torch.equal(a[i][0], c[i][0]) for i in range(20))


def test_patches_are_flipped_and_rotated_crops_of_the_images():
    img = np.arange(24 * 32, dtype=np.int64).reshape(24, 32, 1) % 251  # every 5×5 crop is distinct
    img = img.astype(np.uint8)
    ds = PatchDataset([img], ["x"], 5, 200, flip=True, rot90=True)
    crops = {img[y:y + 5, x:x + 5, 0].tobytes() for y in range(20) for x in range(28)}
    seen = set()
    for i in range(len(ds)):
        p = ds[i][0][0].numpy()
        variants = {}
        for flip in (False, True):
            for k in range(4):
                q = np.rot90(p, -k)
                q = q[:, ::-1] if flip else q
                variants[(flip, k)] = np.ascontiguousarray(q).tobytes()
        found = [key for key, v in variants.items() if v in crops]
        assert found, f"patch {i} is not a flipped/rotated crop"
        seen.update(found)
    assert {k for _, k in seen} == {0, 1, 2, 3} and {f for f, _ in seen} == {False, True}


def test_no_augmentation_gives_plain_crops():
    img = (np.arange(20 * 20).reshape(20, 20, 1) % 256).astype(np.uint8)
    ds = PatchDataset([img], ["x"], 6, 30, flip=False, rot90=False)
    crops = {img[y:y + 6, x:x + 6, 0].tobytes() for y in range(15) for x in range(15)}
    assert all(np.ascontiguousarray(ds[i][0][0].numpy()).tobytes() in crops for i in range(30))


def test_bad_image_file_error_names_the_file(tmp_path):
    _write(tmp_path / "train", "ok.png", np.zeros((20, 20), np.uint8))
    (tmp_path / "train" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    _write(tmp_path / "test", "ok.png", np.zeros((20, 20), np.uint8))
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.png"):
        build_dataset({"name": "restoration_folder", "root": str(tmp_path), "patch_size": 8})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image(tmp_path / "missing.png")


def test_empty_or_missing_folder_and_too_small_images(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no images"):
        list_images(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_images(tmp_path / "nope")
    with pytest.raises(ValueError, match=r"patch_size=16 is larger than .*tiny\.png \(8×8\)"):
        PatchDataset([np.zeros((8, 8, 1), np.uint8)], ["tiny.png"], 16, 4)


def test_load_image_converts_modes(tmp_path):
    rgba = np.random.default_rng(2).integers(0, 256, (6, 7, 4)).astype(np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    Image.fromarray((np.arange(42).reshape(6, 7) * 1000).astype(np.uint16)).save(tmp_path / "deep.png")
    assert load_image(tmp_path / "a.png", 3).shape == (6, 7, 3)
    gray = load_image(tmp_path / "a.png", 1)
    assert gray.shape == (6, 7, 1)
    rgb = rgba[..., :3].astype(np.float64)
    np.testing.assert_allclose(gray[..., 0], rgb @ [0.299, 0.587, 0.114], atol=1.01)  # ITU-R 601 luma
    deep = load_image(tmp_path / "deep.png", 1)
    assert deep.dtype == np.uint8 and deep.max() == round(41000 / 257)
    with pytest.raises(ValueError, match="channels must be 1"):
        load_image(tmp_path / "a.png", 2)


def test_save_image_round_trip_and_atomicity(tmp_path):
    img = np.random.default_rng(3).integers(0, 256, (9, 11, 3)).astype(np.uint8)
    out = save_image(tmp_path / "sub" / "x.png", img)
    np.testing.assert_array_equal(load_image(out, 3), img)
    save_image(tmp_path / "g.bmp", torch.from_numpy(img[..., :1]).permute(2, 0, 1))
    assert load_image(tmp_path / "g.bmp", 1).shape == (9, 11, 1)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["g.bmp", "x.png"]  # no temp files left
    with pytest.raises(ValueError, match="uint8"):
        save_image(tmp_path / "f.png", img.astype(np.float32))
    with pytest.raises(ValueError, match="cannot write"):
        save_image(tmp_path / "f.gif", img)


def test_embedded_skimage_photos():
    train, test = skimage_photo_paths()
    assert len(train) >= 8 and [p.name for p in test] == ["camera.png", "astronaut.png", "coffee.png", "chelsea.png"]
    assert not {p.name for p in train} & {p.name for p in test}
    splits = build_dataset({"name": "skimage_photos", "channels": 3, "patch_size": 32, "patches_per_epoch": 4,
                            "limit_eval": 1})
    assert splits.train[0][0].shape == (3, 32, 32) and splits.eval[0][0].shape == (3, 512, 512)


def test_eval_dataset_collates_to_a_list_of_whole_images():
    ds = ImageDataset([np.zeros((5, 6, 1), np.uint8), np.zeros((7, 4, 1), np.uint8)], ["a", "b"])
    batch = ds.collate_fn([ds[0], ds[1]])
    assert isinstance(batch, list) and batch[1][0].shape == (1, 7, 4) and batch[1][1] == 1


def test_real_bsd68_loads_gray(shared_data):
    ds = ImageDataset.from_folder(shared_data / "restoration" / "BSD68", channels=1, limit=2)
    assert len(ds) == 2 and ds[0][0].shape[0] == 1 and sorted(ds[0][0].shape[1:]) == [321, 481]
