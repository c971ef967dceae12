"""tools/device: the folder pack that carries CIFAR-10 to a lent GPU machine, and the one-shot gpu-scale script
(rehearsed here at smoke scale on a table that trains nothing)."""
from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED_JPEGS = ROOT.parent / "shared" / "data" / "cifar10-jpeg" / "test"


def _pack_module():
    spec = importlib.util.spec_from_file_location("pack_folder", ROOT / "tools" / "device" / "pack_folder.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    src = tmp_path / "cifar10-jpeg"
    real = sorted(SHARED_JPEGS.glob("*/*.jpg"))[:3] if SHARED_JPEGS.is_dir() else []
    for path in real:  # a few real files where ../shared is beside the checkout
        (src / "test" / path.parent.name).mkdir(parents=True, exist_ok=True)
        (src / "test" / path.parent.name / path.name).write_bytes(path.read_bytes())
    (src / "train" / "cat").mkdir(parents=True)
    (src / "train" / "cat" / "a.jpg").write_bytes(bytes(range(256)) * 3)
    (src / "train" / "cat" / "empty.jpg").write_bytes(b"")
    (src / "train" / "dog é.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return src


def test_pack_then_unpack_gives_back_every_file_byte_for_byte(folder, tmp_path):
    pf = _pack_module()
    n, size = pf.pack(folder, tmp_path / "p.npz")
    assert n == len(_tree(folder)) and size == sum(len(b) for b in _tree(folder).values())
    assert pf.unpack(tmp_path / "p.npz", tmp_path / "out" / "cifar10-jpeg") == (n, size)
    assert _tree(tmp_path / "out" / "cifar10-jpeg") == _tree(folder)
    assert not (tmp_path / "out" / "cifar10-jpeg.partial").exists()


def test_unpack_refuses_an_altered_pack_an_existing_folder_and_an_unsafe_path(folder, tmp_path, capsys):
    pf = _pack_module()
    pf.pack(folder, tmp_path / "p.npz")
    with np.load(tmp_path / "p.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["blob"] = arrays["blob"].copy()
    arrays["blob"][0] ^= 1
    np.savez(tmp_path / "altered.npz", **arrays)
    assert pf.main(["unpack", str(tmp_path / "altered.npz"), str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "altered.npz is truncated or altered" in err and not (tmp_path / "a").exists()

    (tmp_path / "taken").mkdir()
    assert pf.main(["unpack", str(tmp_path / "p.npz"), str(tmp_path / "taken")]) == 2
    assert "already exists" in capsys.readouterr().err

    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    assert pf.main(["unpack", str(tmp_path / "junk.npz"), str(tmp_path / "b")]) == 2
    assert "cannot be read as a folder pack" in capsys.readouterr().err

    names = b"../escape.jpg"
    unsafe = {**arrays, "names": np.frombuffer(names, dtype=np.uint8), "offsets": np.array([0, 1], dtype=np.int64),
              "blob": arrays["blob"][:1]}
    unsafe["sha256"] = np.array(hashlib.sha256(unsafe["blob"]).hexdigest())
    np.savez(tmp_path / "unsafe.npz", **unsafe)
    assert pf.main(["unpack", str(tmp_path / "unsafe.npz"), str(tmp_path / "c")]) == 2
    assert "unsafe path" in capsys.readouterr().err and not (tmp_path / "escape.jpg").exists()
    assert not (tmp_path / "c").exists() and not (tmp_path / "c.partial").exists()  # refused before any write


def test_pack_refuses_a_missing_folder(tmp_path, capsys):
    assert _pack_module().main(["pack", str(tmp_path / "nope"), str(tmp_path / "p.npz")]) == 2
    assert "is not a folder" in capsys.readouterr().err and not (tmp_path / "p.npz").exists()


def test_gpu_scale_script_rehearsed_at_smoke_scale_returns_reports_index_and_log(folder, tmp_path):
    pf = _pack_module()
    pf.pack(folder, tmp_path / "p.npz")
    out = tmp_path / "OUT"
    env = {**os.environ, "SCALE": "smoke", "EXTRA_ARGS": "--table table5", "PACK": str(tmp_path / "p.npz"),
           "DATA": str(tmp_path / "data"), "REPORTS": str(tmp_path / "reports"), "RUNS": str(tmp_path / "runs"),
           "OUT": str(out), "LEANNETS_CACHE": str(tmp_path / "cache"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "tools/device/gpu_scale.sh", "300", "multiception"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = (out / "gpu_scale.log").read_text(encoding="utf-8")
    assert "== multiception: exit 0" in log and "index:" in log
    assert _tree(tmp_path / "data" / "cifar10-jpeg") == _tree(folder)
    with tarfile.open(out / "reproductions-gpu.tgz") as tar:
        names = set(tar.getnames())
    assert {"./README.md", "./multiception/report.md", "./multiception/results.json"} <= names


def test_gpu_scale_script_skips_what_does_not_fit_its_seconds(folder, tmp_path):
    pf = _pack_module()
    pf.pack(folder, tmp_path / "p.npz")
    env = {**os.environ, "REHEARSE": "1", "PACK": str(tmp_path / "p.npz"), "DATA": str(tmp_path / "data"),
           "REPORTS": str(tmp_path / "reports"), "OUT": str(tmp_path / "OUT"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "tools/device/gpu_scale.sh", "30"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for paper in ("multiception", "dxnet", "xsepconv", "wae"):
        assert f"gpu_scale: {paper} skipped" in proc.stdout
