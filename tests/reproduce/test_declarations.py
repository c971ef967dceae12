"""Every paper's declarations are consistent: references exist, models are registered, and every
training run resolves to a recipe the engine accepts at all three scales (nothing is trained)."""
from __future__ import annotations

import json
from importlib import resources

import pytest

import leannets
from leannets.cli import main
from leannets.reproduce import PAPERS, SCALES, get_paper, list_papers, list_references, load_reference
from leannets.reproduce.claims import Absolute, AtLeast, Better, Matches, MatchesValue, NotWorse
from leannets.reproduce.runner import plan_paper


def test_reference_files_are_quoted_data_with_table_references():
    assert list_references() == sorted(PAPERS)
    for paper in PAPERS:
        raw = json.loads((resources.files("leannets.reference") / f"{paper}.json").read_text(encoding="utf-8"))
        assert raw["quoted"] is True and "QUOTED" in raw["notice"]
        keys = [v["key"] for v in raw["values"]]
        assert len(keys) == len(set(keys)), f"{paper}: duplicate keys"
        for v in raw["values"]:
            assert v["ref"] and v["description"] and "value" in v, (paper, v)
    ref = load_reference("multiception")
    assert ref["table5.cifar10.resnet20.standard.params"].value == 0.2724
    assert load_reference("dxnet")["table1.dxnet_12_12_12.c10_error"].value == 4.13
    with pytest.raises(ValueError, match="no reference values for paper 'nope'"):
        load_reference("nope")


def _claim_keys(claim) -> list[str]:
    keys = []
    if isinstance(claim, (Matches, Absolute, AtLeast)):
        keys.append(claim.ref_key)
    if isinstance(claim, MatchesValue) and isinstance(claim.expected, str):
        keys.append(claim.expected)
    if isinstance(claim, (Better, NotWorse)) and claim.paper_keys:
        keys += list(claim.paper_keys)
    return keys


@pytest.mark.parametrize("paper", PAPERS)
def test_declarations_reference_existing_values_and_models(paper):
    p = get_paper(paper)
    ref = load_reference(paper)
    names = [e.name for e in p.experiments]
    assert len(names) == len(set(names))
    for exp in p.experiments:
        rows = {r.key for r in exp.rows}
        assert len(rows) == len(exp.rows), f"{exp.name}: duplicate row keys"
        for row in exp.rows:
            assert leannets.is_model(row.model.name), row.model.name
            for spec in row.trained.values():
                assert spec is None or leannets.is_model(spec.name), spec
            for key in row.ref.values():
                assert key in ref, f"{exp.name}/{row.key}: unknown reference {key}"
        for claim in exp.claims:
            for key in _claim_keys(claim):
                assert key in ref, f"{exp.name}/{claim.id}: unknown reference {key}"
            for attr in ("row", "better", "worse", "a", "b"):
                value = getattr(claim, attr, "")
                if value:
                    assert value in rows, f"{exp.name}/{claim.id}: unknown row {value}"
        assert len({c.id for c in exp.claims}) == len(exp.claims), f"{exp.name}: duplicate claim ids"


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("paper", PAPERS)
def test_every_run_resolves_to_a_valid_recipe(paper, scale, tmp_path):
    runs = plan_paper(paper, scale=scale, data_root=tmp_path)
    if scale == "cpu":  # what the cpu budget cannot train says why ("not checked (budget)")
        silent = [e.name for e in get_paper(paper).experiments if "cpu" in e.scales and e.train is not None
                  and not e.train.trains_at("cpu") and not e.not_trained.get("cpu")]
        assert not silent, f"{paper}: {silent} are not trained at cpu scale and do not say why"
    else:
        assert runs, f"{paper} has no training at {scale} scale"
    for r in runs:
        assert r["model"]["name"] and r["recipe"]
        if scale != "smoke":
            roots = [v for k, v in r["overrides"].items() if k.endswith(("root", "eval_root")) and v]
            assert all(str(tmp_path) in str(v) for v in roots), r
    if scale == "paper":  # the paper scale trains the paper's own models
        exp_models = {(e.name, row.key): row.model.name for e in get_paper(paper).experiments for row in e.rows}
        assert all(r["model"]["name"] == exp_models[(r["experiment"], r["row"])] for r in runs)


def test_shared_runs_are_trained_once():
    """Table 4's {3,5,7} row is Table 1's Multiception run (same model, recipe and seed)."""
    runs = plan_paper("multiception", ["table1", "table4"], scale="smoke", data_root=".")
    ids = {(r["experiment"], r["row"]): r["run_id"] for r in runs}
    assert ids[("table4", "k357")] == ids[("table1", "multiception")]
    assert ids[("table4", "k35")] != ids[("table1", "multiception")]


def test_cli_list_plan_and_errors(capsys, tmp_path):
    assert main(["reproduce", "xsepconv", "--list"]) == 0
    out = capsys.readouterr().out
    assert "eq3" in out and "Fig. 4" in out
    assert main(["reproduce", "dxnet", "--scale", "gpu", "--data-root", str(tmp_path), "--plan",
                 "--table", "table1"]) == 0
    assert "dxnet_cifar_4_4_4" in capsys.readouterr().out
    assert main(["reproduce", "dxnet", "--table", "table99"]) == 2
    assert "has no table/figure 'table99'" in capsys.readouterr().err
    assert main(["reproduce", "wae", "--scale", "cpu", "--out", str(tmp_path / "o")]) == 2
    assert "needs --data-root" in capsys.readouterr().err
    assert main(["reproduce", "wae", "--scale", "cpu", "--data-root", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["reproduce", "alexnet"])


def test_papers_are_registered_under_their_module_names():
    """The CLI lists the paper modules without importing them; each registers the paper of its own name."""
    from leannets.reproduce.spec import paper_modules

    assert paper_modules() == list_papers() == sorted(PAPERS) and len(list_papers()) == 4
    assert all(get_paper(name).name == name for name in list_papers())


@pytest.mark.parametrize("paper", PAPERS)
def test_declared_texts_have_no_unformatted_placeholders(paper):
    """A note written as a plain string beside an f-string prints ``{NAME}`` literally in the report."""
    import re
    pattern = re.compile(r"\{[A-Za-z_][A-Za-z0-9_.]*\}")
    p = get_paper(paper)
    for exp in p.experiments:
        texts = [*exp.notes.values(), *(v for v in exp.not_trained.values() if v), exp.title]
        texts += [c.text for c in exp.claims]
        for text in texts:
            assert not pattern.search(text), f"{paper}/{exp.name}: unformatted placeholder in {text!r}"
