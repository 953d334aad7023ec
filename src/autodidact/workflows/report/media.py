"""Videos and pictures inlined as data: URIs, so the report is one file that needs no network.

`autodidact eval --video` writes H.264 MP4s, which builds of Chromium without proprietary codecs
(Debian's, for one) cannot play. The report re-encodes them to WebM/VP9, which every current
browser plays, with the ffmpeg that imageio-ffmpeg ships; GIFs are inlined as they are.
"""

import base64
import subprocess
import tempfile
from pathlib import Path

from autodidact.core.errors import UserError

# VP9 at constant quality 40 (0-63): a tiled evaluation video stays a few hundred KB; realtime
# speed settings keep the encode to about as long as the video plays.
VP9_ARGS = ("-c:v", "libvpx-vp9", "-b:v", "0", "-crf", "40", "-deadline", "realtime", "-cpu-used", "8",
            "-row-mt", "1", "-pix_fmt", "yuv420p", "-an")


def data_uri(mime, data: bytes):
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def png_uri(path):
    data = Path(path).read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise UserError(f"{path}: not a PNG image; delete it or re-run training to redraw the figure")
    return data_uri("image/png", data)


def video_uri(path):
    """(data: URI, MIME type) of a video as a browser plays it: WebM as is, GIF as an image,
    anything else re-encoded to WebM/VP9."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        return data_uri("image/gif", path.read_bytes()), "image/gif"
    if suffix == ".webm":
        return data_uri("video/webm", path.read_bytes()), "video/webm"
    return data_uri("video/webm", to_webm(path)), "video/webm"


def to_webm(path):
    import imageio_ffmpeg
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "video.webm"
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), *VP9_ARGS, str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not out.exists():
            why = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"{path}: cannot read this video ({why}); re-run `autodidact eval RUN --video` "
                            "or leave videos out with --no-videos")
        return out.read_bytes()
