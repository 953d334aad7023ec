"""`autodidact demo`: the whole job on an embedded default, in a few CPU minutes.

Collect a small pointmaze-medium-navigate-v0 dataset with OGBench's noisy navigation oracle,
pretrain the best method available for it at a CPU-sized config, evaluate on OGBench's 5 tasks,
and print the success rate and where everything lives.
"""

import time
from pathlib import Path

from autodidact.core.errors import UserError
from autodidact.core.io import atomic_write_json
from autodidact.data.dataset import load
from autodidact.workflows import train
from autodidact.workflows.collect import collect
from autodidact.workflows.evaluate import evaluate_run, format_result
from autodidact.workflows.runs import load_run

DATASET = "pointmaze-medium-navigate-v0"
# CPU-sized: OGBench's published GCBC uses batch 1024 and 3x512 networks for 1M steps; the demo
# keeps the method and its goal sampling but shrinks width, batch and budget to fit minutes. GCBC
# is the method that learns most at this budget: GCBC overfits 100 episodes if trained much longer
# (OGBench's 1M-step figure is 9%), and the value methods (GCIVL, HIQL) and HILP have not
# propagated values across the maze yet after this many steps (docs/methods/).
DEMO = {
    "method": "gcbc",
    "episodes": 100,            # 100k transitions (OGBench's file has 1M)
    "steps": 6000,
    "overrides": ("batch_size=256", "actor_hidden_dims=256,256,256"),
    "value_overrides": ("value_hidden_dims=256,256,256",),  # for methods with value networks
    "eval_episodes": 10,        # per task, 5 tasks
}


def _next_run_dir(root):
    i = 1
    while (root / f"run-{i}").exists():
        i += 1
    return root / f"run-{i}"


def run_demo(out="demo", steps=None, seed=0, method=None):
    out = Path(out)
    t0 = time.time()
    data = out / "data" / f"{DATASET}.npz"
    try:
        load(data)
        print(f"[1/3] reusing dataset {data}")
    except UserError:
        print(f"[1/3] collecting {DEMO['episodes']} episodes of {DATASET} with OGBench's oracle")
        collect(DATASET, out / "data", episodes=DEMO["episodes"], seed=seed, workers=2)
    run_dir = _next_run_dir(out)
    steps = steps or DEMO["steps"]
    method = method or DEMO["method"]
    overrides = DEMO["overrides"] + (DEMO["value_overrides"] if method != "gcbc" else ())
    print(f"[2/3] training {method} for {steps} steps ({', '.join(overrides)}) -> {run_dir}")
    s = train.TrainSettings(method=method, dataset=str(data), out=str(run_dir), steps=steps,
                              eval_every=0, eval_episodes=0, seed=seed, overrides=overrides)
    train.new_run(s, argv=["autodidact", "demo", "--out", str(out), "--seed", str(seed)])
    print(f"[3/3] evaluating on OGBench's 5 tasks, {DEMO['eval_episodes']} episodes each")
    run_cfg, model, _, step = load_run(run_dir)
    result = evaluate_run(model, run_cfg, episodes=DEMO["eval_episodes"])
    result["checkpoint_step"] = step
    atomic_write_json(run_dir / "eval" / "final.json", result)
    print()
    print(format_result(result, title=f"{method} @ step {step} on {run_cfg['env']}"))
    print(f"\nsuccess rate: {result['overall_success']:.1%}")
    print(f"run directory: {run_dir.resolve()}  ({time.time() - t0:.0f} s in all)")
    print(f"next: autodidact eval {run_dir} --video   |   tensorboard --logdir {run_dir / 'tb'}")
    return result
