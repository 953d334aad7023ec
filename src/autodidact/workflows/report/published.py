"""OGBench's published success rates, the numbers a report sets beside a run's.

Source: Park et al., "OGBench: Benchmarking Offline Goal-Conditioned RL" (ICLR 2025), Table 2
(state-based datasets: 1M steps at batch 1024, mean over 8 seeds) and its pixel-based rows
(visual datasets: 500k steps, `impala_small` encoder). Success in percent over the 5 evaluation
tasks of each environment. OGBench publishes overall rates per dataset and method; HILP, Play-LMP,
Play-GCBC and BESO are not in its tables.
"""

import re
from pathlib import Path

PUBLISHED = {
    "pointmaze-medium-navigate": {"gcbc": 9, "gcivl": 63, "gciql": 53, "qrl": 82, "crl": 29, "hiql": 79},
    "pointmaze-large-navigate": {"gcbc": 29, "gcivl": 45, "gciql": 34, "qrl": 86, "crl": 39, "hiql": 58},
    "antmaze-medium-navigate": {"gcbc": 29, "gcivl": 72, "gciql": 71, "qrl": 88, "crl": 95, "hiql": 96},
    "cube-single-play": {"gcbc": 6, "gcivl": 53, "gciql": 68, "qrl": 5, "crl": 19, "hiql": 15},
    "scene-play": {"gcbc": 5, "gcivl": 42, "gciql": 51, "qrl": 5, "crl": 19, "hiql": 38},
    "puzzle-3x3-play": {"gcbc": 2, "gcivl": 6, "gciql": 95, "qrl": 1, "crl": 3, "hiql": 12},
    "visual-cube-single-play": {"gcbc": 5, "gcivl": 60, "gciql": 30, "qrl": 41, "crl": 31, "hiql": 89},
    "visual-scene-play": {"gcbc": 12, "gcivl": 25, "gciql": 12, "qrl": 10, "crl": 11, "hiql": 49},
}


def dataset_key(dataset_path):
    """'data/pointmaze-medium-navigate-v0-val.npz' -> 'pointmaze-medium-navigate'."""
    stem = Path(str(dataset_path)).name.removesuffix(".npz").removesuffix("-val")
    return re.sub(r"-v\d+$", "", stem)


def published_success(dataset_path, method):
    """OGBench's overall success rate (a fraction) for this dataset and method, or None."""
    percent = PUBLISHED.get(dataset_key(dataset_path), {}).get(method)
    return None if percent is None else percent / 100
