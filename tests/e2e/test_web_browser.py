"""The web view in a real browser: headless Chromium (Debian's chromium and
chromium-driver packages) opens a real swarmd's page, a service is scaled
through swarmctl, and the page shows the new replica count without a reload.
A screenshot of the page is saved as a test artifact."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import free_port
from helpers import swarmctl, tool, wait_until

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(os.environ.get("PYTEST_ARTIFACTS") or Path(__file__).parents[1] / "artifacts")


def _browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip(
            "headless Chromium is not installed (apt-get install chromium chromium-driver; "
            ".ci/run does it): the web view's browser test cannot run"
        )
    return chromium, driver


@pytest.fixture
def browser(short_tmp: Path) -> Iterator[object]:
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')"
    )
    chromium, driver_path = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        f"--user-data-dir={short_tmp / 'chromium'}",
    ):
        options.add_argument(arg)
    # The driver is named: Selenium then never tries to download one.
    service = webdriver.ChromeService(executable_path=driver_path)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_page_follows_a_scale_without_a_reload(short_tmp: Path, browser: object) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    driver = browser
    started = time.monotonic()
    port = free_port()
    sock = str(short_tmp / "node-1" / "swarm.sock")
    log = open(short_tmp / "swarmd.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            *(tool("swarmd"), "-d", str(short_tmp / "node-1"), "--hostname", "node-1"),
            *("--listen-control-api", sock, "--listen-remote-api", "127.0.0.1:0"),
            *("--executor", "sim", "--listen-web", f"127.0.0.1:{port}"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(swarmctl(sock, *args), capture_output=True, text=True, timeout=60)

    def replicas(name: str) -> str:
        # The page redraws its tables as the stream pushes: a cell read just
        # as it is replaced is read again on the next try.
        try:
            cells = driver.find_elements(  # type: ignore[attr-defined]
                By.CSS_SELECTOR, f'#services tr[data-service="{name}"] td.replicas'
            )
            return str(cells[0].text) if cells else ""
        except StaleElementReferenceException:
            return ""

    def task_names() -> list[str]:
        try:
            tasks = driver.find_elements(By.CSS_SELECTOR, "#tasks li[data-task]")  # type: ignore[attr-defined]
            return sorted(str(t.get_attribute("data-task")) for t in tasks)
        except StaleElementReferenceException:
            return []

    try:
        wait_until(lambda: "READY" in ctl("node", "ls").stdout, timeout=60, what="node READY")
        driver.get(f"http://127.0.0.1:{port}/")  # type: ignore[attr-defined]
        wait_until(
            lambda: (
                driver.find_element(By.ID, "conn").text == "live"  # type: ignore[attr-defined]
                and driver.find_elements(By.CSS_SELECTOR, '#nodes tr[data-node="node-1"]')
            ),  # type: ignore[attr-defined]
            timeout=30,
            what="the page live, showing node-1",
        )
        # A reload would lose this.
        driver.execute_script("window.keptWithoutReload = 'yes';")  # type: ignore[attr-defined]

        created = ctl(
            *("service", "create", "--name", "web", "--command", "sleep", "--args", "1000"),
            *("--replicas", "2"),
        )
        assert created.returncode == 0, created.stderr
        wait_until(lambda: replicas("web") == "2/2", timeout=30, what="web 2/2 on the page")

        scaled = ctl("service", "update", "web", "--replicas", "5")
        assert scaled.returncode == 0, scaled.stderr
        wait_until(lambda: replicas("web") == "5/5", timeout=30, what="web 5/5 on the page")
        wait_until(
            lambda: task_names() == [f"web.{i}" for i in range(1, 6)],
            timeout=30,
            what="tasks web.1 to web.5 on the page",
        )
        kept = driver.execute_script("return window.keptWithoutReload;")  # type: ignore[attr-defined]
        assert kept == "yes", "the page reloaded to show the change"

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "web-view.png"
        assert driver.save_screenshot(str(shot))  # type: ignore[attr-defined]
        print(f"\nweb view screenshot: {shot} ({time.monotonic() - started:.1f} s)")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
    assert proc.returncode == 0, (short_tmp / "swarmd.log").read_text(errors="replace")[-2000:]
