import os
import subprocess
import sys

import pytest

from leannets import __version__
from leannets.cli import build_parser, main


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_every_subcommand_has_help():
    _, subparsers = build_parser()
    expected = {"list", "profile", "train", "eval", "compare"}
    assert expected <= set(subparsers)
    for name, p in subparsers.items():
        assert p.format_help().strip(), name


def test_user_errors_are_one_line_but_bugs_keep_their_traceback(monkeypatch, capsys):
    def user_error(args):
        raise ValueError("bad value for --task")

    def bug(args):
        return {}["missing"]

    parser, subparsers = build_parser()
    subparsers["list"].set_defaults(func=user_error)
    monkeypatch.setattr("leannets.cli.build_parser", lambda: (parser, subparsers))
    assert main(["list"]) == 2
    assert capsys.readouterr().err.strip() == "leannets list: error: bad value for --task"
    subparsers["list"].set_defaults(func=bug)
    with pytest.raises(KeyError, match="missing"):
        main(["list"])


def test_options_may_sit_between_positionals(capsys):
    assert main(["profile", "densenet_bc_cifar_6_6_6", "--no-latency", "densenet_bc_cifar_16_16_16", "--json"]) == 0
    out = capsys.readouterr().out
    assert "densenet_bc_cifar_6_6_6" in out and "769162" in out


def test_console_entry_point_runs():
    res = subprocess.run([sys.executable, "-m", "leannets.cli", "list", "densenet12*"], capture_output=True, text=True)
    assert res.returncode == 0 and "densenet121" in res.stdout


def test_unknown_task_lists_the_known_ones(capsys):
    assert main(["list", "--task", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'nosuch'" in err and "classification, denoising" in err and err.count("\n") == 1


def test_a_closed_pipe_ends_quietly(monkeypatch, capsys):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (e.g. `head`) has gone before anything is written
    with os.fdopen(write_end, "w") as closed:
        monkeypatch.setattr(sys, "stdout", closed)
        assert main(["list"]) == 0
        monkeypatch.undo()
    assert capsys.readouterr().err == ""



def test_quiet_and_verbose_flags_set_the_library_log_level(tmp_path, capsys):
    import logging

    from leannets._log import configure

    argv = ["train", "--recipe", "densenet_cifar10_cpu", "--set", "data.name=digits", "train.epochs=1",
            "train.max_steps_per_epoch=1", "data.limit_train=16", "data.limit_eval=8", "train.progress=False"]
    try:
        assert main(argv + ["--out", str(tmp_path / "a")]) == 0
        assert "[main] epoch 1/1" in capsys.readouterr().out  # progress through logging, on stdout
        assert main(["-q"] + argv + ["--out", str(tmp_path / "b")]) == 0
        out = capsys.readouterr()
        assert "[main] epoch" not in out.out and "done:" in out.out  # -q: library progress off, results kept
        assert main(["-v", "list", "resnet20*"]) == 0
        assert logging.getLogger("leannets").level == logging.DEBUG
    finally:
        configure(0)
