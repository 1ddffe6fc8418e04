"""Decode-once image cache: every image resized to the training size once, kept on disk, memory-mapped.

    CACHE_DIR/<H>x<W>/images.u8    uint8 array (slots, H, W, 3), append-only
    CACHE_DIR/<H>x<W>/index.csv    path, bytes, mtime_ns, sample, slot, crc
    CACHE_DIR/<H>x<W>/lock         held (flock) by whoever adds entries

An entry is keyed by the file's identity (path, size, mtime, a hash of its first and last 64 KB):
a changed file is decoded again
into a new slot, an added file gets a new slot, everything else is reused. The arrays are
exactly what `read_image` returns, so training reads identical pixels with or without the cache.
Augmentation runs afterwards, on the cached uint8 arrays. Readers open the map lazily, so
DataLoader workers (forked or spawned) each get their own.

Several runs may share one cache at once (the default `OUT/cache` is shared by every run there):
adding entries happens under an exclusive lock, a written slot is never rewritten (so a slot a
reader has mapped keeps its pixels), and every read checks the slot's CRC-32 against the index
(6 us at 128x96, 23 us at 224x224 on this 2-core box): pixels from anywhere else are an error, never training data.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from maskcls import io
from maskcls.data.dataset import read_image
from maskcls.errors import MaskclsError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no locking; do not share a cache between runs there
    fcntl = None

INDEX_COLUMNS = ["path", "bytes", "mtime_ns", "sample", "slot", "crc"]
SAMPLE_BYTES = 64 * 1024  # the head and the tail of the file that its content key hashes


def file_key(path: str) -> tuple[str, int, int, str]:
    """(path, size, mtime, a hash of the file's first and last 64 KB): a file replaced by another of the
    same size with its mtime put back (`cp -p`, or on purpose) changes the hash, so it is decoded again.
    A contest photo (40-100 KB) is read whole: about 1 ms a hundred files from the page cache
    (bench/loader.py measures the warm pass)."""
    st = os.stat(path)
    h = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as f:
        h.update(f.read(SAMPLE_BYTES))
        if st.st_size > 2 * SAMPLE_BYTES:
            f.seek(-SAMPLE_BYTES, os.SEEK_END)
        h.update(f.read(SAMPLE_BYTES))
    return os.path.abspath(path), st.st_size, st.st_mtime_ns, h.hexdigest()


def checksum(pixels: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(pixels).data)


class ImageCache:
    def __init__(self, cache_dir: str | Path, size: tuple[int, int]):
        self.size = (int(size[0]), int(size[1]))
        self.dir = Path(cache_dir) / f"{self.size[0]}x{self.size[1]}"
        self.data_path = self.dir / "images.u8"
        self.index_path = self.dir / "index.csv"
        self.slot_bytes = self.size[0] * self.size[1] * 3
        self._map: np.memmap | None = None

    # -- building ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self):
        """Exclusive use of this cache folder for adding entries (other processes wait)."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            f = open(self.dir / "lock", "a")  # noqa: SIM115 - held for the whole block
        except OSError as e:
            raise io.write_error(self.dir / "lock", e) from None
        with f:
            if fcntl is not None:
                fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(f, fcntl.LOCK_UN)

    def _load_index(self) -> pd.DataFrame:
        if not self.index_path.exists():
            return pd.DataFrame(columns=INDEX_COLUMNS)
        index = pd.read_csv(self.index_path, dtype={"path": str, "sample": str})
        if list(index.columns) != INDEX_COLUMNS:  # an older cache (no checksums, no content key): start over
            self.data_path.unlink(missing_ok=True)
            return pd.DataFrame(columns=INDEX_COLUMNS)
        return index

    def ensure(self, paths: list[str], workers: int | None = None, progress=None) -> tuple[np.ndarray, np.ndarray]:
        """(slot, crc) of each path, decoding only files that are new or changed."""
        with self._locked():
            index = self._load_index()
            entries = {r.path: (int(r.bytes), int(r.mtime_ns), r.sample, int(r.slot), int(r.crc))
                       for r in index.itertuples(index=False)}  # fmt: skip
            on_disk = self.data_path.stat().st_size // self.slot_bytes if self.data_path.exists() else 0
            # Append-only: after every indexed slot and after anything a killed writer left behind.
            next_slot = max(on_disk, max((e[3] for e in entries.values()), default=-1) + 1)
            first_new = next_slot
            slots, crcs, todo = np.empty(len(paths), dtype=np.int64), np.empty(len(paths), dtype=np.int64), []
            for i, src in enumerate(paths):
                path, size, mtime, sample = file_key(src)
                old = entries.get(path)
                if old is not None and old[:3] == (size, mtime, sample):
                    slots[i], crcs[i] = old[3], old[4]
                    continue
                entries[path] = (size, mtime, sample, next_slot, -1)
                slots[i] = next_slot
                todo.append((i, src, path, next_slot))
                next_slot += 1
            if todo:
                self._grow(first_new, next_slot)
                mm = np.memmap(self.data_path, dtype=np.uint8, mode="r+", shape=(next_slot, *self.size, 3))

                def fill(item) -> tuple[int, int]:
                    i, src, _, slot = item
                    pixels = read_image(src, self.size)
                    mm[slot] = pixels
                    return i, checksum(pixels)

                try:
                    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:  # cv2 decodes without the GIL
                        for i, crc in pool.map(fill, todo):
                            crcs[i] = crc
                            if progress is not None:
                                progress(1)
                except BaseException:  # e.g. a corrupt image: give back the slots, index unchanged
                    del mm
                    with open(self.data_path, "r+b") as f:
                        f.truncate(first_new * self.slot_bytes)
                    raise
                mm.flush()
                del mm
                for i, _, path, slot in todo:
                    entries[path] = (*entries[path][:3], slot, int(crcs[i]))
                rows = [(path, *entry) for path, entry in entries.items()]
                io.write_csv(self.index_path, pd.DataFrame(rows, columns=INDEX_COLUMNS))
                self._map = None
        return slots, crcs

    def _grow(self, have: int, slots: int) -> None:
        need = slots * self.slot_bytes
        more = (slots - have) * self.slot_bytes
        free = shutil.disk_usage(self.dir).free
        if more > free:
            raise MaskclsError(
                f"{self.data_path}: the image cache needs {more / 1e9:.1f} GB more at {self.size[0]}x{self.size[1]}, "
                f"{free / 1e9:.1f} GB are free: use a smaller --img-size, another --cache-dir, or --no-cache"
            )
        try:
            with open(self.data_path, "ab") as f:
                if f.tell() < need:
                    f.truncate(need)
        except OSError as e:
            raise io.write_error(self.data_path, e) from None

    # -- reading -------------------------------------------------------------------------------
    def _array(self) -> np.memmap:
        if self._map is None:
            n = os.path.getsize(self.data_path) // self.slot_bytes
            self._map = np.memmap(self.data_path, dtype=np.uint8, mode="r", shape=(n, *self.size, 3))
        return self._map

    def read(self, slot: int) -> np.ndarray:
        if slot >= len(self._array()):  # the file grew since this reader mapped it
            self._map = None
        return np.array(self._array()[slot])  # a copy: augmentations write into it

    def __getstate__(self):  # DataLoader workers reopen the map themselves
        state = dict(self.__dict__)
        state["_map"] = None
        return state


class CachedSource:
    """A FaceDataset source: image i comes from its cache slot, checked against its CRC."""

    def __init__(self, cache: ImageCache, slots: np.ndarray, crcs: np.ndarray, paths: list[str] | None = None):
        self.cache, self.slots, self.crcs, self.paths = cache, slots, crcs, paths

    def __call__(self, i: int) -> np.ndarray:
        pixels = self.cache.read(int(self.slots[i]))
        if checksum(pixels) != self.crcs[i]:
            name = self.paths[i] if self.paths is not None else f"image {i}"
            raise MaskclsError(
                f"{name}: its cache slot {int(self.slots[i])} in {self.cache.data_path} holds other pixels than "
                f"when it was written; delete {self.cache.dir} and run again"
            )
        return pixels


def cached_source(cache_dir: str | Path, size, paths: list[str], console=None) -> CachedSource:
    """Make sure every path is cached at size (progress bar when decoding), return the dataset source."""
    from maskcls.progress import LogProgress

    cache = ImageCache(cache_dir, size)
    with LogProgress(console=console, transient=True) as progress:
        task = progress.add_task(f"caching images at {size[0]}x{size[1]}", total=len(paths))
        slots, crcs = cache.ensure(list(paths), progress=lambda n: progress.update(task, advance=n))
    return CachedSource(cache, slots, crcs, list(paths))
