"""Pack a folder tree of files into one uncompressed ``.npz``, and unpack it again.

A lent device machine receives the working tree and at most 64 MiB beside it, and reaches nothing
else. The whole CIFAR-10 as JPEG class folders is 52.7 MiB of file bytes but 60,000 files, which a
tar or zip inflates past that limit (a header per file); one blob plus an offset table adds 1.5 MiB.

    python tools/device/pack_folder.py pack ../shared/data/cifar10-jpeg .device/cifar10-jpeg.npz
    python tools/device/pack_folder.py unpack .device/cifar10-jpeg.npz /tmp/data/cifar10-jpeg

The pack holds the files' bytes, their relative paths and a SHA-256 of the bytes, checked on unpack
(a truncated or altered pack is refused with one line and exit code 2). Unpacking recreates the
files byte for byte; the decode cache of the data readers then keys them by their new mtimes.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np

FORMAT = "leannets-folder-pack-v1"


def pack(src: str | Path, dst: str | Path) -> tuple[int, int]:
    """Pack every file under ``src`` (sorted relative paths) into ``dst``; returns (files, bytes)."""
    from leannets._io import atomic_write

    root = Path(src)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    if not files:
        raise ValueError(f"{root} holds no files")
    rel = [p.relative_to(root).as_posix() for p in files]
    if any("\n" in name for name in rel):
        raise ValueError(f"{root}: a file name holds a newline, which the pack's name table cannot store")
    names = "\n".join(rel).encode("utf-8")
    chunks = [p.read_bytes() for p in files]
    offsets = np.zeros(len(chunks) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(c) for c in chunks])
    blob = np.frombuffer(b"".join(chunks), dtype=np.uint8)
    with atomic_write(dst) as tmp:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a temporary name
            np.savez(fh, format=np.array(FORMAT), blob=blob, offsets=offsets,
                     names=np.frombuffer(names, dtype=np.uint8), sha256=np.array(hashlib.sha256(blob).hexdigest()))
    return len(files), int(offsets[-1])


def unpack(src: str | Path, dst: str | Path) -> tuple[int, int]:
    """Recreate the packed files under ``dst``; returns (files, bytes)."""
    try:
        with np.load(src, allow_pickle=False) as pack_file:
            if "format" not in pack_file.files or str(pack_file["format"]) != FORMAT:
                raise ValueError(f"{src} is not a {FORMAT} file")
            blob, offsets = pack_file["blob"], pack_file["offsets"]
            names = pack_file["names"].tobytes().decode("utf-8").split("\n")
            digest = str(pack_file["sha256"])
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{src} cannot be read as a folder pack ({err})") from err
    if len(names) + 1 != len(offsets) or hashlib.sha256(blob).hexdigest() != digest:
        raise ValueError(f"{src} is truncated or altered (its SHA-256 or file table does not match)")
    unsafe = [n for n in names if not n or ".." in Path(n).parts or Path(n).is_absolute()]
    if unsafe:
        raise ValueError(f"{src}: unsafe path {unsafe[0]!r} in the pack")
    root = Path(dst)
    if root.exists():
        raise FileExistsError(f"{root} already exists (unpack fills a new folder)")
    partial = root.with_name(root.name + ".partial")  # renamed to dst only once every file is written
    shutil.rmtree(partial, ignore_errors=True)
    data = blob.tobytes()
    for i, name in enumerate(names):
        path = partial / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[offsets[i]:offsets[i + 1]])
    partial.rename(root)
    return len(names), len(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("action", choices=("pack", "unpack"))
    parser.add_argument("src", help="pack: the folder; unpack: the .npz")
    parser.add_argument("dst", help="pack: the .npz to write; unpack: the folder to fill")
    args = parser.parse_args(argv)
    try:
        n, size = (pack if args.action == "pack" else unpack)(args.src, args.dst)
    except (OSError, ValueError) as err:
        print(f"pack_folder: {err}", file=sys.stderr)
        return 2
    print(f"{args.action}ed {n} files ({size / 2**20:.1f} MiB) {args.src} -> {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
