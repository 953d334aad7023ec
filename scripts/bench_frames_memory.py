"""Peak memory of training on a frame dataset larger than it: writes an uncompressed OGBench-layout
file of N 64x64x3 frames (streamed, never whole in memory), then trains a method on it in a child
process and reports that process's peak resident memory beside the file's size.

    python scripts/bench_frames_memory.py /tmp/frames-1m.npz --frames 1000000 --steps 20

The frames are random noise (memory and speed do not depend on content); episodes are 1000 steps.
"""

import argparse
import os
import subprocess
import sys
import time
import zipfile

import numpy as np


def write(path, frames, episode=1000, chunk=20000):
    rng = np.random.default_rng(0)
    terminals = (np.arange(frames) % episode) == episode - 1
    terminals[-1] = True
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        with zf.open("observations.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_2_0(f, {"descr": "|u1", "fortran_order": False,
                                                     "shape": (frames, 64, 64, 3)})
            for s in range(0, frames, chunk):
                f.write(rng.integers(0, 256, (min(chunk, frames - s), 64, 64, 3), dtype=np.uint8).tobytes())
        for name, arr in (("terminals", terminals),
                          ("actions", rng.uniform(-1, 1, (frames, 5)).astype(np.float32))):
            with zf.open(name + ".npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, arr)
    os.replace(tmp, path)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path")
    p.add_argument("--frames", type=int, default=1_000_000)
    p.add_argument("--steps", type=int, default=20, help="training steps (0: only write the file, e.g. for "
                   "scripts/bench_reference.sh's visual timing)")
    p.add_argument("--method", default="gcbc")
    args = p.parse_args()
    if not os.path.exists(args.path):
        t = time.time()
        write(args.path, args.frames)
        print(f"wrote {args.path} in {time.time() - t:.0f} s")
    if args.steps == 0:
        return
    size = os.path.getsize(args.path)
    out = args.path + ".run"
    t = time.time()
    child = subprocess.Popen([sys.executable, "-m", "autodidact", "train", "--method", args.method, "--dataset",
                              args.path, "--out", out, "--steps", str(args.steps), "--eval-episodes", "0",
                              "--no-progress", "--set", "encoder=impala_small", "--set", "batch_size=256",
                              "--set", "p_aug=0.5"])
    # Resident memory splits into anonymous memory (what the process allocated: the real cost) and
    # file pages mapped from the dataset (page cache the kernel drops under pressure; the kernel maps
    # whole large folios, so each frame read can map up to 2 MB of its neighbours).
    peak = {"RssAnon": 0, "RssFile": 0}
    while child.poll() is None:
        try:
            with open(f"/proc/{child.pid}/status") as f:
                for line in f:
                    key = line.split(":")[0]
                    if key in peak:
                        peak[key] = max(peak[key], int(line.split()[1]) * 1024)
        except FileNotFoundError:
            break
        time.sleep(0.1)
    if child.wait():
        sys.exit(child.returncode)
    print(f"file {size / 2**30:.2f} GiB ({args.frames:,} frames); {args.method}, {args.steps} steps of batch 256 "
          f"in {time.time() - t:.0f} s; peak anonymous memory {peak['RssAnon'] / 2**30:.2f} GiB "
          f"({peak['RssAnon'] / size:.1%} of the file); peak mapped file pages {peak['RssFile'] / 2**30:.2f} GiB "
          f"(page cache, reclaimable)")


if __name__ == "__main__":
    main()
