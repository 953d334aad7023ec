"""LeRobotDataset directories (Hugging Face LeRobot), read from their documented on-disk layout.

The `lerobot` package itself pins an old torch and pulls diffusers, wandb and rerun, so this
reader follows the layout with pyarrow (Parquet) and PyAV (video) instead; tests check it against
a dataset written by `lerobot` 0.4.4 (tests/artifacts/formats/, scripts/make_format_fixtures.py).

    meta/info.json      codebase_version (v2.0, v2.1 or v3.0), fps, features, data_path, video_path
    data/**/*.parquet   one row per frame: the features' values plus episode_index, index, timestamp
    videos/...mp4       one file per camera and episode (v2.x) or per camera and chunk (v3.0, with
                        each episode's start time in meta/episodes/**/*.parquet)

A row holds the observation at a frame and the action taken there; `next.reward` and `next.done`
are the reward and termination that followed it. Episodes are the runs of equal `episode_index`
in `index` order, so every frame is kept, including each episode's last action.

Observations: `observation.state` by default; `--obs-keys` names others, e.g. a camera
`observation.images.top`, decoded to uint8 [N, H, W, 3], or several vector keys to concatenate.
The other vector features that start with `observation.` are kept as extra per-step fields.
"""

import json
from pathlib import Path

import numpy as np

from autodidact.core.errors import DataError
from autodidact.data.formats.episodes import Episode, assemble, choose_observations, require

INFO = Path("meta") / "info.json"
VERSIONS = ("v2.0", "v2.1", "v3.0")
# Columns every LeRobot row carries for bookkeeping; they are not observations.
BOOKKEEPING = {"timestamp", "frame_index", "episode_index", "index", "task_index"}


def looks_like(path):
    return (Path(path) / INFO).is_file()


def read(path, obs_keys=None, progress=False):
    path = Path(path)
    info = _info(path)
    features = info["features"]
    table = _frames(path, progress)
    n = table.num_rows
    if n == 0:
        raise DataError(path / "data", None, "holds no frames")
    order = np.argsort(_column(path, table, "index", n), kind="stable")
    table = table.take(order)
    episode_index = _column(path, table, "episode_index", n)
    starts = np.flatnonzero(np.diff(episode_index, prepend=episode_index[0] - 1) != 0)
    if len(np.unique(episode_index)) != len(starts):
        raise DataError(path, "episode_index", "an episode's frames are not contiguous in 'index' order",
                        "the data files are inconsistent")

    cameras = [k for k, f in features.items() if f.get("dtype") in ("video", "image")]
    vectors = [k for k in features if k.startswith("observation.") and k not in cameras and k in table.column_names]
    wanted = list(obs_keys) if obs_keys else (["observation.state"] if "observation.state" in vectors else None)
    if wanted is None and not vectors and len(cameras) == 1:
        wanted = cameras
    for k in wanted or []:
        if k not in vectors and k not in cameras:
            raise DataError(path / INFO, f"features/{k}", "not an observation of this dataset",
                            f"--obs-keys takes some of: {', '.join(vectors + cameras)}")
    if wanted is None and not vectors:
        if not cameras:
            raise DataError(path / INFO, "features", "no observation.* feature in the data")
        raise DataError(path / INFO, "features", f"no state vector and several cameras ({', '.join(cameras)})",
                        "pick one with --obs-keys")
    named = {k: _column(path, table, k, n) for k in vectors}
    for k in (wanted or []):
        if k in cameras:
            named[k] = _Frames(path, info, table, k, episode_index, progress).all()
    obs, _, extras = choose_observations(path, "", named, wanted)
    columns = {k: _column(path, table, k, n) for k in ("action", "next.reward", "next.done") if k in table.column_names}
    bounds = list(starts) + [n]

    def episodes():
        for s, e in zip(bounds[:-1], bounds[1:]):
            yield Episode(name=f"episode_{int(episode_index[s])}", observations=obs[s:e],
                          actions=columns["action"][s:e] if "action" in columns else None,
                          rewards=columns["next.reward"][s:e] if "next.reward" in columns else None,
                          terminated=columns["next.done"][s:e] if "next.done" in columns else None,
                          extras={k: v[s:e] for k, v in extras.items()})
    return assemble(path, episodes(), total=len(starts), progress=progress)


def _info(path):
    try:
        info = json.loads((path / INFO).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path / INFO, None, f"unreadable ({exc.__class__.__name__}: {exc})") from None
    for key in ("codebase_version", "features", "fps"):
        if key not in info:
            raise DataError(path / INFO, key, "missing", "not a LeRobotDataset info.json")
    if not isinstance(info["features"], dict) or not all(isinstance(f, dict) for f in info["features"].values()):
        raise DataError(path / INFO, "features", "expected an object of {name: {dtype, shape, ...}}")
    if not isinstance(info["fps"], (int, float)) or info["fps"] <= 0:
        raise DataError(path / INFO, "fps", f"expected a positive number, got {info['fps']!r}")
    if info["codebase_version"] not in VERSIONS:
        raise DataError(path / INFO, "codebase_version", f"{info['codebase_version']!r} is not one autodidact reads",
                        f"supported: {', '.join(VERSIONS)}")
    return info


def _frames(path, progress):
    pa = require("pyarrow", "lerobot")
    import pyarrow.parquet as pq
    from tqdm import tqdm

    files = sorted((path / "data").rglob("*.parquet"))
    if not files:
        raise DataError(path / "data", None, "holds no .parquet files", "the dataset is incomplete")
    tables = []
    for f in tqdm(files, desc="reading parquet", unit="file", disable=not progress or len(files) < 2):
        try:
            tables.append(pq.read_table(f))
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f, None, f"unreadable Parquet file ({exc.__class__.__name__}: {exc})",
                            "the dataset is corrupt or truncated") from None
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException as exc:
        raise DataError(path / "data", None, f"the Parquet files disagree ({exc})") from None


def _column(path, table, name, n):
    """A column as a numpy array [n] or [n, d]: LeRobot stores vectors as (fixed-size) lists."""
    import pyarrow as pa

    if name not in table.column_names:
        raise DataError(path / "data", name, "missing", f"columns present: {', '.join(table.column_names)}")
    col = table.column(name).combine_chunks()
    if col.null_count:
        raise DataError(path / "data", name, "has empty (null) values")
    if pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type) or pa.types.is_large_list(col.type):
        flat = col.flatten().to_numpy(zero_copy_only=False)
        if n and len(flat) % n:
            raise DataError(path / "data", name, "rows hold vectors of different lengths")
        return flat.reshape(n, -1 if n else 0)
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type)):
        raise DataError(path / "data", name, f"Arrow type {col.type} is not numeric")
    return col.to_numpy(zero_copy_only=False)


class _Frames:
    """A camera's frames for every row, decoded to uint8 [N, H, W, 3]."""

    def __init__(self, path, info, table, key, episode_index, progress):
        self.path, self.info, self.table, self.key = path, info, table, key
        self.episode_index, self.progress = episode_index, progress
        self.fps = float(info["fps"])

    def all(self):
        if self.info["features"][self.key]["dtype"] == "image":
            return self._images()
        n = self.table.num_rows
        timestamps = _column(self.path, self.table, "timestamp", n).astype(np.float64)
        offsets, files = self._episode_videos()
        from tqdm import tqdm

        out = None
        cursor = None
        for i in tqdm(range(n), desc=f"decoding {self.key}", unit="frame", disable=not self.progress):
            ep = int(self.episode_index[i])
            if cursor is None or cursor.video != files[ep]:
                cursor = _VideoCursor(files[ep])
            t = offsets[ep] + timestamps[i]
            # LeRobot's own tolerance is 1e-4 s; half a frame period still picks one frame unambiguously.
            frame = cursor.frame_at(t, tolerance=0.5 / self.fps)
            if frame is None:
                raise DataError(files[ep], self.key, f"no frame at {t:.4f} s (episode {ep}, row {i})",
                                "the video is shorter than its episode or truncated")
            if out is None:
                out = np.empty((n, *frame.shape), np.uint8)
            out[i] = frame
        return out

    def _episode_videos(self):
        """{episode: seconds into its video where the episode starts}, {episode: video path}."""
        template = self.info.get("video_path")
        if template is None:
            raise DataError(self.path / INFO, "video_path", "missing, but features hold videos")
        episodes = np.unique(self.episode_index)
        if self.info["codebase_version"] != "v3.0":
            chunk = int(self.info.get("chunks_size", 1000))
            files = {int(e): self.path / template.format(episode_chunk=int(e) // chunk, video_key=self.key,
                                                         episode_index=int(e)) for e in episodes}
            return {int(e): 0.0 for e in episodes}, files
        meta = _episodes_meta(self.path)
        prefix = f"videos/{self.key}/"
        need = ["episode_index", prefix + "chunk_index", prefix + "file_index", prefix + "from_timestamp"]
        for k in need:
            if k not in meta:
                raise DataError(self.path / "meta" / "episodes", k, "missing", "the dataset is incomplete")
        rows = {int(e): i for i, e in enumerate(meta["episode_index"])}
        offsets, files = {}, {}
        for e in episodes:
            if int(e) not in rows:
                raise DataError(self.path / "meta" / "episodes", "episode_index", f"episode {int(e)} is not listed")
            r = rows[int(e)]
            files[int(e)] = self.path / template.format(video_key=self.key, chunk_index=int(meta[need[1]][r]),
                                                        file_index=int(meta[need[2]][r]))
            offsets[int(e)] = float(meta[need[3]][r])
        return offsets, files

    def _images(self):
        """`image` features: PNG bytes (or a path) in a struct column, as `datasets.Image` writes."""
        import imageio.v3 as iio

        out = None
        for i, cell in enumerate(self.table.column(self.key).to_pylist()):
            try:
                data = cell["bytes"] if cell.get("bytes") is not None else (self.path / cell["path"]).read_bytes()
                img = np.asarray(iio.imread(data))
            except Exception as exc:  # imageio raises by plugin; any failure is a bad image cell
                raise DataError(self.path / "data", self.key, f"row {i}: unreadable image ({exc})") from None
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=-1)
            if out is None:
                out = np.empty((self.table.num_rows, *img.shape), np.uint8)
            if img.shape != out.shape[1:]:
                raise DataError(self.path / "data", self.key, f"row {i}: image shape {img.shape} differs from "
                                f"{out.shape[1:]}")
            out[i] = img
        return out


def _episodes_meta(path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted((path / "meta" / "episodes").rglob("*.parquet"))
    if not files:
        raise DataError(path / "meta" / "episodes", None, "holds no .parquet files", "the dataset is incomplete")
    try:
        table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive")
    except (pa.ArrowException, OSError) as exc:
        raise DataError(path / "meta" / "episodes", None, f"unreadable ({exc.__class__.__name__}: {exc})") from None
    return {k: table.column(k).to_pylist() for k in table.column_names if not k.startswith("stats/")}


class _VideoCursor:
    """Frames of one MP4 by presentation time, decoded in one forward pass while the requested
    times increase (rows come in time order within a file); an earlier time restarts the pass.
    Only the frames asked for are kept, not the whole decoded video."""

    def __init__(self, video):
        self.av = require("av", "lerobot")
        self.video = video
        if not video.is_file():
            raise DataError(video, None, "video file not found", "the dataset is incomplete")
        self._restart()

    def _restart(self):
        self.frames = self._decode()
        self.before = self.after = None  # (time, frame) on either side of the last requested time

    def _decode(self):
        try:
            with self.av.open(str(self.video)) as container:
                for frame in container.decode(container.streams.video[0]):
                    if frame.time is not None:  # a frame without a timestamp cannot be matched to a row
                        yield float(frame.time), frame
        except (self.av.FFmpegError, IndexError, OSError) as exc:
            raise DataError(self.video, None, f"unreadable video ({exc.__class__.__name__}: {exc})",
                            "the file is corrupt or truncated") from None

    def frame_at(self, t, tolerance):
        """The frame nearest to `t` seconds as uint8 [H, W, 3], or None if none lies within `tolerance`."""
        if self.before is not None and t < self.before[0] - tolerance:
            self._restart()
        while self.after is None or self.after[0] < t:
            nxt = next(self.frames, None)
            if nxt is None:
                break
            self.before, self.after = self.after, nxt
        near = [c for c in (self.before, self.after) if c is not None and abs(c[0] - t) <= tolerance]
        if not near:
            return None
        return min(near, key=lambda c: abs(c[0] - t))[1].to_ndarray(format="rgb24")
