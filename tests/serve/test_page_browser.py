"""The web page in headless Chromium against a real server on 127.0.0.1.

Needs Debian's ``chromium`` + ``chromium-driver`` (``scripts/install-test-deps``
installs them; ``.ci/run`` calls it) and ``selenium`` (the ``dev`` extra). Skips with
the reason where any of them is missing.
"""

from __future__ import annotations

import io
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from braintumor.serve.app import create_app

pytestmark = pytest.mark.slow

# No quotes: browsers send a quote in a file name as %22 (HTML's multipart rule).
HOSTILE_NAME = "<img src=x onerror=window.pwned=1>scan.png"


def _browser_binaries() -> tuple[str, str]:
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chrome or not driver:
        pytest.skip(
            "chromium and chromium-driver not installed (run scripts/install-test-deps; "
            "needs apt-get and root)"
        )
    return chrome, driver


@pytest.fixture(scope="module")
def server(cls_run: Path, seg_run: Path) -> Iterator[str]:
    import uvicorn

    with socket.socket() as s:  # a free loopback port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        create_app([cls_run, seg_run]), host="127.0.0.1", port=port, log_level="warning"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "the test server did not start"
    yield f"http://127.0.0.1:{port}/"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    chrome, chromedriver = _browser_binaries()
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(arg)
    try:
        drv = webdriver.Chrome(service=Service(chromedriver), options=opts)
    except Exception as exc:  # a broken browser install: say so, do not fail the suite
        pytest.skip(f"headless chromium did not start: {str(exc).splitlines()[0]}")
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("page")
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray((rng.random((40, 30)) * 255).astype(np.uint8)).save(buf, format="PNG")
    (root / "scan.png").write_bytes(buf.getvalue())
    (root / HOSTILE_NAME).write_bytes(buf.getvalue())
    (root / "garbage.png").write_bytes(b"this is not an image")
    return {
        "scan": root / "scan.png",
        "hostile": root / HOSTILE_NAME,
        "garbage": root / "garbage.png",
    }


def _submit(drv: Any, url: str, model: str, path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    drv.get(url)
    WebDriverWait(drv, 20).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")))
    Select(drv.find_element(By.ID, "model")).select_by_value(model)
    drv.find_element(By.ID, "file").send_keys(str(path))
    drv.find_element(By.ID, "go").click()
    WebDriverWait(drv, 30).until(
        lambda d: (
            d.find_element(By.ID, "error").text or d.find_elements(By.CSS_SELECTOR, "#result h2")
        )
    )


def test_classification_shows_probability_bars(
    driver: Any, server: str, cls_run: Path, files: dict[str, Path]
) -> None:
    from selenium.webdriver.common.by import By

    _submit(driver, server, cls_run.name, files["scan"])
    bars = driver.find_elements(By.CSS_SELECTOR, "#result .bar")
    assert len(bars) == 2  # one per class of the tiny run
    widths = [float(b.value_of_css_property("width").removesuffix("px")) for b in bars]
    assert max(widths) > 0
    assert "Predicted class" in driver.find_element(By.ID, "result").text


def test_segmentation_shows_the_overlay(
    driver: Any, server: str, seg_run: Path, files: dict[str, Path]
) -> None:
    from selenium.webdriver.common.by import By

    _submit(driver, server, seg_run.name, files["scan"])
    overlay = driver.find_element(By.ID, "overlay")
    assert driver.execute_script("return arguments[0].naturalWidth", overlay) == 30
    assert "Tumour area" in driver.find_element(By.ID, "result").text


def test_garbage_file_shows_the_error(
    driver: Any, server: str, cls_run: Path, files: dict[str, Path]
) -> None:
    from selenium.webdriver.common.by import By

    _submit(driver, server, cls_run.name, files["garbage"])
    error = driver.find_element(By.ID, "error").text
    assert error.startswith("error 400") and "garbage.png" in error


def test_hostile_file_name_is_escaped(
    driver: Any, server: str, cls_run: Path, files: dict[str, Path]
) -> None:
    from selenium.webdriver.common.by import By

    _submit(driver, server, cls_run.name, files["hostile"])
    title = driver.find_element(By.CSS_SELECTOR, "#result h2").text
    assert HOSTILE_NAME in title  # shown as text
    assert not driver.find_elements(By.CSS_SELECTOR, "#result img[src='x']")  # not as markup
    assert driver.execute_script("return window.pwned") is None
