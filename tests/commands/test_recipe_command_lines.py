"""Every `leannets train …` command written in a bundled recipe's comments runs as written (with --print-recipe)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from leannets.cli import main
from leannets.engine.recipe import RECIPES, recipe_path


def command_lines(path: Path) -> list[str]:
    """The `leannets train …` commands in ``path``'s comments, backslash continuations joined, prose cut off."""
    lines = [ln[1:].strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.startswith("#")]
    commands, i = [], 0
    while i < len(lines):
        text = re.sub(r"^(Run|Usage):\s*", "", lines[i])
        if text.startswith("leannets train"):
            while text.endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text[:-1].rstrip() + " " + lines[i]
            commands.append(re.split(r"\s{2,}|\s\(", text)[0].strip())
        i += 1
    return commands


@pytest.mark.parametrize("name", RECIPES.names())
def test_each_recipe_has_a_command_that_resolves(name, capsys):
    commands = command_lines(recipe_path(name))
    assert commands, f"{name}.yaml has no `leannets train` command line in its comments"
    for command in commands:
        argv = shlex.split(command)
        assert argv[:2] == ["leannets", "train"], command
        assert main(argv[1:] + ["--print-recipe"]) == 0, command
        assert "model:" in capsys.readouterr().out, command


def test_positional_recipe_and_several_overrides_after_one_set(capsys):
    assert main(["train", "densenet_cifar10_cpu", "--set", "optim.lr=0.05", "train.epochs=2", "--print-recipe"]) == 0
    out = capsys.readouterr().out
    assert "lr: 0.05" in out and "epochs: 2" in out
    assert main(["train", "densenet_cifar10_cpu", "--recipe", "dxnet_cifar10", "--print-recipe"]) == 2
    assert "two recipes given" in capsys.readouterr().err
