"""`autodidact report`: one self-contained HTML page, checked as text and in a real headless Chromium
(Debian's `chromium`, driven by Playwright): no console errors, charts drawn, the video plays, and
the screenshot has the charts' colours in it."""

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from autodidact import cli
from autodidact.workflows.report.charts import COLORS, nice_ticks
from autodidact.workflows.report.published import dataset_key, published_success

ARTIFACTS = Path(__file__).parent / "artifacts" / "v0.1.0"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Copies of the committed GCBC and HILP runs; GCBC evaluated for real with a short video, and
    given an eval.csv of two evaluations (the committed run trained without evaluation)."""
    root = tmp_path_factory.mktemp("report")
    shutil.copy(ARTIFACTS / "pointmaze-medium-navigate-v0.npz", root)
    for name in ("gcbc", "hilp"):
        shutil.copytree(ARTIFACTS / "runs" / name, root / name)
        run_json = root / name / "run.json"
        run_json.write_text(re.sub(r'"dataset": "[^"]*"', f'"dataset": "{root}/pointmaze-medium-navigate-v0.npz"',
                                   run_json.read_text()))
    os.environ.setdefault("MUJOCO_GL", "egl")
    assert cli.main(["eval", str(root / "gcbc"), "--episodes", "1", "--max-steps", "24", "--video",
                     "--no-progress"]) == 0
    (root / "gcbc" / "eval.csv").write_text(
        "step,evaluation/overall_success,evaluation/task1_success,evaluation/task2_success\n"
        "10,0.2,0.0,0.4\n20,0.4,0.6,0.2\n")
    return root


def tree_digest(path):
    h = hashlib.sha256()
    for p in sorted(Path(path).rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(path)).encode() + p.read_bytes())
    return h.hexdigest()


def make_report(runs, out, *names):
    assert cli.main(["report", *(str(runs / n) for n in names), "--out", str(out), "--no-progress"]) == 0
    return out.read_text()


def test_published_numbers_and_ticks():
    assert dataset_key("/d/pointmaze-medium-navigate-v0-val.npz") == "pointmaze-medium-navigate"
    assert published_success("x/cube-single-play-v0.npz", "gciql") == pytest.approx(0.68)
    assert published_success("x/cube-single-play-v0.npz", "hilp") is None
    assert published_success("x/mine.npz", "gcbc") is None
    assert nice_ticks(0, 1) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ticks = nice_ticks(3.2, 97.0)
    assert ticks[0] <= 3.2 and ticks[-1] >= 97.0 and len(ticks) <= 7


def test_report_is_self_contained_and_complete(runs, tmp_path):
    before = tree_digest(runs)
    page = make_report(runs, tmp_path / "report.html", "gcbc", "hilp")
    assert tree_digest(runs) == before  # inputs are only read
    # Nothing is fetched: every src is inline data, no scripts, no links out.
    assert all(src.startswith("data:") for src in re.findall(r'src="([^"]*)"', page))
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page
    assert '<section id="comparison">' in page and page.count('<section class="run"') == 2
    assert page.count("<svg class=\"chart\"") >= 6
    assert "success at each evaluation" in page and "actor/loss" in page and "skill_actor/loss" in page
    assert "9.0%" in page  # OGBench's GCBC on pointmaze-medium-navigate, beside the run's success
    assert 'src="data:video/webm;base64,' in page  # the eval's H.264 MP4, re-encoded
    assert "autodidact train --method gcbc" in page and "config.json" in page
    assert page.count("<td>task") == 5


def test_bad_inputs_are_one_line(runs, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(runs / "gcbc", bad)
    (bad / "metrics.csv").write_text("step,actor/loss\n5,0.3\n10,oops\n")
    assert cli.main(["report", str(bad), "--out", str(tmp_path / "r.html"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "metrics.csv: line 3, column 'actor/loss': not a number" in err
    shutil.copy(runs / "gcbc" / "metrics.csv", bad / "metrics.csv")
    (bad / "videos" / "pointmaze-medium-v0.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42truncated")
    assert cli.main(["report", str(bad), "--out", str(tmp_path / "r.html"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pointmaze-medium-v0.mp4: cannot read this video" in err and "--no-videos" in err
    assert cli.main(["report", str(bad), "--out", str(tmp_path / "r.html"), "--no-videos", "--no-progress"]) == 0
    (bad / "eval" / "final.json").write_text('{"tasks": [{"success": "high"}]}')
    assert cli.main(["report", str(bad), "--out", str(tmp_path / "r2.html"), "--no-progress"]) == 2
    assert "final.json: field 'tasks'" in capsys.readouterr().err
    assert cli.main(["report", str(tmp_path), "--out", str(tmp_path / "r3.html")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert cli.main(["report", str(runs / "gcbc"), "--out", str(tmp_path / "r.pdf")]) == 2
    assert "name it with .html" in capsys.readouterr().err
    assert not (tmp_path / "r2.html").exists() and not (tmp_path / "r3.html").exists()


def chromium_or_skip():
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing on CI: .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return pytest.importorskip("playwright.sync_api")


@pytest.mark.slow
def test_report_in_headless_chromium(runs, tmp_path):
    playwright_api = chromium_or_skip()
    from PIL import Image

    out = tmp_path / "report.html"
    make_report(runs, out, "gcbc", "hilp")
    shot = tmp_path / "report.png"
    with playwright_api.sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        browser = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1200, "height": 900})
        try:
            page = browser.new_page()
            errors = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: errors.append(f"fetched {r.url}") if not r.url.startswith(
                ("file:", "data:")) else None)
            page.goto(out.as_uri(), wait_until="load")
            assert page.locator("svg.chart").count() >= 6
            assert page.locator("svg.chart polyline").count() >= 6
            # Charts are laid out, not collapsed: each has its full size on the page.
            box = page.locator("svg.chart").first.bounding_box()
            assert box["width"] > 300 and box["height"] > 200
            video = page.locator("video").first
            video.scroll_into_view_if_needed()
            page.wait_for_function("() => { const v = document.querySelector('video');"
                                   " return v.readyState >= 2 && v.currentTime > 0.2 && !v.error; }", timeout=15_000)
            played = page.evaluate("() => { const v = document.querySelector('video');"
                                   " return [v.videoWidth, v.videoHeight, v.duration]; }")
            assert played[0] > 100 and played[1] > 50 and played[2] > 0.5
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(shot))
            assert errors == []
        finally:
            browser.close()
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (900, 1200)
    non_white = (pixels.sum(-1) < 720).mean()
    assert non_white > 0.03  # text, tables and charts, not a blank page

    def share_of(color):
        rgb = np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)])
        return (np.abs(pixels - rgb).sum(-1) < 40).mean()

    # The comparison's overlaid curves are at the top: the first run's line and the second's.
    assert share_of(COLORS[0]) > 2e-4 and share_of(COLORS[1]) > 2e-4
