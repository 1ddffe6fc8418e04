"""Decode-once image cache: every image resized to the training size once, kept on disk, memory-mapped.

    CACHE_DIR/<H>x<W>/images.u8    uint8 array (slots, H, W, 3), grown as needed
    CACHE_DIR/<H>x<W>/index.csv    path, bytes, mtime_ns, slot

An entry is keyed by the file's identity (path, size, mtime): a changed file is decoded again
into its own slot, an added file gets a new slot, everything else is reused. The arrays are
exactly what `read_image` returns, so training reads identical pixels with or without the cache.
Augmentation runs afterwards, on the cached uint8 arrays. Readers open the map lazily, so
DataLoader workers (forked or spawned) each get their own.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from maskcls import io
from maskcls.data.dataset import read_image

INDEX_COLUMNS = ["path", "bytes", "mtime_ns", "slot"]


def file_key(path: str) -> tuple[str, int, int]:
    st = os.stat(path)
    return os.path.abspath(path), st.st_size, st.st_mtime_ns


class ImageCache:
    def __init__(self, cache_dir: str | Path, size: tuple[int, int]):
        self.size = (int(size[0]), int(size[1]))
        self.dir = Path(cache_dir) / f"{self.size[0]}x{self.size[1]}"
        self.data_path = self.dir / "images.u8"
        self.index_path = self.dir / "index.csv"
        self.slot_bytes = self.size[0] * self.size[1] * 3
        self._map: np.memmap | None = None

    # -- building ------------------------------------------------------------------------------
    def _load_index(self) -> pd.DataFrame:
        if not self.index_path.exists():
            return pd.DataFrame(columns=INDEX_COLUMNS)
        return pd.read_csv(self.index_path, dtype={"path": str})

    def ensure(self, paths: list[str], workers: int | None = None, progress=None) -> np.ndarray:
        """Slots for paths, decoding only files that are new or changed; returns the slot of each path."""
        self.dir.mkdir(parents=True, exist_ok=True)
        index = self._load_index()
        entries = {r.path: (int(r.bytes), int(r.mtime_ns), int(r.slot)) for r in index.itertuples(index=False)}
        next_slot = max((slot for *_, slot in entries.values()), default=-1) + 1
        slots, todo = np.empty(len(paths), dtype=np.int64), []
        for i, src in enumerate(paths):
            path, size, mtime = file_key(src)
            old = entries.get(path)
            if old is not None and old[:2] == (size, mtime):
                slots[i] = old[2]
                continue
            slot = old[2] if old is not None else next_slot  # a changed file is rebuilt in its own slot
            next_slot += old is None
            entries[path] = (size, mtime, slot)
            slots[i] = slot
            todo.append((src, slot))
        if todo:
            self._grow(next_slot)
            mm = np.memmap(self.data_path, dtype=np.uint8, mode="r+", shape=(next_slot, *self.size, 3))

            def fill(item) -> int:
                src, slot = item
                mm[slot] = read_image(src, self.size)
                return 1

            with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:  # cv2 decodes without the GIL
                for n in pool.map(fill, todo):
                    if progress is not None:
                        progress(n)
            mm.flush()
            del mm
            rows = [(path, *entry) for path, entry in entries.items()]
            io.write_csv(self.index_path, pd.DataFrame(rows, columns=INDEX_COLUMNS))
            self._map = None
        return slots

    def _grow(self, slots: int) -> None:
        need = slots * self.slot_bytes
        with open(self.data_path, "ab") as f:
            if f.tell() < need:
                f.truncate(need)

    # -- reading -------------------------------------------------------------------------------
    def _array(self) -> np.memmap:
        if self._map is None:
            n = os.path.getsize(self.data_path) // self.slot_bytes
            self._map = np.memmap(self.data_path, dtype=np.uint8, mode="r", shape=(n, *self.size, 3))
        return self._map

    def read(self, slot: int) -> np.ndarray:
        return np.array(self._array()[slot])  # a copy: augmentations write into it

    def __getstate__(self):  # DataLoader workers reopen the map themselves
        state = dict(self.__dict__)
        state["_map"] = None
        return state


class CachedSource:
    """A FaceDataset source: image i comes from its cache slot."""

    def __init__(self, cache: ImageCache, slots: np.ndarray):
        self.cache, self.slots = cache, slots

    def __call__(self, i: int) -> np.ndarray:
        return self.cache.read(int(self.slots[i]))


def cached_source(cache_dir: str | Path, size, paths: list[str], console=None) -> CachedSource:
    """Make sure every path is cached at size (progress bar when decoding), return the dataset source."""
    from rich.progress import Progress

    cache = ImageCache(cache_dir, size)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"caching images at {size[0]}x{size[1]}", total=len(paths))
        slots = cache.ensure(list(paths), progress=lambda n: progress.update(task, advance=n))
    return CachedSource(cache, slots)
