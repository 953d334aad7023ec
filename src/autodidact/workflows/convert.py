"""`autodidact convert`: any supported format in, an OGBench-layout .npz out (written atomically)."""

from pathlib import Path

from autodidact.core.errors import UserError
from autodidact.data import formats
from autodidact.data.labels import hide_actions, label_summary


def convert(src, dst, fmt=None, obs_keys=None, layout="ogbench", compressed=True, progress=True,
            label_fraction=None, seed=0):
    """Read `src` (format `fmt`, or recognized from the path) and write it to `dst`; returns a summary line.
    With `label_fraction`, only that seeded fraction of episodes keeps its actions (data/labels.py)."""
    if Path(src).resolve() == Path(dst).resolve():
        raise UserError(f"{dst}: convert never overwrites its input; choose another output path")
    fmt = fmt or formats.detect(src)
    ds = formats.read(src, fmt=fmt, obs_keys=obs_keys, progress=progress)
    if label_fraction is not None:
        ds = hide_actions(ds, label_fraction, seed)
    ds.save(dst, layout=layout, compressed=compressed)
    parts = [f"{ds.num_episodes} episodes", f"{len(ds)} steps",
             f"observations {list(ds.obs_shape)} {ds.observations.dtype}"]
    if ds.actions is not None:
        parts.append(f"actions {ds.action_dim}-d")
    if label_fraction == 0:
        parts.append("actions dropped (--label-fraction 0)")
    elif label_fraction is not None:
        labels = label_summary(ds)
        parts.append(f"labeled {labels['labeled_episodes']}/{labels['episodes']} episodes (seed {seed})")
    if ds.rewards is not None:
        parts.append("rewards")
    return (f"wrote {dst} from {fmt} ({layout} layout, {'compressed' if compressed else 'uncompressed'}): "
            + ", ".join(parts))
