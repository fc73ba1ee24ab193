"""Screenshots of the console's main pages, for the README: ``python -m mloop.server.web.screenshots OUTDIR``.

It makes a throwaway home with a small workflow and a few runs, starts ``mloop server`` on it,
logs in with a headless Chromium (Debian's ``/usr/bin/chromium``, or ``MLOOP_CHROMIUM``, driven by
Playwright) and saves ``overview.png`` and ``runs.png`` into OUTDIR (``docs/screenshots`` in the
repository). The browser tests call :func:`shoot` too, so the command keeps working.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

__all__ = ["PAGES", "main", "shoot"]

#: file name -> console path
PAGES = {"overview.png": "/ui/", "runs.png": "/ui/runs"}

DEMO = textwrap.dedent("""
    from mloop import workflow as wf

    threshold = wf.Placeholder(name="threshold", placeholder_type=wf.PlaceholderType.FLOAT, default=0.5)
    gate = wf.steps.ConditionStep(
        name="gate", conditions=wf.steps.Condition(wf.steps.ConditionTypeEnum.GTE, threshold, 0.8),
        if_then_steps=[], else_then_steps=[])
    workflow = wf.Workflow(name="{name}", desc="a demo", steps=[gate])
""")


def shoot(context: Any, url: str, outdir: Path, width: int = 1280, height: int = 800) -> list[Path]:
    """Save the main pages of the console at ``url`` (``context``: a logged-in Playwright browser context)."""
    outdir.mkdir(parents=True, exist_ok=True)
    page = context.new_page()
    page.set_viewport_size({"width": width, "height": height})
    made = []
    try:
        for name, path in PAGES.items():
            page.goto(url + path)
            page.wait_for_load_state("networkidle")
            target = outdir / name
            page.screenshot(path=str(target), full_page=False)
            made.append(target)
    finally:
        page.close()
    return made


def _mloop(home: Path, cwd: Path, *args: str, stdin: str | None = None) -> str:
    env = {**os.environ, "MLOOP_HOME": str(home), "NO_COLOR": "1"}
    exe = str(Path(sys.executable).with_name("mloop"))
    done = subprocess.run([exe, *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=120,
                          check=True)
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    import httpx
    from playwright.sync_api import sync_playwright

    args = sys.argv[1:] if argv is None else argv
    outdir = Path(args[0] if args else "docs/screenshots").resolve()
    chromium = os.environ.get("MLOOP_CHROMIUM", "/usr/bin/chromium")
    with tempfile.TemporaryDirectory(prefix="mloop-shots-") as tmp:
        folder = Path(tmp)
        home = folder / ".mloop"
        for name in ("nightly-train", "evaluate"):
            (folder / f"{name}.py").write_text(DEMO.format(name=name))
            _mloop(home, folder, "release", f"{name}.py")
        _mloop(home, folder, "user", "add", "demo", "--password-stdin", stdin="demo password\n")
        env = {**os.environ, "MLOOP_HOME": str(home), "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
        log = folder / "server.out"
        with open(log, "wb") as out:
            server = subprocess.Popen([str(Path(sys.executable).with_name("mloop")), "server", "--port", "0"],
                                      cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            found = token = None
            for _ in range(600):
                text = log.read_text(errors="replace")
                found = re.search(r"mloop server at (http://127\.0\.0\.1:\d+)", text)
                token = re.search(r"admin token: (mlp_\S+)", text)
                if found and token:
                    break
                time.sleep(0.1)
            if not (found and token):
                raise SystemExit("mloop server did not start:\n" + log.read_text(errors="replace"))
            url = found.group(1)
            with httpx.Client(base_url=url + "/api/v1", headers={"Authorization": f"Bearer {token.group(1)}"},
                              timeout=30) as api:
                for _ in range(60):
                    try:
                        if api.get("/health").status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.2)
                ids = [api.post("/runs", json={"workflow": wf, "parameters": {"threshold": t}}).json()["id"]
                       for wf, t in [("nightly-train", 0.9), ("evaluate", 0.4), ("nightly-train", 0.7),
                                     ("evaluate", 0.95), ("nightly-train", 0.85)]]
                for _ in range(300):
                    if all(api.get(f"/runs/{i}").json()["status"] in ("succeeded", "failed") for i in ids):
                        break
                    time.sleep(0.2)
                api.post("/schedules", json={"name": "nightly", "workflow": "nightly-train", "cron": "0 2 * * *"})
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
                context = browser.new_context()
                page = context.new_page()
                page.goto(url + "/ui/login")
                page.fill("input[name=name]", "demo")
                page.fill("input[name=password]", "demo password")
                page.click("button[type=submit]")
                page.wait_for_url("**/ui/")
                page.close()
                for path in shoot(context, url, outdir):
                    print(path)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
