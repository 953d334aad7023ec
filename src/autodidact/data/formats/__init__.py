"""Datasets in other tools' formats, read into autodidact's `Dataset` (one module per format).

    ogbench   .npz in any OGBench layout (autodidact's own format; data/dataset.py)
    minari    a Minari dataset directory (needs `autodidact[minari]`)
    lerobot   a LeRobotDataset directory: Parquet plus MP4 video (needs `autodidact[lerobot]`)
    hdf5      a robomimic or D4RL HDF5 file (needs `autodidact[hdf5]`)

`detect` recognizes the format from the path; `read` returns a validated Dataset whose episode
boundaries are the source's. docs/FORMATS.md describes what each field becomes.
"""

from pathlib import Path

from autodidact.core.errors import DataError, UserError
from autodidact.data.formats import hdf5, lerobot, minari

FORMATS = ("ogbench", "minari", "lerobot", "hdf5")
_READERS = {"minari": minari, "lerobot": lerobot, "hdf5": hdf5}


def detect(source):
    """The format of `source`, recognized from what lies at the path."""
    path = Path(source)
    if not path.exists():
        raise DataError(path, None, "not found")
    if path.is_file() and (path.suffix.lower() == ".npz" or _starts_with(path, b"PK\x03\x04")):
        return "ogbench"  # an .npz is a zip archive, whatever its name
    for name, reader in _READERS.items():
        if reader.looks_like(path):
            return name
    what = "directory" if path.is_dir() else "file"
    raise DataError(path, None, f"format not recognized from this {what}",
                    f"name it with --from ({', '.join(FORMATS)}); see docs/FORMATS.md")


def _starts_with(path, magic):
    with open(path, "rb") as f:
        return f.read(len(magic)) == magic


def read(source, fmt=None, obs_keys=None, progress=False):
    """A Dataset from `source` in format `fmt` (None: detect it). `obs_keys` picks the observation
    fields where the format has several (a Dict space, robomimic obs/ keys, LeRobot cameras)."""
    fmt = fmt or detect(source)
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if fmt == "ogbench":
        from autodidact.data.dataset import load
        if obs_keys:
            raise UserError("--obs-keys applies to minari, lerobot and hdf5 sources, not to OGBench .npz files")
        return load(source)
    if not Path(source).exists():
        raise DataError(source, None, "not found")
    return _READERS[fmt].read(source, obs_keys=obs_keys, progress=progress)
