"""The web UI of datamonfs serve in headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium): repo -> bundle -> file, a CSV preview, a download
compared byte for byte, a diff, lineage, the token field. A screenshot of each page is
saved under the test's directory, screenshots/ (issue 17)."""

from __future__ import annotations

import os
import shutil
import struct
import time
import zlib

import jwt
import pytest

from support.files import write
from support.serve import SECRET, secret_file
from support.tokens import claims

selenium = pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = [pytest.mark.parametrize("store_url", ["local"], indirect=True),
              pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)),
                                 reason="needs Debian's chromium and chromium-driver "
                                        "(make test installs them)")]


@pytest.fixture
def browser(tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                 f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console, CSP reports
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(60)
    driver.downloads = downloads
    driver.shots = tmp_path / "screenshots"
    driver.shots.mkdir()
    try:
        yield driver
    finally:
        driver.quit()


def _png(width: int, height: int) -> bytes:
    """A red PNG image, made by hand (no imaging library needed)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))
    rows = b"".join(b"\x00" + b"\xd0\x30\x30" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                                0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def _shot(driver, name: str) -> None:
    driver.save_screenshot(str(driver.shots / f"{name}.png"))


@pytest.fixture
def tiles(cli, tmp_path):
    data = tmp_path / "data"
    rows = "".join(f"{i},tile-{i},{i * 0.5}\n" for i in range(200))
    write(data, "index.csv", ("id,name,score\n" + rows).encode())
    write(data, "notes/readme.txt", b"satellite tiles, first cut\n")
    write(data, "blob.bin", os.urandom(600_000))
    write(data, "tile.png", _png(40, 30))
    cli("repo", "create", "imagery", "-d", "satellite tiles")
    v1 = cli("bundle", "upload", "imagery", str(data), "-m", "first cut", "--label", "v1"
             ).last_line
    write(data, "notes/more.txt", b"more\n")
    os.remove(data / "blob.bin")
    v2 = cli("bundle", "upload", "imagery", str(data), "-m", "second cut", "--label", "v2"
             ).last_line
    return {"v1": v1, "v2": v2, "blob": open(tmp_path / "data" / "notes" / "readme.txt",
                                             "rb").read()}


def _wait_for_file(folder, name: str, timeout: float = 30) -> bytes:
    deadline = time.monotonic() + timeout
    path = folder / name
    while time.monotonic() < deadline:
        if path.exists() and not any(p.suffix == ".crdownload" for p in folder.iterdir()):
            return path.read_bytes()
        time.sleep(0.1)
    raise AssertionError(f"{name} was not downloaded: {list(folder.iterdir())}")


def test_browse_preview_download_and_diff(serve, tiles, browser, tmp_path):
    s = serve()
    b = browser
    b.get(s.url + "/")
    _shot(b, "1-repos")
    b.find_element(By.LINK_TEXT, "imagery").click()
    WebDriverWait(b, 30).until(lambda d: d.find_elements(By.ID, "bundles"))
    assert b.find_element(By.TAG_NAME, "h1").text == "imagery"
    rows = b.find_elements(By.CSS_SELECTOR, "#bundles tbody tr")
    assert len(rows) == 2 and "second cut" in rows[0].text and "v2" in rows[0].text
    _shot(b, "2-bundles")
    rows[1].find_element(By.CSS_SELECTOR, "a.bundle").click()
    names = [e.text for e in b.find_elements(By.CSS_SELECTOR, "#entries tbody td:first-child")]
    assert names == ["blob.bin", "index.csv", "notes/", "tile.png"]
    _shot(b, "3-tree")
    b.find_element(By.LINK_TEXT, "tile.png").click()
    image = WebDriverWait(b, 30).until(lambda d: d.find_element(By.ID, "preview-image"))
    WebDriverWait(b, 30).until(lambda d: d.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", image))
    assert b.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]",
                            image) == [40, 30]
    _shot(b, "3b-image-preview")
    b.back()
    b.find_element(By.LINK_TEXT, "index.csv").click()
    table = b.find_element(By.ID, "preview-table")
    head = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    assert head == ["id", "name", "score"]
    body = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(body) == 50 and body[3].text.split() == ["3", "tile-3", "1.5"]
    _shot(b, "4-csv-preview")
    b.back()
    b.find_element(By.LINK_TEXT, "notes/").click()
    b.find_element(By.LINK_TEXT, "readme.txt").click()
    assert b.find_element(By.ID, "preview-text").text == "satellite tiles, first cut"
    b.find_element(By.ID, "download").click()
    assert _wait_for_file(b.downloads, "readme.txt") == tiles["blob"]
    _shot(b, "5-text-preview")
    b.get(s.url + "/ui/repos/imagery")
    b.find_element(By.ID, "diff-from").send_keys("v1")
    b.find_element(By.ID, "diff-to").send_keys("v2")
    b.find_element(By.CSS_SELECTOR, "#diff-form button").click()
    WebDriverWait(b, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#changes tbody tr"))
    changes = [r.text for r in b.find_elements(By.CSS_SELECTOR, "#changes tbody tr")]
    assert changes[0].startswith("deleted blob.bin") and changes[1].startswith(
        "added notes/more.txt") and len(changes) == 2
    _shot(b, "6-diff")
    b.get(f"{s.url}/ui/repos/imagery/refs/v2/lineage")
    assert "Made from" in b.page_source
    _shot(b, "7-lineage")
    # nothing on any page broke the pages' Content-Security-Policy
    assert not [e for e in b.get_log("browser") if "Content Security Policy" in e["message"]]
    for shot in sorted(b.shots.iterdir()):
        assert shot.stat().st_size > 5000, shot
    keep = os.environ.get("DATAMONFS_UI_SHOTS")  # scripts may collect them (README)
    if keep:
        shutil.copytree(b.shots, keep, dirs_exist_ok=True)


def test_token_field_on_a_protected_server(serve, tiles, browser, tmp_path):
    s = serve("--jwt-secret-file", secret_file(tmp_path))
    b = browser
    b.get(s.url + "/ui/repos/imagery")
    assert b.find_element(By.TAG_NAME, "h1").text == "Error 401"
    _shot(b, "1-needs-token")
    token = jwt.encode(claims("read:imagery"), SECRET, "HS256")
    b.find_element(By.ID, "token").send_keys(token)
    b.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
    deadline = time.monotonic() + 20
    while b.find_element(By.TAG_NAME, "h1").text != "imagery":
        assert time.monotonic() < deadline, b.page_source[:500]
        time.sleep(0.1)
    b.find_element(By.LINK_TEXT, "v1").click()
    b.find_element(By.LINK_TEXT, "index.csv").click()
    assert b.find_element(By.ID, "preview-table")
    b.find_element(By.ID, "download").click()
    assert _wait_for_file(b.downloads, "index.csv").startswith(b"id,name,score\n")
    _shot(b, "2-with-token")
    b.find_element(By.ID, "token-forget").click()
    time.sleep(0.5)
    b.get(s.url + "/ui/repos/imagery")
    assert b.find_element(By.TAG_NAME, "h1").text == "Error 401"
