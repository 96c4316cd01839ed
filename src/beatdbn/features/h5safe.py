"""Open HDF5 files from untrusted sources: refuse anything that reaches outside the file.

An HDF5 file can make the library read *other* files, and a reader that
returns what it read (a title, a feature array) would then hand their bytes
to whoever sent the file (an upload to ``beatdbn serve``, a file given to
``predict``/``extract``/``embed``). :func:`open_untrusted` opens a file and,
before any dataset's data is read, walks every link of it (metadata only)
and raises :class:`~beatdbn.exceptions.DataError` (one line: the file, the
object and what was refused) for:

* **external links** (``h5py.ExternalLink``: a group or dataset living in
  another file) and **user-defined link types**; **soft links** are kept,
  since they can only name paths inside the file, and every path inside a
  file that passes has no external link on it;
* **external raw storage** (``H5Pset_external``, ``Dataset.external``): a
  dataset whose bytes are read from other files at given offsets (the
  ``/etc/passwd`` trick of issue 24);
* **virtual datasets** (``Dataset.is_virtual``, layout ``H5D_VIRTUAL``):
  data mapped from datasets of other files;
* **filters** other than HDF5's built-in ones (deflate, shuffle, fletcher32,
  szip, n-bit, scale-offset) and h5py's LZF: any other filter id makes HDF5
  search its plugin path for a shared library to load;
* a **user block** (bytes before the superblock, ``File.userblock_size``):
  MSD files have none, and one makes a file that is HDF5 and something else
  at once (an audio header, a web page);
* more than :data:`MAX_LINKS` links (an MSD track file has 27), so the walk
  itself has a bounded cost.

The file is opened with the ``sec2`` driver named explicitly (so an
``HDF5_DRIVER`` environment variable cannot choose another, and a file whose
superblock asks for the family or multi driver, which spread a file over
several, does not open) and without file locking (a read-only input needs
none). The walk opens each dataset with a dataset access property list whose
external-file and virtual-dataset prefixes name a folder that does not
exist, so even opening the object cannot resolve a relative outside name.

Examples
--------
>>> from beatdbn.features.h5safe import open_untrusted
>>> with open_untrusted("TRAXLZU12903D05F94.h5") as h5:   # doctest: +SKIP
...     h5["analysis/songs"].shape
(1,)
"""

from __future__ import annotations

import os

import h5py

from beatdbn.exceptions import DataError

__all__ = ["open_untrusted", "check_file", "MAX_LINKS", "ALLOWED_FILTERS"]

#: Most links (groups, datasets, soft links) a file may hold; an MSD track file has 27.
MAX_LINKS = 10_000

#: Filter ids HDF5 applies without loading a plugin: its built-in ones and h5py's LZF.
ALLOWED_FILTERS = {
    h5py.h5z.FILTER_DEFLATE: "deflate",
    h5py.h5z.FILTER_SHUFFLE: "shuffle",
    h5py.h5z.FILTER_FLETCHER32: "fletcher32",
    h5py.h5z.FILTER_SZIP: "szip",
    h5py.h5z.FILTER_NBIT: "nbit",
    h5py.h5z.FILTER_SCALEOFFSET: "scaleoffset",
    h5py.h5z.FILTER_LZF: "lzf",
}

# a prefix that resolves nowhere, for the external-file and virtual-dataset names of the walk's opens
_NOWHERE = b"/nonexistent/beatdbn-refuses-outside-files"
_SELF_CONTAINED = "beatdbn reads self-contained HDF5 files only"


def _refuse(path: str, what: str) -> DataError:
    return DataError(f"{path}: refused: {what}; {_SELF_CONTAINED}")


def _locked_dapl():
    dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
    dapl.set_efile_prefix(_NOWHERE)
    dapl.set_virtual_prefix(_NOWHERE)
    return dapl


def _check_dataset(h5: h5py.File, name: bytes, path: str, dapl) -> None:
    """Refuse a dataset whose data lies outside the file or needs a plugin (its metadata only)."""
    shown = "/" + name.decode("utf-8", "replace")
    dset = h5py.h5d.open(h5.id, name, dapl=dapl)
    try:
        dcpl = dset.get_create_plist()
        layout = dcpl.get_layout()
        if layout == h5py.h5d.VIRTUAL:
            raise _refuse(path, f"{shown} is a virtual dataset (its data is mapped from other files)")
        if layout not in (h5py.h5d.COMPACT, h5py.h5d.CONTIGUOUS, h5py.h5d.CHUNKED):
            raise _refuse(path, f"{shown} has an unknown storage layout ({layout})")
        if dcpl.get_external_count():
            raise _refuse(path, f"{shown} uses external storage (its bytes live in another file)")
        for i in range(dcpl.get_nfilters()):
            fid = dcpl.get_filter(i)[0]
            if fid not in ALLOWED_FILTERS:
                raise _refuse(path, f"{shown} uses HDF5 filter {fid}, which would load a plugin")
    finally:
        dset.close()


def check_file(h5: h5py.File, path: str, *, max_links: int = MAX_LINKS) -> None:
    """Walk every link of an open file (metadata only) and refuse what reaches outside it.

    Parameters
    ----------
    h5 : h5py.File
        The open file.
    path : str
        Its name, for the messages.
    max_links : int
        Most links the file may hold.

    Raises
    ------
    DataError
        A user block, an external or user-defined link, external storage,
        a virtual dataset, a plugin filter, or too many links.
    """
    if h5.userblock_size:
        raise _refuse(path, f"a user block of {h5.userblock_size} bytes before the HDF5 data (MSD files have none)")
    found: list[tuple[bytes, int]] = []

    def visit(name: bytes, info) -> int | None:
        found.append((name, info.type))
        if info.type not in (h5py.h5l.TYPE_HARD, h5py.h5l.TYPE_SOFT):
            return 1  # stop at the first outside link: nothing past it is looked at
        return 1 if len(found) > max_links else None

    try:
        h5.id.links.visit(visit, info=True)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:  # a damaged link table
        reason = str(exc).split("(")[0].strip() or type(exc).__name__
        raise DataError(f"{path}: damaged HDF5 link table ({reason})") from None
    if len(found) > max_links:
        raise _refuse(path, f"more than {max_links:,} links (an MSD track file has 27)")
    if found and found[-1][1] not in (h5py.h5l.TYPE_HARD, h5py.h5l.TYPE_SOFT):
        name, kind = found[-1]
        what = "an external link (to another file)" if kind == h5py.h5l.TYPE_EXTERNAL else \
            f"a user-defined link (type {kind})"
        raise _refuse(path, f"/{name.decode('utf-8', 'replace')} is {what}")
    dapl = _locked_dapl()
    for name, kind in found:
        if kind != h5py.h5l.TYPE_HARD:
            continue
        try:
            is_dataset = h5py.h5o.get_info(h5.id, name).type == h5py.h5o.TYPE_DATASET
            if is_dataset:
                _check_dataset(h5, name, path, dapl)
        except DataError:
            raise
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            reason = str(exc).split("(")[0].strip() or type(exc).__name__
            raise DataError(f"{path}: damaged HDF5 object /{name.decode('utf-8', 'replace')} ({reason})") from None


def open_untrusted(path, *, max_links: int = MAX_LINKS) -> h5py.File:
    """Open an HDF5 file read-only, refusing anything that reaches outside it.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    max_links : int
        Most links the file may hold (:data:`MAX_LINKS`).

    Returns
    -------
    h5py.File
        Open read-only; every dataset in it was checked (the caller closes it).

    Raises
    ------
    DataError
        Missing, a folder, not HDF5, or refused (see the module docstring);
        one line naming the file and the reason.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory, not an MSD .h5 file")
    if not os.path.isfile(path):
        raise DataError(f"{path}: not a regular file (a pipe, socket or device); give a file")
    try:
        h5 = h5py.File(path, "r", driver="sec2", locking=False)
    except (OSError, RuntimeError, ValueError) as exc:
        reason = str(exc).split("(")[0].strip() or type(exc).__name__
        raise DataError(f"{path}: not a readable HDF5 file ({reason}); is it an MSD track file?") from None
    try:
        check_file(h5, path, max_links=max_links)
    except BaseException:
        h5.close()
        raise
    return h5
