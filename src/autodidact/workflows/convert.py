"""`autodidact convert`: any supported format in, an OGBench-layout .npz out (written atomically)."""

from pathlib import Path

from autodidact.core.errors import UserError
from autodidact.data import formats


def convert(src, dst, fmt=None, obs_keys=None, layout="ogbench", compressed=True, progress=True):
    """Read `src` (format `fmt`, or recognized from the path) and write it to `dst`; returns a summary line."""
    if Path(src).resolve() == Path(dst).resolve():
        raise UserError(f"{dst}: convert never overwrites its input; choose another output path")
    fmt = fmt or formats.detect(src)
    ds = formats.read(src, fmt=fmt, obs_keys=obs_keys, progress=progress)
    ds.save(dst, layout=layout, compressed=compressed)
    parts = [f"{ds.num_episodes} episodes", f"{len(ds)} steps",
             f"observations {list(ds.obs_shape)} {ds.observations.dtype}"]
    if ds.actions is not None:
        parts.append(f"actions {ds.action_dim}-d")
    if ds.rewards is not None:
        parts.append("rewards")
    return (f"wrote {dst} from {fmt} ({layout} layout, {'compressed' if compressed else 'uncompressed'}): "
            + ", ".join(parts))
