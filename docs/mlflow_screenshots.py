"""Screenshots of the MLflow UI for the README: the runs table, a pipeline run's charts, its logged model.

Starts ``mlflow ui`` on the repository's store (``mlflow.db``) on a free port, drives
Debian's headless Chromium with Selenium (never a downloaded browser or driver), and
writes ``docs/mlflow_runs.png``, ``docs/mlflow_charts.png`` and ``docs/mlflow_model.png``.
Run it after ``dvc repro`` has recorded at least one pipeline run::

    python docs/mlflow_screenshots.py [--experiment lowlight]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def latest_pipeline_run(db: Path, experiment: str) -> tuple[str, str, str]:
    """(run id, experiment id, the run's pyfunc model id) of the newest pipeline run."""
    con = sqlite3.connect(db)
    try:
        row = con.execute(
            "select r.run_uuid, r.experiment_id from runs r join experiments e on r.experiment_id = e.experiment_id "
            "join tags t on t.run_uuid = r.run_uuid where e.name = ? and t.key = 'lowlight.stage' "
            "and t.value = 'pipeline' order by r.start_time desc limit 1", (experiment,)).fetchone()
        if row is None:
            raise SystemExit(f"no pipeline run in {db} (experiment {experiment}): run `dvc repro` first")
        model = con.execute("select model_id from logged_models where source_run_id = ? and name = 'enhancer'",
                            (row[0],)).fetchone()
    finally:
        con.close()
    return row[0], row[1], model[0] if model else ""


CLOSE_ASSISTANT = """
for (const b of document.querySelectorAll('button')) {
  const label = (b.getAttribute('aria-label') || '').toLowerCase();
  if (label.includes('close') && b.closest('[class*="ssistant"], [data-testid*="ssistant"], aside')) { b.click(); return label; }
}
const title = [...document.querySelectorAll('*')].find(e => e.childElementCount === 0 && e.textContent.trim() === 'MLflow Assistant');
if (title) { const bar = title.closest('div').parentElement; const bs = bar ? bar.querySelectorAll('button') : [];
  if (bs.length) { bs[bs.length - 1].click(); return 'last button'; } }
const corner = document.elementFromPoint(window.innerWidth - 36, 35);  // its close button, top right
const button = corner && corner.closest('button');
if (button && button.getBoundingClientRect().left > window.innerWidth * 0.66) { button.click(); return 'corner'; }
return '';
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default="lowlight")
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    args = ap.parse_args(argv)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_bin = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_bin):
        raise SystemExit("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    db = ROOT / "mlflow.db"
    run_id, exp_id, model_id = latest_pipeline_run(db, args.experiment)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(args.out / ".mlflow_ui.log", "w")
    server = subprocess.Popen([str(Path(sys.executable).with_name("mlflow")), "ui", "--backend-store-uri",
                               f"sqlite:///{db}", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                              cwd=ROOT, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"mlflow ui did not start: {(args.out / '.mlflow_ui.log').read_text()[-2000:]}")
                time.sleep(0.5)
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1500,950"):
            options.add_argument(flag)
        browser = webdriver.Chrome(service=Service(executable_path=driver_bin), options=options)
        try:
            pages = {"mlflow_runs.png": f"{url}/#/experiments/{exp_id}/runs",
                     "mlflow_charts.png": f"{url}/#/experiments/{exp_id}/runs/{run_id}/model-metrics",
                     "mlflow_model.png": f"{url}/#/experiments/{exp_id}/models/{model_id}"}
            for name, page in pages.items():
                browser.get(page)
                time.sleep(6)  # the UI renders its tables and charts after loading
                closed = browser.execute_script(CLOSE_ASSISTANT)  # the assistant panel covers a third of the page
                time.sleep(1.5 if closed else 0)
                browser.save_screenshot(str(args.out / name))
                print(f"{args.out / name}: {page}")
        finally:
            browser.quit()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        (args.out / ".mlflow_ui.log").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
