"""Evaluation videos: a rendering check, tiling episodes into one grid, atomic writing."""

import importlib.util
import os
import sys
import tempfile
import warnings

import numpy as np

from autodidact.core.errors import UserError
from autodidact.core.io import current_umask


VIDEO_FRAME_SKIP = 3  # render every 3rd step (and the last), as OGBench does


VIDEO_FPS = 15


VIDEO_FORMATS = ("mp4", "gif")


def red_border(frame, width=3):
    red = np.array([255, 0, 0], dtype=frame.dtype)
    for edge in (frame[:width], frame[-width:], frame[:, :width], frame[:, -width:]):
        edge[..., :3] = red


def check_rendering():
    """Fail early, in one line, when mujoco cannot open an offscreen GL context here."""
    # mujoco reads MUJOCO_GL once, at import; envs.py sets it before importing ogbench.
    imported_too_early = "MUJOCO_GL" not in os.environ and "mujoco" in sys.modules
    os.environ.setdefault("MUJOCO_GL", "egl")
    import mujoco

    gl = os.environ["MUJOCO_GL"]
    try:
        context = mujoco.GLContext(16, 16)
        context.make_current()
        context.free()
    except Exception as e:
        if imported_too_early:
            hint = "mujoco was imported before MUJOCO_GL was set; run with MUJOCO_GL=egl in the environment"
        elif gl == "egl":
            hint = (
                "on Debian/Ubuntu install EGL and Mesa's drivers (software rendering without a GPU): "
                "apt-get install -y libegl1 libgl1-mesa-dri"
            )
        else:
            hint = "unset MUJOCO_GL to render with EGL"
        raise UserError(f"cannot render videos with MUJOCO_GL={gl} ({type(e).__name__}: {e}); {hint}") from e


def cell_frames(goal_frame, frames):
    if goal_frame is None:
        return frames
    return [np.concatenate([goal_frame, frame], axis=1) for frame in frames]


def tile(cells, num_rows, num_cols):
    """[cell][t] HxWx3 frames -> [T, rows*H, cols*W, 3]; short episodes hold their last frame."""
    length = max(len(frames) for frames in cells)
    h = max(frames[0].shape[0] for frames in cells)
    w = max(frames[0].shape[1] for frames in cells)
    # Even sizes: H.264 in yuv420p halves the chroma resolution.
    height, width = num_rows * h, num_cols * w
    grid = np.zeros((length, height + height % 2, width + width % 2, 3), np.uint8)
    for k, frames in enumerate(cells):
        r, c = divmod(k, num_cols)
        for t in range(length):
            frame = frames[min(t, len(frames) - 1)]
            grid[t, r * h : r * h + frame.shape[0], c * w : c * w + frame.shape[1]] = frame[..., :3]
    return grid


def write_video(frames, stem, video_format):
    """Write atomically (temp file in the same dir, then os.replace), so readers never see half a video."""
    import imageio.v2 as imageio

    if video_format == "mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        warnings.warn("imageio-ffmpeg is not installed; writing the video as a gif instead", stacklevel=3)
        video_format = "gif"
    path = f"{stem}.{video_format}"
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(stem)}.", suffix=f".{video_format}",
                               dir=os.path.dirname(path) or ".")
    os.close(fd)
    try:
        if video_format == "mp4":
            imageio.mimwrite(tmp, frames, format="FFMPEG", fps=VIDEO_FPS, codec="libx264",
                             pixelformat="yuv420p", macro_block_size=1)
        else:
            imageio.mimwrite(tmp, frames, format="GIF", duration=1000 / VIDEO_FPS, loop=0)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp's 0600 would hide the video from other users
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
