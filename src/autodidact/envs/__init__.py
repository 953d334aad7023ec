"""OGBench environments: names, construction, tasks (`ogbench`), perturbations (`perturb`),
rewards of dataset states (`rewards`) and what OGBench observations hold (`layouts`).

ogbench (and so mujoco) is imported lazily: importing this package does not load a simulator."""

from autodidact.envs.ogbench import (env_name_for_dataset, make_env, num_tasks, seed_reset_sampling, single_task_id,
                                     task_ids, task_names, time_limit)

__all__ = ["env_name_for_dataset", "make_env", "num_tasks", "seed_reset_sampling", "single_task_id", "task_ids",
           "task_names", "time_limit"]
