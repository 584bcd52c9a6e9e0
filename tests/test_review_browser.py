"""seda review in a real browser: headless Chromium (Debian's) driven by Selenium.

Skipped when Chromium, chromedriver or selenium is missing (.ci/run installs them). The browser
is started offline-minded (no background networking, updates, sync) with a fresh profile, and
Selenium is given the driver's path so that Selenium Manager never downloads anything.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from seda.io import read_csv
from seda.review import ReviewServer, make_server
from test_review import LABELS, write_queue

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = [
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(DRIVER).exists()),
        reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
        "chromium-driver)",
    ),
    pytest.mark.timeout(120),
]
webdriver = pytest.importorskip(
    "selenium.webdriver", reason="needs selenium (pip install selenium)"
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ReviewServer]:
    root = tmp_path / "repo"
    queue = write_queue(root)
    srv = make_server(queue, root / "data/labels/reviewed.csv", "127.0.0.1", 0, root=root)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_play_a_clip_and_label_it_with_the_keyboard(server: ReviewServer, browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    driver.get(server.url)
    wait = WebDriverWait(driver, 20)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    cards = driver.find_elements(By.CSS_SELECTOR, ".clip")
    assert len(cards) == 3
    assert "current" in cards[0].get_attribute("class")
    buttons = [b.text for b in cards[0].find_elements(By.CSS_SELECTOR, "button")]
    assert buttons == [f"{i + 1}{lab}" for i, lab in enumerate(LABELS)] + ["sskip", "ddiscard"]

    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.SPACE)
    first_audio = "return document.querySelectorAll('audio')[0]"
    wait.until(lambda d: d.execute_script(f"{first_audio}.currentTime") > 0.05)
    assert driver.execute_script(f"{first_audio}.error") is None

    body.send_keys("2")  # the second label
    wait.until(lambda d: server.reviewed.exists() and len(read_csv(server.reviewed)) == 1)
    (row,) = read_csv(server.reviewed)
    assert (row["clip_id"], row["decision"], row["label"]) == ("c_000", "label", LABELS[1])
    assert row["proposed_label"] == "angry" and row["previous_label"] == "unknown"
    classes = "return [...document.querySelectorAll('.clip')].map((c) => c.className)"
    wait.until(lambda d: "current" in d.execute_script(classes)[1])
    assert "done" in driver.execute_script(classes)[0]
    driver.find_element(By.TAG_NAME, "body").send_keys("d")
    wait.until(lambda d: len(read_csv(server.reviewed)) == 2)
    assert read_csv(server.reviewed)[1]["decision"] == "discard"


def test_off_loopback_page_asks_for_the_token(tmp_path: Path, browser: object) -> None:
    """As served on a non-loopback --host: no token in the page; the user types it, then the
    queue, the audio (fetched with the token) and the decisions work."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    root = tmp_path / "repo"
    srv = make_server(
        write_queue(root),
        root / "data/labels/reviewed.csv",
        "127.0.0.1",
        0,
        root=root,
        require_token=True,
    )
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        driver = browser
        driver.get(srv.url)
        assert srv.token not in driver.page_source
        wait = WebDriverWait(driver, 20)
        field = driver.find_element(By.ID, "token")
        wait.until(lambda d: field.is_displayed())
        field.send_keys("not-the-token-123", Keys.ENTER)
        message = driver.find_element(By.ID, "login-message")
        wait.until(lambda d: "not accepted" in message.text)
        field.send_keys(srv.token, Keys.ENTER)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        assert len(driver.find_elements(By.CSS_SELECTOR, ".clip")) == 3
        assert not driver.find_element(By.ID, "login").is_displayed()

        body = driver.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.SPACE)
        first_audio = "return document.querySelectorAll('audio')[0]"
        wait.until(lambda d: d.execute_script(f"{first_audio}.currentTime") > 0.05)
        assert driver.execute_script(f"{first_audio}.src").startswith("blob:")
        body.send_keys("3")
        wait.until(lambda d: srv.reviewed.exists() and len(read_csv(srv.reviewed)) == 1)
        (row,) = read_csv(srv.reviewed)
        assert (row["clip_id"], row["decision"], row["label"]) == ("c_000", "label", LABELS[2])
    finally:
        srv.shutdown()
        srv.server_close()
