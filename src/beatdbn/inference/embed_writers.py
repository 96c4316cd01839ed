"""Streaming writers of embeddings: Parquet (a row group per batch) and NPZ (arrays spooled to disk).

Both yield ``write(track_id, source, n_beats, step_beats (S, 2), step_seconds (S, 2), steps (S, F))``
(``step_seconds``: the start of a step's first and last beat, in seconds)
and compute the pooled mean and max. The file appears under its final name
only when complete (:func:`beatdbn.utils.atomic.atomic_path`); memory holds
one batch of rows, whatever the number of tracks.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from beatdbn.exceptions import ParameterError
from beatdbn.utils.atomic import atomic_path

__all__ = ["embedding_writer", "EMBED_SUFFIXES"]

EMBED_SUFFIXES = (".parquet", ".npz")
Writer = Callable[[str, str, int, np.ndarray, np.ndarray, np.ndarray], None]


@contextlib.contextmanager
def embedding_writer(path: str | Path, n_features: int, *, rows_per_group: int = 256) -> Iterator[Writer]:
    """Yield ``write(...)`` for ``path`` (``.parquet`` or ``.npz``).

    Raises
    ------
    ParameterError
        Another suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in EMBED_SUFFIXES:
        raise ParameterError(f"--out {path}: must end in .parquet or .npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if suffix == ".parquet":
            with _parquet(tmp, n_features, rows_per_group) as write:
                yield write
        else:
            with _npz(tmp, n_features) as write:
                yield write


def _schema(n_features: int) -> pa.Schema:
    vec = pa.list_(pa.float32(), n_features)
    return pa.schema([("track_id", pa.string()), ("source", pa.string()), ("n_beats", pa.int64()),
                      ("n_steps", pa.int64()), ("step_beats", pa.list_(pa.list_(pa.int64(), 2))),
                      ("step_seconds", pa.list_(pa.list_(pa.float64(), 2))),
                      ("steps", pa.list_(vec)), ("mean", vec), ("max", vec)])


@contextlib.contextmanager
def _parquet(tmp: Path, n_features: int, rows_per_group: int) -> Iterator[Writer]:
    schema = _schema(n_features)
    rows: list[dict] = []
    with pq.ParquetWriter(tmp, schema) as pw:
        def flush() -> None:
            if rows:
                pw.write_table(pa.Table.from_pylist(rows, schema=schema))
                rows.clear()

        def write(track_id: str, source: str, n_beats: int, step_beats: np.ndarray, step_seconds: np.ndarray,
                  steps: np.ndarray) -> None:
            rows.append({"track_id": track_id, "source": source, "n_beats": int(n_beats), "n_steps": len(steps),
                         "step_beats": step_beats.tolist(), "step_seconds": np.round(step_seconds, 4).tolist(),
                         "steps": steps.tolist(),
                         "mean": steps.mean(axis=0).tolist(), "max": steps.max(axis=0).tolist()})
            if len(rows) >= rows_per_group:
                flush()

        yield write
        flush()


class _Spool:
    """An append-only raw array on disk, written out as one ``.npy`` entry of a zip at the end."""

    def __init__(self, folder: Path, name: str, dtype: str, width: int | None):
        self.name, self.dtype, self.width, self.rows = name, np.dtype(dtype), width, 0
        self.path = folder / f"{name}.raw"
        self.f = self.path.open("wb")

    def append(self, a: np.ndarray) -> None:
        a = np.ascontiguousarray(a, dtype=self.dtype)
        self.f.write(a.tobytes())
        self.rows += len(a)

    def into(self, zf: zipfile.ZipFile) -> None:
        self.f.close()
        shape = (self.rows,) if self.width is None else (self.rows, self.width)
        with zf.open(f"{self.name}.npy", "w", force_zip64=True) as out:
            np.lib.format.write_array_header_1_0(out, {"descr": np.lib.format.dtype_to_descr(self.dtype),
                                                       "fortran_order": False, "shape": shape})
            with self.path.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)


@contextlib.contextmanager
def _npz(tmp: Path, n_features: int) -> Iterator[Writer]:
    with tempfile.TemporaryDirectory(prefix=".embed-", dir=tmp.parent) as folder:
        folder = Path(folder)
        spools = {name: _Spool(folder, name, dtype, width) for name, dtype, width in (
            ("n_beats", "int64", None), ("mean", "float32", n_features), ("max", "float32", n_features),
            ("steps", "float32", n_features), ("step_track", "int64", None), ("step_beats", "int64", 2),
            ("step_seconds", "float64", 2))}
        ids: list[str] = []
        sources: list[str] = []

        def write(track_id: str, source: str, n_beats: int, step_beats: np.ndarray, step_seconds: np.ndarray,
                  steps: np.ndarray) -> None:
            spools["n_beats"].append(np.array([n_beats]))
            spools["mean"].append(steps.mean(axis=0, keepdims=True))
            spools["max"].append(steps.max(axis=0, keepdims=True))
            spools["steps"].append(steps)
            spools["step_track"].append(np.full(len(steps), len(ids)))
            spools["step_beats"].append(step_beats)
            spools["step_seconds"].append(step_seconds)
            ids.append(track_id)
            sources.append(source)

        yield write
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, values in (("track_id", ids), ("source", sources)):
                with zf.open(f"{name}.npy", "w") as out:
                    np.lib.format.write_array(out, np.array(values, dtype=str), allow_pickle=False)
            for s in spools.values():
                s.into(zf)
