"""Online fine-tuning (`autodidact finetune`): RLPD, ExPLORe and SUPE on a tiny sparse-reward point
task (tests/pointenv.py), the run directory, bit-identical resume with the replay buffer, user errors."""

import csv
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from autodidact import cli
from autodidact.data.replay import FIELDS
from autodidact.methods import FINETUNE_METHODS
from autodidact.workflows import finetune
from clihelp import ForkedCLI, kill_after_checkpoint
from pointenv import POINT_TASK, point_play_dataset, point_task_prior, register_point_task, settings

# Small networks and budgets: the point task needs no more, and the suite runs on 2 cores.
SMALL = ("hidden_dims=64,64", "batch_size=64", "model_hidden_dims=64,64", "rnd_feature_dim=16")


def _settings(tmp_path, method="rlpd", prior=None, env_steps=300, out="run", overrides=(), **kw):
    register_point_task()
    small = [o for o in SMALL if method != "rlpd" or not o.startswith(("model_", "rnd_"))]
    return finetune.FinetuneSettings(env=POINT_TASK, method=method, out=str(tmp_path / out),
                                     prior=str(prior) if prior else None, env_steps=env_steps,
                                     overrides=tuple(small) + tuple(overrides), progress=False, **kw)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_prior_data_solves_the_task_sooner_than_scratch(tmp_path):
    """At the same budget and seed, RLPD with reward-free prior data (trips towards the goal,
    labeled reward 0) reaches the goal; the same learner from scratch does not."""
    torch.set_num_threads(1)
    prior = point_task_prior(tmp_path / "prior.npz")
    # A low initial temperature: at alpha 1 the entropy bonus drowns the -1/0 reward for a few
    # thousand steps before the tuning brings it down.
    common = dict(env_steps=1000, eval_every=1000, eval_episodes=10, log_every=500,
                  overrides=("start_training=100", "utd=2", "init_temperature=0.1"))
    results = {}
    for name, data in (("scratch", None), ("rlpd", prior)):
        run = finetune.new_run(_settings(tmp_path, prior=data, out=name, **common), argv=["test"])
        successes = [float(r["success"]) for r in _rows(run / "episodes.csv")]
        results[name] = (sum(successes), float(_rows(run / "eval.csv")[-1]["evaluation/success"]))
    (scratch_train, scratch_eval), (prior_train, prior_eval) = results["scratch"], results["rlpd"]
    assert prior_eval >= 0.8 and scratch_eval <= 0.2, results
    assert prior_train >= scratch_train + 5, results


def test_a_prompted_pretrained_policy_as_init_succeeds_where_scratch_does_not(tmp_path):
    """GCBC pretrained on unlabeled point play, prompted with the task's goal, starts the online
    learner (`--init`): it reaches the goal while it acts in the first steps, is distilled into the
    actor, and at 300 env steps the learner succeeds in evaluation; from scratch it does not."""
    torch.set_num_threads(1)
    gcbc = _gcbc_run(tmp_path)
    common = dict(env_steps=300, eval_every=300, eval_episodes=10, log_every=100,
                  overrides=("start_training=100", "utd=2"))
    results = {}
    for name, init in (("scratch", None), ("init", str(gcbc))):
        run = finetune.new_run(_settings(tmp_path, out=name, init=init, **common), argv=["test"])
        successes = [float(r["success"]) for r in _rows(run / "episodes.csv")]
        results[name] = (sum(successes), float(_rows(run / "eval.csv")[-1]["evaluation/success"]))
    run_cfg = json.loads((tmp_path / "init" / "run.json").read_text())
    assert run_cfg["init"] == str(gcbc.resolve()) and np.allclose(run_cfg["init_goal"], [0.8, 0.8])
    (scratch_train, scratch_eval), (init_train, init_eval) = results["scratch"], results["init"]
    assert init_eval >= 0.8 and scratch_eval <= 0.2, results
    assert init_train >= 2 and scratch_train == 0, results


def test_init_prompts_a_hilp_run_with_the_task_goal(tmp_path):
    """--init takes any goal-conditioned run; HILP's behaviour is its goal skill towards the task's
    goal, normalize(phi(g) - phi(s)), executed by its skill policy."""
    torch.set_num_threads(1)
    hilp = _hilp_run(tmp_path)
    run = finetune.new_run(_settings(tmp_path, out="hilp-init", init=str(hilp), env_steps=60, eval_episodes=0,
                                     overrides=("start_training=30", "init_distill_steps=10")), argv=["x"])
    run_cfg = json.loads((run / "run.json").read_text())
    agent = finetune.build_agent(run_cfg)
    obs = torch.rand(5, 2) * 2 - 1
    goal = torch.tensor(run_cfg["init_goal"]).expand(5, 2)
    from autodidact.workflows.runs import load_run
    expected = load_run(hilp)[1].act(obs, goal, temperature=0.0).clamp(-1, 1)
    assert torch.equal(agent.behaviour(obs), expected)
    assert float(_rows(run / "metrics.csv")[-1]["actor/bc_weight"]) > 0


def _hilp_run(tmp_path):
    """Tiny HILP skills pretrained on point play data (the point task's spaces)."""
    from autodidact.workflows import train as trainer
    data = point_play_dataset(tmp_path / "play.npz", episodes=5)
    return trainer.new_run(settings("hilp", tmp_path, data, 30, out="hilp", overrides=(
        "batch_size=32", "actor_hidden_dims=16", "value_hidden_dims=16,16", "skill_dim=4")), argv=["x"])


def _gcbc_run(tmp_path, steps=300, obs_dim=2):
    """GCBC pretrained on point play: prompted with the point task's goal it reaches it."""
    from autodidact.workflows import train as trainer
    data = point_play_dataset(tmp_path / f"play{obs_dim}.npz")
    if obs_dim != 2:
        from autodidact.data.dataset import Dataset
        ds = Dataset.load(data)
        obs = np.concatenate([np.asarray(ds.observations)] + [np.asarray(ds.observations)[:, :1]] * (obs_dim - 2), 1)
        Dataset(obs, np.asarray(ds.terminals), np.asarray(ds.actions)).save(data)
    return trainer.new_run(settings("gcbc", tmp_path, data, steps, out=f"gcbc{obs_dim}", overrides=(
        "batch_size=256", "actor_hidden_dims=64,64", "lr=1e-3")), argv=["x"])


def _vae_run(tmp_path, steps=30, overrides=("batch_size=16", "decoder_hidden_dims=16", "prior_hidden_dims=16",
                                              "recognizer_hidden=8", "skill_dim=4")):
    """skill-vae skills pretrained on point play data (the point task's spaces)."""
    from autodidact.workflows import train as trainer
    data = point_play_dataset(tmp_path / "play-vae.npz", episodes=5)
    return trainer.new_run(settings("skill-vae", tmp_path, data, steps, out="vae", overrides=overrides), argv=["x"])


@pytest.mark.parametrize("method", ["rlpd", "explore", "supe", "rlpd-init", "supe-vae", "supe-windows"])
def test_resume_is_bit_identical_with_the_replay_buffer(tmp_path, method):
    """260 env steps straight, or 130 (ending mid-episode) then resumed to 260: the same weights,
    optimizer state, replay buffer and metrics. Updates and ExPLORe's models start before 130;
    SUPE's skills run 4 env steps each, sampling their actions, so its checkpoints fall at the
    first skill boundary past, and with interpolate_skills its buffer holds the re-labeled online
    windows too; with --init the prompted GCBC run acts first and pulls the actor."""
    from autodidact.workflows.checkpoint import latest_checkpoint
    torch.set_num_threads(1)
    prior = point_task_prior(tmp_path / "prior.npz", episodes=4)
    kw = dict(method=method, prior=prior, eval_every=130, eval_episodes=2, log_every=20, checkpoint_every=130,
              overrides=("start_training=40", "utd=2"), max_episode_steps=45)
    if method == "supe":
        kw.update(skills=str(_hilp_run(tmp_path)), overrides=kw["overrides"] + ("updates_per_step=2",))
    if method == "rlpd-init":
        kw.update(method="rlpd", init=str(_gcbc_run(tmp_path, steps=20)),
                  overrides=kw["overrides"] + ("init_distill_steps=100",))
    if method == "supe-vae":
        kw.update(method="supe", skills=str(_vae_run(tmp_path)), overrides=kw["overrides"] + ("updates_per_step=2",))
    if method == "supe-windows":
        kw.update(method="supe", skills=str(_vae_run(tmp_path)),
                  overrides=kw["overrides"] + ("updates_per_step=2", "interpolate_skills=true"))
    full = finetune.new_run(_settings(tmp_path, env_steps=260, out="full", **kw), argv=["x"])
    part = finetune.new_run(_settings(tmp_path, env_steps=130, out="part", **kw), argv=["x"])
    if method == "rlpd-init":
        # The pretrained run trains on meanwhile; the fine-tuning run keeps the checkpoint it began with.
        from autodidact.workflows import train as trainer
        trainer.resume_run(kw["init"], argv=["more"], steps=22, progress=False)
        assert json.loads((part / "run.json").read_text())["init_checkpoint"].endswith("step_00000020")
    ckpt = latest_checkpoint(part / "checkpoints")
    state = json.loads((ckpt / "state.json").read_text())
    assert state["loop"]["episode_start"] < state["step"], "the checkpoint should fall inside an episode"
    finetune.resume_run(part, argv=["resume"], env_steps=260, progress=False)
    ends = [latest_checkpoint(r / "checkpoints") for r in (full, part)]
    assert ends[0].name == ends[1].name and int(ends[0].name.split("_")[1]) >= 260
    for name in ("model.safetensors", "optim.safetensors", "replay.safetensors"):
        a, b = (load_file(end / name) for end in ends)
        assert a.keys() == b.keys(), name
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    rows = len(load_file(ends[0] / "replay.safetensors")["rewards"])
    assert rows == 260 if not method.startswith("supe") else 65 <= rows < (260 if method == "supe-windows" else 120)
    if method == "supe-windows":
        assert rows > 150 and "episode_rows" in json.loads((ends[1] / "state.json").read_text())["loop"]
    for csv_name in ("metrics.csv", "episodes.csv", "eval.csv"):
        a, b = ([{k: v for k, v in row.items() if not k.startswith("time/")} for row in _rows(r / csv_name)]
                for r in (full, part))
        assert a == b and a, csv_name
    metrics = _rows(full / "metrics.csv")
    assert all(k in metrics[0] for k in FINETUNE_METHODS[kw["method"]].METRICS)
    if method == "rlpd-init":
        assert float(metrics[-1]["actor/bc_weight"]) > 0 and float(metrics[-1]["actor/bc_loss"]) >= 0
    assert float(metrics[-1]["time/env_steps_per_s"]) > 0 and float(metrics[-1]["time/critic_updates_per_s"]) > 0
    assert (part / "command.txt").read_text().splitlines() == ["x", "resume"]


class _CountingEnv:
    """A stand-in env: after t steps the observation is [t, 0] and the step's reward is t; the
    episode ends (terminal) at step `length`."""

    unwrapped = None

    def __init__(self, length):
        self.length, self.actions = length, []

    def reset(self, seed=None):
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        self.actions.append(np.array(action))
        return np.array([self.t, 0], np.float32), float(self.t), self.t == self.length, False, {}


class _MeanSkills:
    """A stand-in SUPE agent: its skills act with 0.5 * (the high-level action), and a window's
    high-level action is 0.01 x (the sum of its first observation coordinates)."""

    def act_low(self, observations, actions, temperature=0.0, generator=None):
        return 0.5 * actions

    def label_online_windows(self, observations, actions):
        return 0.01 * observations[:, :, 0].sum(1, keepdim=True).expand(-1, 2)


def test_a_skills_reward_is_the_discounted_sum_of_its_steps_up_to_the_episode_end():
    """SUPE's high-level reward, as the reference's MetaPolicyActionWrapper: sum_i gamma^i r_{t+i}
    over the skill's H steps, fewer where the episode ends inside it; `env_reward` keeps the
    plain sum for the episode's return."""
    env = finetune.SkillEnv(_CountingEnv(length=6), _MeanSkills(), horizon=4, discount=0.5)
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step(np.ones(2, np.float32))
    assert reward == 1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 4 and info["env_steps"] == 4 and info["env_reward"] == 10
    assert not terminated and obs.tolist() == [4, 0] and "windows" not in info
    assert np.allclose(env.env.actions, 0.5)
    obs, reward, terminated, _, info = env.step(np.ones(2, np.float32))
    assert reward == 5 + 0.5 * 6 and info["env_steps"] == 2 and info["env_reward"] == 11 and terminated


def test_skill_env_also_returns_every_other_whole_window_with_its_skill_read_off():
    """With windows on, each skill also yields the H-step windows of the stream ending at its
    first H-1 steps (the window ending at its last step is the skill's own transition): whole
    windows inside the episode, none ending at its last step; observation s_{e-H}, next s_e, the
    discounted reward of the window's steps, mask 1, action the skill read off the window."""
    gamma, h = 0.9, 4
    env = finetune.SkillEnv(_CountingEnv(length=10), _MeanSkills(), horizon=h, discount=gamma, windows=True)
    env.reset(seed=0)
    infos = [env.step(np.zeros(2, np.float32))[-1] for _ in range(3)]  # steps 1-4, 5-8, 9-10 (the end)
    assert "windows" not in infos[0]  # no whole window ends inside the episode's first skill
    ends = [5, 6, 7, 9]
    got = {k: np.concatenate([i["windows"][k] for i in infos[1:]]) for k in infos[1]["windows"]}
    assert got["observations"][:, 0].tolist() == [e - h for e in ends]
    assert got["next_observations"][:, 0].tolist() == ends
    expected = [sum(gamma ** i * (e - h + 1 + i) for i in range(h)) for e in ends]
    assert np.allclose(got["rewards"], expected) and (got["masks"] == 1).all()
    assert np.allclose(got["actions"][:, 0], [0.01 * sum(range(e - h, e + 1)) for e in ends])


class _Recorder:
    """Wraps an env and keeps the episode's observations and actions."""

    def __init__(self, env):
        self.env, self.unwrapped = env, env.unwrapped

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.observations, self.actions = [obs], []
        return obs, info

    def step(self, action):
        out = self.env.step(action)
        self.observations.append(out[0])
        self.actions.append(action)
        return out


@pytest.mark.parametrize("kind", ["hilp", "skill-vae"])
def test_supe_reads_the_skill_of_each_online_window_as_of_the_prior_ones(tmp_path, kind):
    """On the point task with pretrained skills: an episode of T steps yields ceil(T/H) skill
    transitions and the T - H + 1 - ceil(T/H) other whole windows that end before its last step,
    each labeled a = tanh(z) with z what the skills read off that window (HILP's
    normalize(phi(s_{t+H}) - phi(s_t)), the VAE posterior's mean); the skill policy samples its
    actions, the same again from the same episode seed."""
    from autodidact.envs import make_env
    from autodidact.methods.hilp import normalize
    from autodidact.methods.supe import SUPE, SUPEConfig
    torch.set_num_threads(1)
    register_point_task()
    run = _hilp_run(tmp_path) if kind == "hilp" else _vae_run(tmp_path)
    skills, _ = finetune.load_skills(run, POINT_TASK, 2, 2)
    agent = SUPE(SUPEConfig(hidden_dims=(16,)), 2, skills.cfg.skill_dim, skills=skills)
    h, length = 4, 45
    env = finetune.SkillEnv(_Recorder(make_env(POINT_TASK, max_episode_steps=length)), agent, h,
                            discount=0.99, temperature=1.0, windows=True)
    high = np.random.default_rng(0).uniform(-1, 1, (length, skills.cfg.skill_dim)).astype(np.float32)
    steps, windows = [], []
    env.reset(seed=3)
    for a in high:
        *_, terminated, truncated, info = env.step(a)
        steps.append(info["env_steps"])
        windows.append(info.get("windows"))
        if terminated or truncated:
            break
    record = env.env
    T = sum(steps)
    assert T == length and len(steps) == -(-T // h)  # the point task is not solved by random skills
    got = {k: np.concatenate([w[k] for w in windows if w is not None]) for k in FIELDS}
    ends = [e for e in range(h + 1, T) if e % h]
    assert len(got["rewards"]) == len(ends) == T - h + 1 - len(steps)
    observations = np.stack(record.observations)
    windows_obs = torch.from_numpy(np.stack([observations[e - h:e + 1] for e in ends]))
    windows_act = torch.from_numpy(np.stack([np.stack(record.actions[e - h:e]) for e in ends]))
    if kind == "hilp":
        z = normalize(skills.phi(windows_obs[:, -1]) - skills.phi(windows_obs[:, 0]))
    else:
        z = skills.encode_windows(windows_obs[:, :-1], windows_act)
    assert torch.allclose(torch.from_numpy(got["actions"]), torch.tanh(z), atol=1e-4)
    assert np.array_equal(got["observations"], windows_obs[:, 0].numpy())
    # Sampled, not the mean; the same samples from the same seed.
    first = torch.as_tensor(observations[:1]), torch.as_tensor(high[:1])
    assert not torch.allclose(torch.as_tensor(record.actions[0][None]), agent.act_low(*first).clamp(-1, 1))
    actions = record.actions[:h]
    env.reset(seed=3)
    env.step(high[0])
    assert all(np.array_equal(a, b) for a, b in zip(actions, record.actions))


def test_a_supe_run_saved_before_the_reference_loop_resumes_with_its_old_loop(tmp_path):
    """Runs saved before `skill_discount` and `skill_temperature` existed summed a skill's rewards
    and ran its mean actions: built from their run.json they still do; new runs take SUPE's."""
    register_point_task()
    run_cfg = {"method": "supe", "env": POINT_TASK, "skills": str(_vae_run(tmp_path, steps=2)), "seed": 0,
               "obs_dim": 2, "action_dim": 4, "env_action_dim": 2, "config": {"type": "supe", "utd": 1}}
    old = finetune.build_agent(run_cfg).cfg
    assert (old.skill_discount, old.skill_temperature, old.interpolate_skills, old.utd) == (1.0, 0.0, False, 1)
    run_cfg["config"].update(skill_discount=0.99, skill_temperature=1.0)
    new = finetune.build_agent(run_cfg).cfg
    assert (new.skill_discount, new.skill_temperature) == (0.99, 1.0)


def test_explore_labels_unvisited_prior_data_optimistically():
    """ExPLORe's prior rewards: the reward model's fit to online rewards plus an RND bonus that
    stays large away from the online data, so unvisited prior states look better than visited ones."""
    from autodidact.core.config import apply_overrides
    from autodidact.methods.explore import ExPLORe, ExPLOReConfig
    torch.manual_seed(0)
    cfg = apply_overrides(ExPLOReConfig(), {"hidden_dims": "32,32", "model_hidden_dims": "64,64",
                                            "rnd_feature_dim": "16", "batch_size": "64", "utd": "1",
                                            "start_training": "0"})
    agent = ExPLORe(cfg, obs_dim=2, action_dim=2)
    g = torch.Generator().manual_seed(0)

    def batch(centre, n=64):
        obs = centre + 0.1 * torch.randn(n, 2, generator=g)
        return {"observations": obs, "actions": torch.zeros(n, 2), "rewards": -torch.ones(n),
                "masks": torch.ones(n), "next_observations": obs}

    visited = torch.tensor([-0.8, -0.8])
    for step in range(1, 301):
        info = agent.observe(step, batch(visited, 1), lambda n: batch(visited, n))
    assert info["reward_model/loss"] < 0.05
    near, far = (agent.label_prior(batch(c, 256)) for c in (visited, torch.tensor([0.8, 0.8])))
    assert far["rewards"].mean() > near["rewards"].mean() + 0.3
    bonus = [agent.novelty(b["observations"], b["actions"]).mean() for b in (near, far)]
    assert bonus[1] > 3 * bonus[0], bonus
    assert abs(float(near["rewards"].mean()) + 1.0) < 0.2 and ((near["masks"] > 0.9).all())


def test_run_directory_and_published_preset(tmp_path):
    run = finetune.new_run(_settings(tmp_path, env_steps=20, eval_episodes=0, published=True,
                                     overrides=("utd=1",)), argv=["a", "b c"])
    run_cfg = json.loads((run / "run.json").read_text())
    assert run_cfg["kind"] == "finetune" and run_cfg["env"] == POINT_TASK and run_cfg["prior"] is None
    assert run_cfg["skills"] is None and run_cfg["action_dim"] == run_cfg["env_action_dim"] == 2
    # --published sets the paper's values; --set still wins.
    assert run_cfg["config"]["num_critics"] == 10 and run_cfg["config"]["start_training"] == 5000
    assert run_cfg["config"]["utd"] == 1
    assert (run / "command.txt").read_text() == "a 'b c'\n"
    assert {p.name for p in run.iterdir()} >= {"run.json", "config.json", "metrics.csv", "checkpoints"}


def _one_line_error(capsys, *args):
    code = cli.main(list(args))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("autodidact: error:"), (args, err)
    return err[0]


def test_user_errors_are_one_line(tmp_path, capsys):
    register_point_task()
    out = str(tmp_path / "r")
    line = _one_line_error(capsys, "finetune", "--env", "nope-singletask-task1-v0", "--method", "rlpd", "--out", out)
    assert "unknown OGBench environment 'nope-singletask-task1-v0'" in line
    line = _one_line_error(capsys, "finetune", "--env", POINT_TASK, "--method", "sac", "--out", out)
    assert "unknown fine-tuning method 'sac'" in line and "rlpd" in line
    bad = point_task_prior(tmp_path / "bad.npz", episodes=2, obs_dim=3)
    line = _one_line_error(capsys, "finetune", "--env", POINT_TASK, "--method", "rlpd", "--prior", str(bad),
                           "--out", out)
    assert str(bad) in line and "'observations'" in line and "[3]" in line and "[2]" in line
    line = _one_line_error(capsys, "finetune", "--env", POINT_TASK, "--method", "rlpd", "--out", out,
                           "--set", "utd=0")
    assert "utd" in line
    line = _one_line_error(capsys, "finetune", "--env", POINT_TASK, "--method", "explore", "--out", out)
    assert "--prior" in line
    line = _one_line_error(capsys, "finetune", "--env", POINT_TASK, "--method", "supe", "--prior", str(bad),
                           "--out", out)
    assert "--skills" in line
    line = _one_line_error(capsys, "finetune", "--env", POINT_TASK, "--method", "rlpd", "--skills", out, "--out", out)
    assert "drop --skills" in line
    from autodidact.workflows import train as trainer
    gcbc = trainer.new_run(settings("gcbc", tmp_path, point_play_dataset(tmp_path / "play.npz", episodes=2), 2,
                                    out="gcbc", overrides=("batch_size=8",)), argv=["x"])
    line = _one_line_error(capsys, "finetune", "--env", POINT_TASK, "--method", "supe", "--skills", str(gcbc),
                           "--prior", str(bad), "--out", out)
    assert "needs a HILP or skill-vae run" in line and "gcbc" in line
    line = _one_line_error(capsys, "finetune", "--env", POINT_TASK, "--method", "supe", "--skills", str(gcbc),
                           "--init", str(gcbc), "--prior", str(bad), "--out", out)
    assert "--init" in line and "rlpd or explore" in line
    gcbc3 = _gcbc_run(tmp_path, steps=2, obs_dim=3)
    line = _one_line_error(capsys, "finetune", "--env", POINT_TASK, "--method", "rlpd", "--init", str(gcbc3),
                           "--out", out)
    assert str(gcbc3) in line and "[3]" in line and "[2]" in line
    ft = finetune.new_run(_settings(tmp_path, env_steps=5, eval_episodes=0, out="ft"), argv=["x"])
    line = _one_line_error(capsys, "finetune", "--env", POINT_TASK, "--method", "rlpd", "--init", str(ft),
                           "--out", out)
    assert "fine-tuning run" in line and "autodidact train" in line
    line = _one_line_error(capsys, "finetune", "--resume", out, "--method", "rlpd")
    assert not (tmp_path / "r").exists()


def test_supe_takes_the_skill_horizon_of_a_skill_vae_run(tmp_path, capsys):
    """VAE skills are chunks of the horizon they were trained on: SUPE runs them for that many env
    steps, and a different --set skill_horizon fails in one line."""
    register_point_task()
    vae = _vae_run(tmp_path, steps=2, overrides=("batch_size=8", "decoder_hidden_dims=8", "prior_hidden_dims=8",
                                                 "recognizer_hidden=4", "skill_dim=3", "skill_horizon=6"))
    prior = point_task_prior(tmp_path / "prior.npz", episodes=2)
    run = finetune.new_run(_settings(tmp_path, method="supe", prior=prior, skills=str(vae), env_steps=12,
                                     eval_episodes=0, overrides=("start_training=6",)), argv=["x"])
    run_cfg = json.loads((run / "run.json").read_text())
    assert run_cfg["config"]["skill_horizon"] == 6 and run_cfg["action_dim"] == 3
    replay = load_file(run / "checkpoints" / "step_00000012" / "replay.safetensors")
    assert len(replay["rewards"]) == 2  # two 6-step skills
    line = _one_line_error(capsys, "finetune", "--env", POINT_TASK, "--method", "supe", "--skills", str(vae),
                           "--prior", str(prior), "--out", str(tmp_path / "r"), "--set", "skill_horizon=4")
    assert "6-step chunks" in line and "skill_horizon=4" in line
    noact = tmp_path / "noact.npz"
    from autodidact.data.dataset import Dataset
    ds = Dataset.load(prior)
    Dataset(np.asarray(ds.observations), np.asarray(ds.terminals)).save(noact)
    line = _one_line_error(capsys, "finetune", "--env", POINT_TASK, "--method", "supe", "--skills", str(vae),
                           "--prior", str(noact), "--out", str(tmp_path / "r2"))
    assert str(noact) in line and "'actions'" in line
    assert not (tmp_path / "r2").exists()


def test_a_skill_vae_run_is_trained_not_evaluated_on_goals(tmp_path, capsys):
    """skill-vae on a dataset named like OGBench's: `train` skips the goal evaluation it cannot
    pass, and `eval` and `prompt` say in one line what the run is for."""
    from autodidact.workflows import train as trainer
    data = point_play_dataset(tmp_path / "pointmaze-medium-navigate-v0.npz", episodes=3)
    run = trainer.new_run(trainer.TrainSettings(
        method="skill-vae", dataset=str(data), out=str(tmp_path / "vae"), steps=2, eval_every=1, eval_episodes=5,
        overrides=("batch_size=8", "decoder_hidden_dims=8", "prior_hidden_dims=8", "recognizer_hidden=4"),
        progress=False), argv=["x"])
    assert json.loads((run / "run.json").read_text())["eval_episodes"] == 0 and not (run / "eval.csv").exists()
    for args, words in ((["eval", str(run)], "learns skills, not goal reaching"),
                        (["prompt", str(run), "--goal", "1"], "accepts no prompts")):
        line = _one_line_error(capsys, *args)
        assert words in line and "--method supe" in line, line


def test_help_explains_every_option(capsys):
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["finetune"]
    for action in sub._actions:
        assert action.help and len(action.help) > 10, action.option_strings
    with pytest.raises(SystemExit):
        cli.main(["finetune", "--help"])
    text = capsys.readouterr().out
    for flag in ("--env", "--method", "--prior", "--skills", "--init", "--out", "--env-steps", "--resume",
                 "--published", "--set", "--video"):
        assert flag in text
    assert "published 20" in text and "published 10" in text


@pytest.mark.slow
def test_pointmaze_with_prior_and_video(tmp_path, capsys):
    """A real OGBench single-task env end to end through the CLI: dataset-style env name, a prior
    collected by `autodidact collect`, an evaluation video; then a mismatched prior fails in one line."""
    data = tmp_path / "data"
    assert cli.main(["collect", "pointmaze-medium-navigate-v0", "--out", str(data), "--episodes", "2",
                     "--max-episode-steps", "50", "--no-progress"]) == 0
    prior = data / "pointmaze-medium-navigate-v0.npz"
    run = tmp_path / "run"
    assert cli.main(["finetune", "--env", "pointmaze-medium-navigate-singletask-task1-v0", "--method", "explore",
                     "--prior", str(prior), "--out", str(run), "--env-steps", "40", "--eval-every", "40",
                     "--eval-episodes", "1", "--max-episode-steps", "20", "--video", "--no-progress",
                     "--set", "start_training=10", "--set", "hidden_dims=32,32", "--set", "model_hidden_dims=32,32",
                     "--set", "batch_size=32"]) == 0
    assert json.loads((run / "run.json").read_text())["env"] == "pointmaze-medium-singletask-task1-v0"
    assert [p.suffix for p in (run / "videos").iterdir()] in ([".mp4"], [".gif"])
    assert len(_rows(run / "episodes.csv")) == 2
    capsys.readouterr()
    line = _one_line_error(capsys, "finetune", "--env", "cube-single-singletask-task1-v0", "--method", "rlpd",
                           "--prior", str(prior), "--out", str(tmp_path / "r2"))
    assert "[2]" in line and "[28]" in line and str(prior) in line


def _assert_supe_beats_scratch(tmp_path, skills, supe_overrides=()):
    """SUPE over `skills` with the reward-free point trips as prior data reaches the goal in training
    (3+ episodes) and evaluation (half or more) at a budget where scratch never reaches it."""
    prior = point_task_prior(tmp_path / "prior.npz")
    common = dict(env_steps=750, eval_every=750, eval_episodes=10, log_every=250,
                  overrides=("start_training=100", "utd=2", "init_temperature=0.1"))
    supe = finetune.new_run(_settings(tmp_path, method="supe", prior=prior, skills=str(skills), out="supe",
                                      **{**common, "overrides": common["overrides"] + tuple(supe_overrides)}),
                            argv=["x"])
    scratch = finetune.new_run(_settings(tmp_path, out="scratch", **common), argv=["x"])
    successes = [sum(float(r["success"]) for r in _rows(run / "episodes.csv")) for run in (supe, scratch)]
    final = float(_rows(supe / "eval.csv")[-1]["evaluation/success"])
    assert successes[0] >= 3 and successes[1] == 0 and final >= 0.5, (successes, final)


@pytest.mark.slow
def test_supe_with_pretrained_skills_solves_the_task_sooner_than_scratch(tmp_path):
    """HILP skills pretrained on point play (they reach goals zero-shot), then SUPE on the point
    task with the reward-free trips: it reaches the goal in training where scratch never does.
    The skills run their mean actions: after 500 steps this small HILP actor's std is ~0.8, and
    its samples rarely cover the 23 steps to the goal within the episode's 50 (at 1,500
    pretraining steps they do, in 6 of 18 training episodes, but evaluation is then unstable)."""
    from autodidact.workflows import train as trainer
    torch.set_num_threads(1)
    hilp = trainer.new_run(settings("hilp", tmp_path, point_play_dataset(tmp_path / "play.npz"), 500, out="hilp",
                                    overrides=("batch_size=256", "actor_hidden_dims=64,64", "value_hidden_dims=64,64",
                                               "skill_dim=8", "lr=1e-3")), argv=["x"])
    _assert_supe_beats_scratch(tmp_path, hilp, supe_overrides=("skill_temperature=0",))


@pytest.mark.slow
def test_supe_with_vae_skills_solves_the_task_sooner_than_scratch(tmp_path):
    """SUPE's main variant: skills from a trajectory VAE pretrained on point play, then SUPE with
    the reward-free trips as prior data: it reaches the goal in training and evaluation where the
    same budget from scratch never does."""
    torch.set_num_threads(1)
    vae = _vae_run(tmp_path, steps=400, overrides=("batch_size=128", "decoder_hidden_dims=64,64",
                                                    "prior_hidden_dims=64,64", "recognizer_hidden=64", "lr=1e-3"))
    _assert_supe_beats_scratch(tmp_path, vae)


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    """An ExPLORe run on pointmaze killed (SIGKILL) mid-way and resumed ends with the same weights,
    optimizers, replay buffer and logs as one never stopped (forked CLI processes, one thread)."""
    prior = point_task_prior(tmp_path / "prior.npz", episodes=4)  # pointmaze's spaces: 2-D states and actions
    common = ["--env", "pointmaze-medium-singletask-task1-v0", "--method", "explore", "--prior", str(prior),
              "--env-steps", "240", "--eval-episodes", "0", "--checkpoint-every", "20", "--log-every", "20",
              "--max-episode-steps", "70", "--no-progress", "--set", "start_training=30",
              *[a for o in SMALL for a in ("--set", o)]]
    ref = ForkedCLI(tmp_path, "finetune", *common, "--out", str(tmp_path / "ref"))
    ref.communicate(timeout=300)
    assert ref.returncode == 0, ref.stderr

    victim_dir = tmp_path / "victim"
    assert kill_after_checkpoint(tmp_path, victim_dir, 60, "finetune", *common, "--out", str(victim_dir)) < 240

    resumed = ForkedCLI(tmp_path, "finetune", "--resume", str(victim_dir), "--no-progress")
    resumed.communicate(timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    for name in ("model.safetensors", "optim.safetensors", "replay.safetensors"):
        a, b = (load_file(r / "checkpoints" / "step_00000240" / name) for r in (tmp_path / "ref", victim_dir))
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    for csv_name in ("metrics.csv", "episodes.csv"):
        a, b = ([{k: v for k, v in row.items() if not k.startswith("time/")} for row in _rows(r / csv_name)]
                for r in (tmp_path / "ref", victim_dir))
        assert a == b and a, csv_name
