"""``lowlight app`` in a real headless Chromium: upload, wait, move the strength, exposure and shadows
sliders with the keyboard, download, and compare the file with what ``lowlight enhance`` writes.

Needs selenium and the system's chromium + chromedriver (never downloaded here); skipped
without them. LOWLIGHT_SCREENSHOTS=1 also saves docs/app.png (a larger second photo, so the
before/after card reads well).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, darken, synthetic_photo
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                       reason="needs the system's chromium and chromedriver on PATH (e.g. apt-get install "
                              "chromium chromium-driver); Selenium must not download them"),
]
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install selenium)")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = dict(os.environ, LOWLIGHT_MLFLOW="0")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def _wait_for(predicate, timeout: float, what: str, poll: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def _start_server(port: int, log: Path) -> subprocess.Popen:
    out = open(log, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "lowlight", "app", "--port", str(port)], cwd=REPO, env=_env(),
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    out.close()

    def up():
        if proc.poll() is not None:
            raise AssertionError(f"lowlight app exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    _wait_for(up, 90, "lowlight app to answer")
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        except ProcessLookupError:
            pass


def _browser(downloads: Path, size=(1280, 900)):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={size[0]},{size[1]}", "--hide-scrollbars"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads),
        "download.prompt_for_download": False,
        "download.directory_upgrade": True,
        "safebrowsing.enabled": True,
    })
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_window_size(*size)
    return driver


def _card(driver, name: str):
    from selenium.webdriver.common.by import By

    for card in driver.find_elements(By.CSS_SELECTOR, "div.card"):
        if card.find_element(By.CSS_SELECTOR, ".name").text == name:
            return card
    return None


def _wait_done(driver, name: str, timeout: float = 120):
    from selenium.webdriver.common.by import By

    def done():
        card = _card(driver, name)
        if card is None:
            return None
        state = card.get_attribute("data-state")
        if state == "failed":
            raise AssertionError(f"{name}: {card.find_element(By.CSS_SELECTOR, '.error').text}")
        return card if state == "done" else None

    return _wait_for(done, timeout, f"the card of {name} to be done", poll=0.2)


def test_upload_slide_download_equals_the_cli(tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    screenshots = os.environ.get("LOWLIGHT_SCREENSHOTS") == "1"
    src = tmp_path / "in" / "night.png"
    src.parent.mkdir()
    # dark enough that auto lifts its shadows part way (27 % of it crushed: amount 0.67)
    Image.fromarray(darken(synthetic_photo(48, 64, seed=11), 0.013, seed=11)).save(src)
    files = [src]
    if screenshots:  # a photo large enough to show what the card looks like
        big = tmp_path / "in" / "street at night.png"
        Image.fromarray(darken(synthetic_photo(360, 540, seed=5), 0.05, seed=5)).save(big)
        files.append(big)
    downloads = tmp_path / "downloads"
    downloads.mkdir()

    port = _free_port()
    proc = _start_server(port, tmp_path / "server.log")
    driver = None
    try:
        driver = _browser(downloads)
        driver.get(f"http://127.0.0.1:{port}/")
        driver.find_element(By.ID, "files").send_keys("\n".join(str(f) for f in files))
        card = _wait_done(driver, src.name)
        assert card.find_element(By.CSS_SELECTOR, ".dims").text.replace(" ", "") == "64\u00d748"

        # strength 1.0 -> 0.5 with the keyboard: click the thumb (where value 1 of 0..1.5 sits), 10 x LEFT
        slider = card.find_element(By.CSS_SELECTOR, "input.strength")
        label = card.find_element(By.CSS_SELECTOR, ".strength-value")
        assert slider.get_attribute("value") == "1" and label.text == "1"
        width = slider.size["width"]
        thumb = 16  # Chromium's range thumb, in CSS pixels
        x = thumb / 2 + (width - thumb) * (1.0 / 1.5)
        ActionChains(driver).move_to_element_with_offset(slider, int(round(x - width / 2)), 0).click().perform()
        assert slider.get_attribute("value") == "1", f"clicking the thumb moved the slider ({width=}, {thumb=}, {x=})"
        for _ in range(10):
            slider.send_keys(Keys.LEFT)
        assert slider.get_attribute("value") == "0.5"
        assert label.text == "0.5"
        # shadows: auto (the photo's own amount, shown) -> 0.5 with the keyboard, and back to auto with its button
        shadows = card.find_element(By.CSS_SELECTOR, "input.shadows")
        shadows_label = card.find_element(By.CSS_SELECTOR, ".shadows-value")
        auto = card.find_element(By.CSS_SELECTOR, "button.auto")
        assert shadows_label.text == "auto 0.67" and not auto.is_enabled()
        link = card.find_element(By.CSS_SELECTOR, "a.download")
        job_id = card.get_attribute("data-id")
        assert link.get_attribute("href").endswith(f"/api/jobs/{job_id}/download?strength=0.5&exposure=0&shadows=auto")
        # exposure: 0 -> +0.5 EV with the keyboard
        exposure = card.find_element(By.CSS_SELECTOR, "input.exposure")
        exposure_label = card.find_element(By.CSS_SELECTOR, ".exposure-value")
        assert exposure.get_attribute("value") == "0" and exposure_label.text == "0 EV"
        for _ in range(5):
            exposure.send_keys(Keys.RIGHT)
        assert exposure.get_attribute("value") == "0.5" and exposure_label.text == "+0.5 EV"
        assert link.get_attribute("href").endswith("download?strength=0.5&exposure=0.5&shadows=auto")
        shadows.send_keys(Keys.HOME)
        assert shadows.get_attribute("value") == "0" and shadows_label.text == "0" and auto.is_enabled()
        auto.click()
        assert shadows_label.text.startswith("auto ") and not auto.is_enabled()
        assert link.get_attribute("href").endswith("&shadows=auto")
        shadows.send_keys(Keys.HOME)
        for _ in range(10):
            shadows.send_keys(Keys.RIGHT)
        assert shadows.get_attribute("value") == "0.5" and shadows_label.text == "0.5"
        assert link.get_attribute("href").endswith(f"/api/jobs/{job_id}/download?strength=0.5&exposure=0.5&shadows=0.5")
        assert link.get_attribute("download") is not None

        # the split moves the clip of the after image
        split = card.find_element(By.CSS_SELECTOR, "input.split")
        split.send_keys(Keys.HOME)
        after = card.find_element(By.CSS_SELECTOR, "img.after")
        compare = card.find_element(By.CSS_SELECTOR, ".compare")
        assert "--split: 0%" in compare.get_attribute("style")
        split.send_keys(Keys.END)
        assert "--split: 100%" in compare.get_attribute("style")
        assert "100%" in after.value_of_css_property("clip-path")
        for _ in range(100):  # back to the middle for the screenshot
            split.send_keys(Keys.LEFT)

        link.click()

        def downloaded():
            found = [p for p in downloads.iterdir()]
            if any(p.suffix in (".crdownload", ".tmp") or p.name.startswith(".") for p in found):
                return None
            return [p for p in found if p.name == "night.enhanced.png"]

        got = _wait_for(downloaded, 60, "the download to finish")[0]

        if screenshots:
            _wait_done(driver, "street at night.png")
            time.sleep(0.5)  # the preview images finish painting
            out = REPO / "docs" / "app.png"
            assert driver.save_screenshot(str(out)), out
    finally:
        if driver is not None:
            driver.quit()
        _stop(proc)

    cli_out = tmp_path / "cli"
    subprocess.run([sys.executable, "-m", "lowlight", "enhance", str(src), "-o", str(cli_out), "--strength", "0.5",
                    "--exposure", "0.5", "--shadows", "0.5", "-q"], check=True, cwd=REPO, env=_env(), timeout=300)
    want = np.asarray(Image.open(cli_out / src.name))
    have = np.asarray(Image.open(got))
    assert have.shape == want.shape == (48, 64, 3)
    np.testing.assert_array_equal(have, want)
    assert not np.array_equal(have, np.asarray(Image.open(src)))  # it did enhance
