"""Make screenshots/serve-browser.png: ``pflow-tui serve`` on a sample flow, the page open in
headless Chromium once the run has finished.

    python screenshots/make_browser_screenshot.py [SAMPLE]   (default: fanout_merge)

Needs the installed ``pflow-tui`` with the web extra, Playwright and a ``chromium`` on PATH
(the same pieces as tests/web, whose helpers it uses). Times differ from run to run.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "tests" / "web"))

from served_page import browser_page, free_port, served  # noqa: E402

SAMPLES = HERE.parent / "sample_flows"
TOAST_SECONDS = 10  # the "Run finished" notification (8 s) fades before the shot


def main(sample: str = "fanout_merge") -> Path:
    out = HERE / "serve-browser.png"
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        with served([str(SAMPLES / f"{sample}.json")], cwd=Path(tmp), port=port), \
                browser_page(f"http://127.0.0.1:{port}/", width=1400, height=850) as page:
            page.wait_for(sample, "finished ok", timeout=60)
            page.page.wait_for_timeout(TOAST_SECONDS * 1000)
            page.page.screenshot(path=str(out))
    return out


if __name__ == "__main__":
    print(main(*sys.argv[1:2]))
