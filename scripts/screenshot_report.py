"""Screenshot an `autodidact report` page in Debian's headless chromium (docs/figures/report_*.png).

    python scripts/screenshot_report.py report.html out.png [--height 2400] [--full-page]

Needs `apt-get install chromium` and the `playwright` package (from the test extra); the browser
is Debian's, never one `playwright install` downloads.
"""

import argparse
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("html", help="the report to open")
    p.add_argument("png", help="screenshot to write")
    p.add_argument("--width", type=int, default=1200, help="viewport width in pixels (default 1200)")
    p.add_argument("--height", type=int, default=2400, help="viewport height in pixels (default 2400)")
    p.add_argument("--full-page", action="store_true", help="the whole page, not only the viewport")
    p.add_argument("--chromium", default="/usr/bin/chromium", help="browser executable (default /usr/bin/chromium)")
    args = p.parse_args()
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        browser = pw.chromium.launch_persistent_context(profile, executable_path=args.chromium, headless=True,
                                                        args=FLAGS, viewport={"width": args.width,
                                                                              "height": args.height})
        page = browser.new_page()
        page.goto(Path(args.html).resolve().as_uri(), wait_until="load")
        # Let every video play a little so its frames show rather than a blank poster (Chromium does
        # not autoplay muted videos outside the viewport, so each is scrolled to in turn).
        for video in page.locator("video").all():
            video.scroll_into_view_if_needed()
            video.evaluate("v => new Promise(done => { const check = () => v.currentTime > 0.5 ? done() : "
                           "setTimeout(check, 50); v.play(); check(); })")
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=args.png, full_page=args.full_page)
        browser.close()


if __name__ == "__main__":
    main()
