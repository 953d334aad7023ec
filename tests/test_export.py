"""`autodidact export`: the exported policy computes autodidact's actions without autodidact.

TorchScript is loaded by `torch.jit.load` in a process where importing autodidact fails, and must
equal the method's own actions exactly (the same kernels run). onnxruntime runs its own float32
kernels, which sum matrix products in another order: it must agree to 1e-5 (the actions are in
[-1, 1]; a wrong weight or input order is off by far more).
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from autodidact import cli
from autodidact.workflows.export import example_inputs
from autodidact.workflows.runs import load_run

ARTIFACTS = Path(__file__).parent / "artifacts" / "v0.1.0" / "runs"
METHODS = sorted(p.name for p in ARTIFACTS.iterdir())
ONNX_ATOL = 1e-5
# torch marks TorchScript deprecated; loading it is what a user of the exported file does.
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.load. is deprecated")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name in METHODS:
        shutil.copytree(ARTIFACTS / name, root / name)
    return root


def autodidact_actions(run, names, inputs):
    """What the method itself does on `inputs`: act at temperature 0 (HILP's act_skill for skills,
    BESO's sampler from the given noise), clipped as the evaluator clips."""
    _, method, _, _ = load_run(run)
    method.eval()
    with torch.no_grad():
        if names[1] == "skills":
            a = method.act_skill(inputs[0], inputs[1])
        elif method.name == "beso":
            a = method.sample_chunks(inputs[0], inputs[1], noise=inputs[2])[:, 0]
        else:
            a = method.act(inputs[0], inputs[1])
    return a.clamp(-1, 1).numpy()


def fixed_batch(run, names, batch):
    _, method, _, _ = load_run(run)
    return example_inputs(method, names, batch=batch, seed=123)


def export(run, fmt, out, *extra):
    assert cli.main(["export", str(run), "--format", fmt, "--out", str(out), *extra]) == 0


# Runs with no autodidact importable: sys.modules[name] = None makes `import autodidact` fail.
LOADER = """
import json, sys
import numpy as np, torch
sys.modules["autodidact"] = None
for job in json.loads(sys.argv[1]):
    files = {}
    policy = torch.jit.load(job["policy"], _extra_files=files)
    inputs = [torch.from_numpy(np.load(p, allow_pickle=False)) for p in job["inputs"]]
    np.save(job["out"], policy(*inputs).numpy())
assert not any(m.startswith("autodidact") and sys.modules[m] is not None for m in sys.modules)
"""


def test_torchscript_equals_autodidact_exactly_without_autodidact(runs, tmp_path, capsys):
    jobs, expected = [], {}
    cases = [(m, "goal") for m in METHODS] + [("hilp", "skill")]
    for method, prompt in cases:
        run, stem = runs / method, tmp_path / f"{method}-{prompt}"
        export(run, "torchscript", f"{stem}.pt", "--prompt", prompt)
        names = (("observations", "skills") if prompt == "skill" else
                 ("observations", "goals", "noise") if method == "beso" else ("observations", "goals"))
        inputs = fixed_batch(run, names, batch=7)  # traced with 4 rows: the batch size stays free
        paths = []
        for name, x in zip(names, inputs):
            np.save(f"{stem}-{name}.npy", x.numpy())
            paths.append(f"{stem}-{name}.npy")
        jobs.append({"policy": f"{stem}.pt", "inputs": paths, "out": f"{stem}-actions.npy"})
        expected[stem] = autodidact_actions(run, names, inputs)
    assert "wrote" in capsys.readouterr().out
    subprocess.run([sys.executable, "-c", LOADER, json.dumps(jobs)], check=True, timeout=120)
    for stem, want in expected.items():
        got = np.load(f"{stem}-actions.npy")
        assert got.shape == want.shape and np.array_equal(got, want), stem


def test_torchscript_carries_its_metadata(runs, tmp_path):
    export(runs / "hiql", "torchscript", tmp_path / "p.pt")
    files = {"autodidact.json": ""}
    torch.jit.load(str(tmp_path / "p.pt"), _extra_files=files)
    meta = json.loads(files["autodidact.json"])
    assert meta["method"] == "hiql" and meta["inputs"] == ["observations", "goals"]
    assert meta["obs_shape"] == [2] and meta["action_dim"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("method,prompt", [("gcbc", "goal"), ("hilp", "skill"), ("beso", "goal")])
def test_onnxruntime_matches_autodidact(runs, tmp_path, method, prompt):
    ort = pytest.importorskip("onnxruntime")
    run, out = runs / method, tmp_path / "policy.onnx"
    export(run, "onnx", out, "--prompt", prompt)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    names = tuple(i.name for i in session.get_inputs())
    assert session.get_outputs()[0].name == "actions"
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["method"]) == method and json.loads(meta["inputs"]) == list(names)
    for batch in (1, 7):  # exported with 4 rows: the batch dimension is symbolic
        inputs = fixed_batch(run, names, batch)
        got = session.run(None, {n: x.numpy() for n, x in zip(names, inputs)})[0]
        np.testing.assert_allclose(got, autodidact_actions(run, names, inputs), rtol=0, atol=ONNX_ATOL)


def test_bad_requests_are_one_line(runs, tmp_path, capsys):
    assert cli.main(["export", str(runs / "gcbc"), "--format", "torchscript", "--out", str(tmp_path / "p.pt"),
                     "--prompt", "skill"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no latent skills" in err and "--prompt goal" in err
    assert cli.main(["export", str(tmp_path), "--format", "onnx", "--out", str(tmp_path / "p.onnx")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert not (tmp_path / "p.pt").exists() and not (tmp_path / "p.onnx").exists()
