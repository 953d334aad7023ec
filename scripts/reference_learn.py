"""Train one OGBench reference agent (JAX, impls/) on a dataset file and evaluate it with
autodidact's evaluator, so both implementations are scored by the same episodes and seeds.

Runs in the reference's scratch venv (jax, flax, optax, distrax, ml_collections, ogbench, mujoco),
never in autodidact's. The reference source is imported from $REF_DIR (exported from the mirror);
nothing of it lives in this repository. Called by scripts/learn_reference.sh.

The setup mirrors impls/main.py: get_config() defaults, the published per-dataset flags
(impls/hyperparameters.sh, pointmaze-medium-navigate-v0), the reference's own GCDataset /
HGCDataset sampler over ogbench.load_dataset(..., compact_dataset=True), evaluation at temperature
0. A dataset named visual-*-play-v0 gets OGBench's visual row instead (impala_small, p_aug 0.5, the
visual alphas). The only changes are the ones the benchmark states for both sides: batch size,
network widths and the step budget.
"""

import argparse
import json
import random
import sys
import time

import numpy as np

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--ref", required=True, help="exported reference tree (has impls/ and ogbench/utils.py)")
p.add_argument("--src", required=True, help="autodidact's src/ directory (for autodidact.workflows.evaluate only)")
p.add_argument("--method", required=True, choices=["gcbc", "gcivl", "gciql", "qrl", "crl", "hiql"])
p.add_argument("--dataset", required=True, help="OGBench-layout .npz (the same file autodidact trains on)")
p.add_argument("--steps", type=int, required=True, help="gradient steps")
p.add_argument("--batch-size", type=int, required=True)
p.add_argument("--hidden", default="", help="hidden widths of every MLP, e.g. 256,256,256 (default: published)")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--episodes", type=int, default=10, help="evaluation episodes per task")
p.add_argument("--json", required=True, help="where to write the result")
a = p.parse_args()

# The reference agents and their samplers come from the exported tree; ogbench.load_dataset from
# the installed ogbench package, pinned to the same version as autodidact's (its utils.py is
# identical to the mirror's), which also provides the evaluator's environments.
sys.path.insert(0, a.ref + "/impls")

import importlib  # noqa: E402

import jax  # noqa: E402
from ogbench.utils import load_dataset  # noqa: E402
from utils.datasets import Dataset, GCDataset, HGCDataset  # noqa: E402

PUBLISHED = {"gcbc": {}, "gcivl": {"alpha": 10.0}, "gciql": {"alpha": 0.003}, "qrl": {"alpha": 0.0003},
             "crl": {"alpha": 0.03}, "hiql": {"high_alpha": 3.0, "low_alpha": 3.0}}
# impls/hyperparameters.sh: the row every visual-*-play-v0 dataset shares.
VISUAL = {"gcbc": {}, "gcivl": {"alpha": 10.0}, "gciql": {"alpha": 1.0}, "qrl": {"alpha": 0.3}, "crl": {"alpha": 3.0},
          "hiql": {"high_alpha": 3.0, "low_alpha": 3.0, "subgoal_steps": 10, "low_actor_rep_grad": True}}
VISUAL_ROW = {"encoder": "impala_small", "p_aug": 0.5}
CLASSES = {"gcbc": "GCBCAgent", "gcivl": "GCIVLAgent", "gciql": "GCIQLAgent", "qrl": "QRLAgent",
           "crl": "CRLAgent", "hiql": "HIQLAgent"}

mod = importlib.import_module(f"agents.{a.method}")
config = mod.get_config()
visual = a.dataset.rsplit("/", 1)[-1].startswith("visual-")
for k, v in ({**VISUAL_ROW, **VISUAL[a.method]} if visual else PUBLISHED[a.method]).items():
    config[k] = v
config["batch_size"] = a.batch_size
hidden = tuple(int(x) for x in a.hidden.split(",")) if a.hidden else None
for key in ("actor_hidden_dims", "value_hidden_dims"):
    if key in config and hidden:
        config[key] = hidden

random.seed(a.seed)
np.random.seed(a.seed)
ds_cls = {"GCDataset": GCDataset, "HGCDataset": HGCDataset}[config["dataset_class"]]
train = ds_cls(Dataset.create(**load_dataset(a.dataset, compact_dataset=True)), config)
example = train.sample(1)
agent = getattr(mod, CLASSES[a.method]).create(a.seed, example["observations"], example["actions"], config)

t0 = time.perf_counter()
first = last = None
log_every = max(1, a.steps // 100)  # autodidact's default --log-every, so the two loss curves line up
curve = []
for step in range(1, a.steps + 1):
    agent, info = agent.update(train.sample(config["batch_size"]))
    if step == 1:
        first = {k: float(v) for k, v in info.items()}
    if step % log_every == 0:
        curve.append({"step": step, **{k: float(v) for k, v in info.items()}})
last = {k: float(v) for k, v in info.items()}
jax.block_until_ready(agent)
train_s = time.perf_counter() - t0

sys.path.insert(0, a.src)
from autodidact.envs import env_name_for_dataset  # noqa: E402
from autodidact.workflows.evaluate import evaluate  # noqa: E402


class RefPolicy:
    """Batched, deterministic (temperature 0) actions from the reference agent."""

    def __init__(self, agent, seed):
        self.agent, self.key = agent, jax.random.PRNGKey(seed)

    def act(self, observations, goals):
        self.key, key = jax.random.split(self.key)
        return np.asarray(self.agent.sample_actions(observations=observations, goals=goals, seed=key,
                                                    temperature=0.0))


t0 = time.perf_counter()
result = evaluate(env_name_for_dataset(a.dataset), RefPolicy(agent, a.seed), episodes_per_task=a.episodes,
                  seed=a.seed, progress=False)
result.update(impl="ogbench-jax", method=a.method, steps=a.steps, batch_size=a.batch_size, hidden=list(hidden or config["actor_hidden_dims"]),
              seed=a.seed, train_seconds=train_s, eval_seconds=time.perf_counter() - t0,
              first_losses=first, last_losses=last, loss_curve=curve, jax=jax.__version__)
with open(a.json, "w") as fh:
    json.dump(result, fh, indent=1)
print(json.dumps({k: result[k] for k in ("method", "overall_success", "train_seconds")}))
