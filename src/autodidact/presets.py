"""Published hyperparameters per OGBench dataset and method.

The reference's `impls/hyperparameters.sh` lists the exact command behind every number in
OGBench's paper. When a dataset file is named like an OGBench dataset, its entry here becomes the
method's default config; `--set key=value` still overrides any field.

GCBC uses its `get_config()` defaults on every state-based dataset (the reference passes no
overrides), so it has no entries.
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
    return dict(PRESETS.get(dataset_base_name(dataset_name), {}).get(method, {}))
