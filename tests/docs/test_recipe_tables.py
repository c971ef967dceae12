"""Each paper's doc has a "Paper says / our recipe / why" table; every recipe value it states is checked
against the bundled paper-scale recipe, and the seeds against the paper's declared seed count.

Cells of the "our recipe" column hold tokens like `dxnet_cifar10:optim.lr=0.1` (a bundled recipe, a dotted
key, stage lists by index: `stages.0.optim.lr`) and `seeds=5` (the seeds averaged at paper scale)."""
import re
from pathlib import Path

import pytest
import yaml

from leannets.engine.recipe import list_recipes, load_recipe
from leannets.reproduce import get_paper

DOCS = Path(__file__).resolve().parents[2] / "docs"
HEADING = "## Paper says / our recipe / why"
TOPICS = ("optimizer", "lr and schedule", "epochs", "batch", "augmentation", "data split", "seeds")
TOKEN = re.compile(r"`(?:([a-z0-9_]+):)?([a-z_][a-z0-9_.]*)=([^`]+)`")


def _table(doc: str) -> list[list[str]]:
    text = (DOCS / doc).read_text(encoding="utf-8")
    assert HEADING in text, f"{doc} has no '{HEADING}' section"
    lines = [line for line in text.split(HEADING, 1)[1].splitlines()[1:] if line.strip()]
    rows = []
    for line in lines:  # the first table after the heading, up to its first non-table line
        if not line.startswith("|"):
            break
        rows.append(line)
    body = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
    assert body[0][:4] == ["setting", "paper says", "our recipe", "why"], body[0]
    return body[2:]


def _get(recipe: dict, key: str):
    value = recipe
    for part in key.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


@pytest.mark.parametrize("doc,paper", [("dxnet.md", "dxnet"), ("wae.md", "wae"), ("xsepconv.md", "xsepconv"),
                                       ("multiception.md", "multiception")])
def test_recipe_table_states_every_topic_and_matches_the_recipes(doc, paper):
    rows = _table(doc)
    topics = [r[0].lower() for r in rows]
    missing = [t for t in TOPICS if not any(t in row for row in topics)]
    assert not missing, f"{doc}: the table lacks rows for {missing}"
    checked = 0
    for setting, _, ours, why in rows:
        assert why, f"{doc}: row {setting!r} gives no reason"
        for recipe, key, raw in TOKEN.findall(ours):
            expected = yaml.safe_load(raw)
            if key == "seeds" and not recipe:
                assert get_paper(paper).seeds_at("paper") == expected, f"{doc}: seeds"
            else:
                assert recipe in list_recipes(), f"{doc}: unknown recipe {recipe!r}"
                got = _get(load_recipe(recipe), key)
                if isinstance(expected, float) or isinstance(got, float):
                    assert got == pytest.approx(expected), f"{doc}: {recipe}:{key} is {got!r}, the table says {raw}"
                else:
                    assert got == expected, f"{doc}: {recipe}:{key} is {got!r}, the table says {raw}"
            checked += 1
    assert checked >= 10, f"{doc}: only {checked} recipe values stated"
