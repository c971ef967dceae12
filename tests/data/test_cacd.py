"""CACD reader: identities from file names, the annotated-identity filter, a seeded split, one-line errors."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from leannets.data import build_dataset
from leannets.data.cacd import parse_cacd_name, scan_cacd, split_cacd
from leannets.engine.recipe import load_recipe

PEOPLE = {"Robin_Williams": 53, "Emma_Watson": 20, "Jean_Claude_Van_Damme": 45}


def _folder(tmp_path: Path, per_person: int = 4) -> Path:
    root = tmp_path / "CACD2000"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name, age in PEOPLE.items():
        for i in range(per_person):
            img = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / f"{age + i}_{name}_{i + 1:04d}.jpg")
    return root


def test_names_parse_into_age_and_identity():
    assert parse_cacd_name("53_Robin_Williams_0001.jpg") == (53, "Robin_Williams")
    assert parse_cacd_name("/x/45_Jean_Claude_Van_Damme_0012.jpg") == (45, "Jean_Claude_Van_Damme")
    with pytest.raises(ValueError, match="not a CACD file name"):
        parse_cacd_name("robin.jpg")


def test_scan_filter_and_split(tmp_path):
    root = _folder(tmp_path)
    samples, classes = scan_cacd(tmp_path)  # the parent of CACD2000/ works too
    assert classes == sorted(PEOPLE) and len(samples) == 12
    assert {label for path, label in samples if "Emma_Watson" in path} == {classes.index("Emma_Watson")}
    kept, kept_classes = scan_cacd(root, ["Robin_Williams", "Emma_Watson"])
    assert kept_classes == ["Emma_Watson", "Robin_Williams"] and len(kept) == 8
    train, test = split_cacd(kept, 5, seed=0)
    assert len(train) == 5 and len(test) == 3 and not set(train) & set(test)
    assert split_cacd(kept, 5, seed=0) == (train, test) and split_cacd(kept, 5, seed=1) != (train, test)
    with pytest.raises(ValueError, match="cacd_train_images=8 must lie between 1 and 7"):
        split_cacd(kept, 8, seed=0)
    with pytest.raises(ValueError, match="1 identities have no image.*Nobody_Here"):
        scan_cacd(root, ["Nobody_Here", "Emma_Watson"])


def test_dataset_builds_from_a_recipe_section(tmp_path):
    root = _folder(tmp_path)
    ids = tmp_path / "ids.txt"
    ids.write_text("Robin_Williams\nEmma_Watson\n\n")
    data = dict(load_recipe("wae_vgg16_cacd")["data"], root=str(root), cacd_identities=str(ids), cacd_train_images=6,
                input_size=32, num_workers=0)
    splits = build_dataset(data)
    # the recipe holds out 10% of the training images for its plateau (nothing watches the test split)
    assert splits.num_classes == 2 and len(splits.train) + len(splits.val) == 6 and len(splits.eval) == 2
    assert len(splits.val) >= 1
    x, y = splits.eval[0]
    assert tuple(x.shape) == (3, 32, 32) and y in (0, 1)
    with pytest.raises(FileNotFoundError, match="holds no CACD images"):
        (tmp_path / "empty").mkdir()
        build_dataset(dict(data, root=str(tmp_path / "empty")))
