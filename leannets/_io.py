"""Atomic file writes, in one place: nothing written is ever half-done.

Every writer goes through :func:`atomic_write`: the content is written to a temp file
``.NAME.XXXX.tmp`` in the destination folder, flushed and fsynced, given the permissions a plain
``open()`` would give (``0o666`` minus the process umask; ``mkstemp`` alone leaves ``0o600``), and
renamed over the destination with ``os.replace``. A crash leaves at most an orphan temp file, which
:func:`remove_orphan_temps` clears when a run resumes.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

__all__ = ["atomic_write", "atomic_write_text", "replace_section", "rewrite_section", "atomic_write_bytes",
           "atomic_write_json", "atomic_save_figure", "atomic_copy", "remove_orphan_temps", "pyplot", "cache_dir",
           "TEMP_SUFFIX", "save_safetensors", "load_safetensors", "folder_lock", "FolderBusyError"]

TEMP_SUFFIX = ".tmp"


def cache_dir() -> Path:
    """``$LEANNETS_CACHE``, else ``$XDG_CACHE_HOME/leannets``, else ``~/.cache/leannets`` (decode caches, kernels)."""
    if os.environ.get("LEANNETS_CACHE"):
        return Path(os.environ["LEANNETS_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "leannets"


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; when the block succeeds it becomes ``path`` atomically.

    The block writes the temp path by name (``torch.save``, ``savefig``, ONNX export, PIL ...).
    On any error the temp file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def replace_section(text: str, begin: str, end: str, block: str, where: str) -> str:
    """``text`` with its generated section, from the marker ``begin`` through the next ``end``, replaced by
    ``block`` (which carries the markers again); ``ValueError`` naming ``where`` when a marker is missing."""
    start = text.find(begin)
    stop = text.find(end, start + len(begin)) if start >= 0 else -1
    if stop < 0:
        raise ValueError(f"{where}: no generated section between the markers {begin!r} … {end!r}")
    return text[:start] + block + text[stop + len(end):]


def rewrite_section(path: str | os.PathLike, begin: str, end: str, block: str) -> bool:
    """Replace the generated section of the file at ``path`` (:func:`replace_section`), atomically and only when it
    changes; ``True`` when the file was written."""
    text = Path(path).read_text(encoding="utf-8")
    new = replace_section(text, begin, end, block, str(path))
    if new == text:
        return False
    atomic_write_text(path, new)
    return True


def _json_default(obj: Any) -> Any:
    to_dict = getattr(obj, "to_dict", None)
    return to_dict() if callable(to_dict) else str(obj)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (objects with ``to_dict()`` as their dict, others via ``str``)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the headless Agg backend.

    Imported at first use (not at module import) so that importing leannets never switches the
    backend of a user's notebook or GUI session.
    """
    import matplotlib  # imported at first plot: see the docstring

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # imported at first plot: see the docstring

    return plt


def atomic_save_figure(fig: Any, path: str | os.PathLike, close: bool = True, **savefig_kwargs: Any) -> Path:
    """``fig.savefig`` (PNG unless ``format`` is given) atomically; closes the figure unless ``close=False``."""
    try:
        with atomic_write(path) as tmp:
            fig.savefig(tmp, **{"format": "png", **savefig_kwargs})
    finally:
        if close:
            pyplot().close(fig)
    return Path(path)


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy ``src`` to ``dst`` atomically (e.g. ``last.pt`` -> ``best.pt``)."""
    with atomic_write(dst) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


class FolderBusyError(ValueError):
    """Another live process holds the folder's lock."""


@contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "run") -> Iterator[Path]:
    """Hold ``folder/.lock`` (created exclusively, holding this host and pid) while the block runs, so that two
    processes never write one folder. A lock left by a process that no longer runs on this host is taken over."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / ".lock"
    me = f"{os.uname().nodename} {os.getpid()}"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = lock.read_text(encoding="utf-8", errors="replace").split() if lock.is_file() else []
            if len(owner) == 2 and owner[0] == os.uname().nodename and owner[1].isdigit() \
                    and not _pid_alive(int(owner[1])):
                lock.unlink(missing_ok=True)  # its process is gone (killed): take the folder over
                continue
            raise FolderBusyError(f"{what} folder {folder} is in use by another process ({' '.join(owner) or '?'}; "
                                  f"its lock is {lock}): wait for it, or use another folder") from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(me)
        break
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphan_temps(folder: str | os.PathLike, older_than: float | None = None) -> list[Path]:
    """Delete ``.NAME.*.tmp`` files left in ``folder`` (recursively) by writes that were interrupted.

    Args:
        folder: the run folder.
        older_than: only files last modified before this ``time.time()`` value (default: now), so a
            write in progress in another process is not touched.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    cutoff = time.time() if older_than is None else older_than
    removed = []
    for p in folder.rglob(f".*{TEMP_SUFFIX}"):
        try:
            if p.is_file() and p.stat().st_mtime < cutoff:
                p.unlink()
                removed.append(p)
        except FileNotFoundError:
            continue
    return removed


# -- safetensors (https://github.com/huggingface/safetensors): tensors without pickle -----------------------
# Layout: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__":
# {str: str}}, then the raw little-endian bytes. Written and read here without the safetensors package.
_ST_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
              "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def save_safetensors(path: str | os.PathLike, tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> Path:
    """Write ``{name: tensor}`` (CPU copies, contiguous) and string ``metadata`` as a .safetensors file, atomically."""
    import torch

    names = {getattr(torch, v): k for k, v in _ST_DTYPES.items()}
    header: dict[str, Any] = {"__metadata__": {str(k): str(v) for k, v in (metadata or {}).items()}}
    chunks, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        if t.dtype not in names:
            raise ValueError(f"save_safetensors: tensor {name!r} has dtype {t.dtype}, not one of {sorted(_ST_DTYPES)}")
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return atomic_write_bytes(path, len(text).to_bytes(8, "little") + text + b"".join(chunks))


def load_safetensors(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, str]]:
    """``({name: tensor}, metadata)`` of a .safetensors file; ``ValueError`` naming the file if it is not one."""
    import torch

    raw = Path(path).read_bytes()

    def bad(why: str) -> ValueError:
        return ValueError(f"{path} is not a valid .safetensors file: {why}")

    if len(raw) < 8:
        raise bad("shorter than its 8-byte header length")
    n = int.from_bytes(raw[:8], "little")
    if n > len(raw) - 8:
        raise bad(f"header length {n} exceeds the file")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise bad(f"header is not JSON ({err})") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    body = memoryview(raw)[8 + n:]
    tensors = {}
    for name, entry in header.items():
        try:
            dtype = getattr(torch, _ST_DTYPES[entry["dtype"]])
            shape = [int(d) for d in entry["shape"]]
            begin, end = (int(v) for v in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise bad(f"entry {name!r} is malformed: {entry!r}") from None
        count = 1
        for d in shape:
            count *= d
        if not 0 <= begin <= end <= len(body) or end - begin != count * torch.empty((), dtype=dtype).element_size():
            raise bad(f"tensor {name!r}: data offsets {begin}..{end} do not fit its shape {shape} or the file")
        buf = bytearray(body[begin:end])
        flat = torch.frombuffer(buf, dtype=dtype) if buf else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(shape)
    return tensors, {str(k): str(v) for k, v in metadata.items()}
