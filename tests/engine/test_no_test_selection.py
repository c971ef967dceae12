"""Nothing selects on the test split: plateau schedules need a held-out validation split, and the best
checkpoint is chosen on the validation split only (none without one)."""
from __future__ import annotations

import pytest

from leannets.engine import train
from leannets.engine.recipe import list_recipes, load_recipe, stage_configs
from leannets.reproduce.runner import plan_paper
from leannets.reproduce.spec import SCALES, list_papers

TINY = {"model": {"name": "resnet20_standard"}, "seed": 0,
        "data": {"name": "digits", "limit_train": 96, "limit_eval": 32, "batch_size": 16},
        "train": {"epochs": 2, "device": "cpu", "progress": False}}


def _watches_test(recipe) -> bool:
    return any(c.schedule.name == "plateau" and c.data.val_fraction <= 0 for c in [recipe, *stage_configs(recipe)])


def test_no_bundled_recipe_watches_the_test_split():
    assert list_recipes()
    for name in list_recipes():
        assert not _watches_test(load_recipe(name)), name


def test_no_reproduction_run_watches_the_test_split():
    runs = 0
    for paper in list_papers():
        for scale in SCALES:
            for run in plan_paper(paper, scale=scale, data_root="/data"):
                recipe = load_recipe(run["recipe"], run["overrides"])
                assert not _watches_test(recipe), (paper, scale, run["run_id"])
                runs += 1
    assert runs > 100


def test_a_plateau_on_the_test_split_is_refused():
    with pytest.raises(ValueError, match="data.val_fraction must be > 0 with schedule.name=plateau"):
        load_recipe(dict(TINY, schedule={"name": "plateau"}))


def test_best_checkpoint_reads_the_validation_split_only(tmp_path):
    no_val = train(dict(TINY), out_dir=tmp_path / "a", verbose=False)
    assert no_val["best"]["value"] is None and no_val["best_checkpoint"] is None
    assert not (tmp_path / "a" / "best.pt").exists()
    with_val = train({**TINY, "data": {**TINY["data"], "val_fraction": 0.25}}, out_dir=tmp_path / "b", verbose=False)
    assert with_val["best"]["metric"] == "val_acc1" and (tmp_path / "b" / "best.pt").is_file()
