"""Published hyperparameters per OGBench dataset and method.

The reference's `impls/hyperparameters.sh` lists the exact command behind every number in
OGBench's paper. When a dataset file is named like an OGBench dataset, its entry here becomes the
method's default config; `--set key=value` still overrides any field.

Each method keeps its own table as the class attribute `presets` next to its config (GCBC has
none: the reference passes no overrides for it on state-based datasets). `PRESETS` below holds
anything shared across methods.
"""

import re

# {dataset name without "-val"/".npz": {method: {config key: value}}}
PRESETS: dict[str, dict[str, dict]] = {}


def dataset_base_name(name):
    """'data/pointmaze-medium-navigate-v0-val.npz' -> 'pointmaze-medium-navigate-v0'."""
    name = str(name).rsplit("/", 1)[-1]
    name = re.sub(r"\.npz$", "", name)
    return re.sub(r"-val$", "", name)


def preset_for(dataset_name, method):
    """Config overrides for `method` (a name or Method class) on the named dataset."""
    from autodidact.methods import get_method
    cls = get_method(method) if isinstance(method, str) else method
    base = dataset_base_name(dataset_name)
    out = dict(PRESETS.get(base, {}).get(cls.name, {}))
    out.update(getattr(cls, "presets", {}).get(base, {}))
    return out
