"""Regenerate docs/status-page.png, the status page's picture in the README and docs/.

It runs the browser test of the yellow scenario (a real PostgreSQL, the real
exporter, headless Chromium) and keeps its laptop screenshot:

    python docs/make_screenshots.py

Needs what the tests need: PostgreSQL binaries, Debian's chromium and the
``playwright`` Python package (never ``playwright install``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = REPO / "docs" / "status-page.png"


def main() -> int:
    env = {**os.environ, "GOVERNANCE_EXPORTER_DOCS_SCREENSHOT": str(TARGET)}
    test = "tests/test_status_page.py::test_yellow"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test]
    result = subprocess.run(command, cwd=REPO, env=env, check=False)
    if result.returncode == 0:
        print(f"wrote {TARGET.relative_to(REPO)}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
