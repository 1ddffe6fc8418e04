"""Files in and out, safely: atomic writes, write errors that name the path, checkpoints that cannot run code.

- A reader never sees a half-written checkpoint, CSV or config: every write goes to a temp file
  beside the target (`.<name>.<pid>.<random>.tmp`), then is renamed over it. A failed write leaves
  the previous file untouched and no temp file behind; a killed process may leave one, which
  `clean_stale_temps` removes on the next run (only temps whose process is gone).
- A write that fails (disk full, read-only folder, file-size limit) is one MaskclsError naming the
  path and the reason, never a traceback.
- `torch_load` never executes code from the file: `weights_only=True`, plus, for checkpoints written
  by maskcls before 0.2 (numpy RNG states inside), an allowlist of numpy's plain-data constructors.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from maskcls.errors import MaskclsError

_UMASK = os.umask(0)
os.umask(_UMASK)

_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied (read-only folder?)",
    errno.EPERM: "permission denied",
    errno.EFBIG: "file too large for this file system or the process's file-size limit",
    errno.ENOENT: "folder does not exist",
    errno.ENOTDIR: "a path component is a file, not a folder",
    errno.EISDIR: "is a folder",
}


def write_error(path: str | Path, e: BaseException) -> MaskclsError:
    """A one-line error for a failed write of path, with the reason in words."""
    reason = _REASONS.get(getattr(e, "errno", None))
    if reason is None and isinstance(e, RuntimeError):  # torch.save's C++ writer: "unexpected pos ..."
        reason = _why_write_stopped(Path(path).parent)
    return MaskclsError(f"cannot write {path}: {reason or e}")


def _why_write_stopped(folder: Path) -> str:
    """torch.save reports a short write without errno: find the likely cause."""
    free = _free_bytes(folder)
    if free is not None and free < 64 * 2**20:
        return _REASONS[errno.ENOSPC]
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY:
            return f"{_REASONS[errno.EFBIG]} ({limit} bytes)"
    except ImportError:  # pragma: no cover - not on Windows
        pass
    return "the write stopped short (disk full, quota, or the folder went away)"


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def check_apart(out: str | Path, out_flag: str, inputs: dict[str, str | Path | None]) -> None:
    """The one rule of every command: an output (file or folder) that is, contains, or lies inside an input
    (data set, run folder, input file) is refused before anything is written. Paths are resolved, so `D`,
    `D/`, `/abs/D` and a symlink to D (or into it) are all D; inputs given as None are skipped."""
    o = Path(out).resolve()
    for flag, path in inputs.items():
        if path is None:
            continue
        i = Path(path).resolve()
        if o == i or o.is_relative_to(i) or i.is_relative_to(o):
            where = "is" if o == i else "lies inside" if o.is_relative_to(i) else "contains"
            raise MaskclsError(f"{out_flag} {out} {where} {flag} {path}: write the output to a folder of its own")


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call write(tmp_path) on a temp file beside path, then rename it over path."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise write_error(path, e) from None
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a normal file honours the umask
        write(tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        _unlink(tmp)
        raise write_error(path, e) from None
    except BaseException:
        _unlink(tmp)
        raise
    return path


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


_TEMP_RE = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")


def clean_stale_temps(folder: str | Path) -> list[Path]:
    """Remove temp files of atomic writes in folder whose writing process no longer runs."""
    folder, removed = Path(folder), []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        m = _TEMP_RE.match(p.name)
        if m and p.is_file() and not _pid_alive(int(m[1])):
            _unlink(str(p))
            removed.append(p)
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def check_writable(path: str | Path) -> None:
    """Fail now, before long work, if a file cannot be created at path (its folder is made if needed)."""
    path = Path(path)
    if path.is_dir():
        raise MaskclsError(f"cannot write {path}: is a folder (give a file name)")
    existing = next(p for p in [path.parent, *path.parent.parents] if p.exists() or p == Path(p.anchor or "."))
    if existing.exists() and not existing.is_dir():
        raise MaskclsError(f"cannot write {path}: {existing} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise write_error(path, e) from None


def write_text(path: str | Path, text: str) -> Path:
    def _write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)

    return atomic_write(path, _write)


def write_json(path: str | Path, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def read_csv(path: Path, required: list[str], **kw):
    """Read a CSV or raise a one-line error naming the file and what is wrong."""
    import pandas as pd

    if not path.is_file():
        raise MaskclsError(f"{path}: file not found")
    try:
        df = pd.read_csv(path, **kw)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MaskclsError(f"{path}: unreadable CSV ({first})") from None
    header = _header(path)  # pandas renames a repeated column (x, x.1): the first would silently win
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise MaskclsError(f"{path}: column {twice[0]!r} appears {header.count(twice[0])} times in the header")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise MaskclsError(f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(map(str, df.columns))})")
    return df


def _header(path: Path) -> list[str]:
    import csv

    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            return [c.strip() for c in next(csv.reader(f), [])]
    except (OSError, csv.Error):
        return []


def write_csv(path: str | Path, df, **kw) -> Path:
    return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, **kw))


def torch_save(path: str | Path, obj) -> Path:
    import torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


# numpy's constructors of plain arrays, scalars and dtypes: data only, no code. maskcls before 0.2
# stored numpy RNG states and numpy floats in checkpoints; these let such files load.
_NUMPY_DATA = {
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype",
    "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
}  # fmt: skip
_NUMPY_DTYPE_RE = re.compile(r"^numpy\.dtypes\.\w+DType$")


def torch_load(path: str | Path, what: str = "checkpoint"):
    """torch.load that never runs code from the file; errors are one line naming the file.

    No size cap: what a checkpoint may weigh depends on its backbone (tv/mobilenet_v2's is 14 MB
    with its optimizer state, a ViT-L's several GB), which is known only from the config inside
    it, i.e. after reading it; a fixed cap would refuse real large backbones. A padded file costs
    memory while it loads (a 1 GiB one peaked at 2.7 GB) but cannot run code or become a model.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise MaskclsError(f"{path}: {what} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # not a torch file, truncated, or globals the safe unpickler refuses
        first = _first_line(e)
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; older torch files rarely fail above
        raise MaskclsError(f"{path}: not a PyTorch {what} (no torch.save archive inside; damaged or another format)")
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:
        raise MaskclsError(f"{path}: not a readable {what} ({first})") from None
    unsafe = [g for g in needed if g not in _NUMPY_DATA and not _NUMPY_DTYPE_RE.match(g)]
    if unsafe:
        raise MaskclsError(
            f"{path}: refused to load: the file references {unsafe[0]}, which a {what} never needs "
            "(loading it could run code)"
        )
    try:
        with torch.serialization.safe_globals([_resolve(g) for g in needed] + _numpy_dtypes()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise MaskclsError(f"{path}: not a readable {what} ({_first_line(e)})") from None


def _numpy_dtypes() -> list:
    """numpy's dtype classes (UInt32DType, ...): needed to rebuild arrays, never listed as globals."""
    import numpy as np

    dtypes = getattr(np, "dtypes", None)
    return [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")] if dtypes is not None else []


def _resolve(qualname: str):
    import importlib

    module, _, name = qualname.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _first_line(e: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:200]
