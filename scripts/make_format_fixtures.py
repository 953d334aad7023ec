"""Write tests/artifacts/formats/: small datasets written by the other tools' own libraries.

    python scripts/make_format_fixtures.py lerobot OUT_DIR   # needs the `lerobot` package

It writes `lerobot_<format version>_<video|image>/` (`--camera image` stores PNGs instead of MP4): lerobot 0.4.4 writes format v3.0 (many episodes per
Parquet and MP4 file), lerobot 0.3.3 format v2.1 (one file per episode); the tests read both.
The LeRobot fixture is written by `lerobot.datasets.lerobot_dataset.LeRobotDataset` itself
(create, add_frame, save_episode, finalize), so the reader is tested against the real on-disk
format. `lerobot` cannot live in autodidact's environment (it pins torch < 2.11 and pulls
diffusers, wandb, rerun and a CUDA build of torch), so run this script with a throwaway venv:

    python3 -m venv /tmp/lerobot-venv
    /tmp/lerobot-venv/bin/pip install -c constraints.txt torch && /tmp/lerobot-venv/bin/pip install numpy==2.2.6
    /tmp/lerobot-venv/bin/pip install --no-deps lerobot==0.4.4 torchvision==0.28.0
    /tmp/lerobot-venv/bin/pip install -c constraints.txt "datasets>=4,<5" "huggingface-hub>=0.34.2,<0.36" \\
        "av>=15,<16" jsonlines "packaging<26" draccus==0.10.0 deepdiff "imageio[ffmpeg]" termcolor \\
        einops pandas pyarrow gymnasium "setuptools<81" accelerate
    /tmp/lerobot-venv/bin/python scripts/make_format_fixtures.py lerobot tests/artifacts/formats
    /tmp/lerobot-venv/bin/python scripts/make_format_fixtures.py lerobot tests/artifacts/formats --camera image
    /tmp/lerobot-venv/bin/pip install --no-deps lerobot==0.3.3   # then again, for format v2.1

PyPI's torchvision is a CUDA build whose operators cannot load beside the CPU torch, and importing
it fails while registering their meta kernels; recording never calls those operators (frames are
PNGs encoded to MP4 by PyAV), so the script skips that registration. numpy stays below 2.3 there: `datasets` calls float() on
LeRobot's one-element arrays (shape (1,) features), which numpy 2.3+ refuses. Beside the dataset it writes
`<name>.expected.npz`: the exact values that were recorded, for the tests to compare against.

Minari and HDF5 need no committed fixture: `minari` and `h5py` install with autodidact's test extra,
so tests/test_formats.py writes those datasets with the real libraries at test time.
"""

import argparse
import shutil
import sys
import types
from pathlib import Path

import numpy as np

# Episode lengths of the fixture: unequal, and one of a single frame (a boundary case).
EPISODE_LENGTHS = (5, 8, 1, 6)
FPS = 10
VIDEO_SHAPE = (64, 64, 3)  # SVT-AV1, LeRobot's default codec, needs at least 64x64 pixels
IMAGE_SHAPE = (16, 16, 3)  # `image` features are PNGs inside the Parquet files: any size


def frame_image(episode, t, shape):
    """A smooth picture that differs per episode and frame, so a misplaced frame is detectable."""
    h, w, _ = shape
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros(shape, np.uint8)
    img[..., 0] = (xx * 4 + 40 * t) % 256
    img[..., 1] = (yy * 4 + 60 * episode) % 256
    img[..., 2] = (30 * t + 50 * episode) % 256
    return img


def make_lerobot(out_dir, camera):
    """camera: 'video' (MP4 files) or 'image' (PNG bytes in the Parquet files)."""
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    import inspect

    import lerobot
    from lerobot.datasets.lerobot_dataset import CODEBASE_VERSION, LeRobotDataset

    name = f"lerobot_{CODEBASE_VERSION.replace('.', '')}_{camera}"
    shape = VIDEO_SHAPE if camera == "video" else IMAGE_SHAPE
    root = Path(out_dir) / name
    shutil.rmtree(root, ignore_errors=True)
    features = {
        "observation.state": {"dtype": "float32", "shape": (3,), "names": ["x", "y", "z"]},
        "observation.images.cam": {"dtype": camera, "shape": shape, "names": ["height", "width", "channels"]},
        "action": {"dtype": "float32", "shape": (2,), "names": ["vx", "vy"]},
        "next.reward": {"dtype": "float32", "shape": (1,), "names": None},
        "next.done": {"dtype": "bool", "shape": (1,), "names": None},
    }
    ds = LeRobotDataset.create(repo_id=f"autodidact/{name}", fps=FPS, features=features, root=root,
                               use_videos=camera == "video")
    rng = np.random.default_rng(0)
    expected = {"states": [], "actions": [], "rewards": [], "dones": [], "frames": [], "lengths": []}
    for ep, length in enumerate(EPISODE_LENGTHS):
        for t in range(length):
            state = rng.normal(size=3).astype(np.float32)
            action = rng.uniform(-1, 1, size=2).astype(np.float32)
            reward = np.array([rng.normal()], np.float32)
            done = np.array([t == length - 1], bool)
            image = frame_image(ep, t, shape)
            frame = {"observation.state": state, "observation.images.cam": image, "action": action,
                     "next.reward": reward, "next.done": done}
            # lerobot 0.4 (format v3.0) takes the task inside the frame, 0.3 (v2.1) as an argument.
            if "task" in inspect.signature(ds.add_frame).parameters:
                ds.add_frame(frame, task=f"task {ep % 2}")
            else:
                ds.add_frame({**frame, "task": f"task {ep % 2}"})
            for k, v in (("states", state), ("actions", action), ("rewards", reward[0]), ("dones", done[0]),
                         ("frames", image)):
                expected[k].append(v)
        ds.save_episode()
        expected["lengths"].append(length)
    if hasattr(ds, "finalize"):  # v3.0 buffers metadata and closes its Parquet writers here
        ds.finalize()
    np.savez_compressed(Path(out_dir) / f"{name}.expected.npz",
                        **{k: np.asarray(v) for k, v in expected.items()},
                        lerobot_version=np.array(lerobot.__version__))
    print(f"wrote {root} with lerobot {lerobot.__version__}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fixture", choices=["lerobot"], help="which fixture to write")
    p.add_argument("--camera", choices=["video", "image"], default="video",
                   help="store the camera as MP4 video (default) or as PNG images in the Parquet files")
    p.add_argument("out_dir", help="directory to write it in (tests/artifacts/formats)")
    args = p.parse_args()
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    make_lerobot(args.out_dir, args.camera)


if __name__ == "__main__":
    main()
