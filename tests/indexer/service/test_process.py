"""The real service as a process: acknowledged writes survive kill -9, Ctrl-C stops it cleanly, and the web
page works in headless Chromium."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.indexer.service.conftest import image_path, png_bytes, run
from tests.requirements import extra, require, require_module

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run")


def test_acknowledged_writes_survive_kill_9(ws, trained, server_factory):
    import httpx

    run(ws, "build", "--index", "ivf")
    server = server_factory(ws, "--index", "ivf")
    data = png_bytes((255, 140, 0), shape="rectangle", offset=1)
    added = httpx.post(server.url + "/images", files={"image": ("kept.png", data, "image/png")},
                       data={"label": "orange"}, timeout=30)
    assert added.status_code == 201, added.text
    new_id = added.json()["id"]
    victim = httpx.post(server.url + "/query?k=1", files={"image": ("v.png", Path(image_path(trained, "red_circle", 3)).read_bytes(),
                                                                    "image/png")}, timeout=30).json()["results"][0]["id"]
    assert httpx.delete(f"{server.url}/images/{victim}", timeout=30).status_code == 200
    assert server.kill(signal.SIGKILL) == -signal.SIGKILL

    server = server_factory(ws, "--index", "ivf")
    for index in ("ivf", "flat"):
        hits = httpx.post(f"{server.url}/query?k=24&index={index}", files={"image": ("q.png", data, "image/png")},
                          timeout=30).json()["results"]
        assert hits[0]["id"] == new_id and hits[0]["label"] == "orange", index
        assert victim not in [h["id"] for h in hits], index
    assert httpx.get(f"{server.url}/images/{new_id}", timeout=30).content == data
    assert httpx.get(f"{server.url}/images/{victim}", timeout=30).status_code == 404
    assert httpx.get(server.url + "/status", timeout=30).json()["inconsistencies"] == []
    server.kill()
    # the saved files agree too: another process (the CLI) sees the same catalog and indexes
    assert json.loads(run(ws, "status", "--json").stdout)["inconsistencies"] == []


def test_a_write_killed_before_the_index_save_is_replayed_at_start(ws, trained, server_factory, monkeypatch):
    """Catalog row and embedding committed, index files not saved (the kill -9 window): the next start adds it."""
    import httpx

    from indexer.api import LiveCatalog, Workspace
    from indexer.api.search import live as live_module

    workspace = Workspace.at(ws)
    live = LiveCatalog(workspace, "flat")
    monkeypatch.setattr(live_module.LiveCatalog, "_change_indexes", lambda self, **kw: [])
    data = png_bytes((0, 200, 200), shape="ellipse", offset=2)
    new_id = live.add_image(data, "cyan.png", label="cyan").id
    live.close()
    monkeypatch.undo()
    server = server_factory(ws, "--index", "flat")
    hits = httpx.post(server.url + "/query?k=1", files={"image": ("q.png", data, "image/png")}, timeout=30).json()
    assert hits["results"][0]["id"] == new_id


def test_ctrl_c_stops_the_service_cleanly(ws, server_factory):
    server = server_factory(ws)
    process = server.process
    assert server.kill(signal.SIGINT) == 0
    assert process.returncode == 0


def test_an_index_rebuilt_by_another_process_is_picked_up(ws, trained, server_factory, tmp_path):
    import threading

    import httpx

    from tests.conftest import draw_shape

    server = server_factory(ws, "--index", "flat")
    query = Path(image_path(trained, "blue_triangle", 1)).read_bytes()
    failures, stop = [], threading.Event()

    def keep_querying() -> None:
        while not stop.is_set():
            response = httpx.post(server.url + "/query?k=3", files={"image": ("q.png", query, "image/png")}, timeout=30)
            if response.status_code != 200 or len(response.json()["results"]) != 3:
                failures.append(response.text)

    thread = threading.Thread(target=keep_querying)
    thread.start()
    try:
        draw_shape(tmp_path / "late" / "red_circle" / "late.png", (200, 20, 20), "ellipse", offset=3)
        run(ws, "ingest", str(tmp_path / "late"))
        run(ws, "build", "--update", "flat")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and httpx.get(server.url + "/indexes").json()[0]["ntotal"] != 25:
            time.sleep(0.2)
        assert httpx.get(server.url + "/indexes").json()[0]["ntotal"] == 25
        run(ws, "build", "--index", "flat", "--name", "flat")  # a full rebuild: a new file replaces the old
        time.sleep(2.5)
        assert httpx.get(server.url + "/indexes").json()[0]["ntotal"] == 25
    finally:
        stop.set()
        thread.join()
    assert failures == []


def _browser():
    for program in (CHROMIUM, CHROMEDRIVER):
        require(Path(program).is_file(), f"{program} (Debian's chromium and chromium-driver)",
                "'apt-get install chromium chromium-driver' (.ci/run does it)")
    webdriver = require_module("selenium.webdriver", extra("serve"))
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument("--window-size=1280,900")
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.mark.browser
def test_the_page_uploads_an_image_and_shows_it_first(ws, trained, server_factory, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _browser()
    try:
        server = server_factory(ws)
        query = image_path(trained, "green_square", 6)
        from tests.indexer.service.test_app import catalog_id

        expected = catalog_id(ws, query)
        driver.get(server.url + "/")
        WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#index option"))
        shutil.copy(query, tmp_path / "upload.png")
        driver.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(tmp_path / "upload.png"))
        images = WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results img"))
        assert len(images) == 10
        assert images[0].get_attribute("data-id") == str(expected)
        assert images[0].get_attribute("src").endswith(f"/images/{expected}")
        WebDriverWait(driver, 10).until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth > 0)"))
        assert "results for upload.png" in driver.find_element(By.ID, "message").text
        driver.save_screenshot(str(tmp_path / "page.png"))
        images[1].click()  # search by a result
        WebDriverWait(driver, 30).until(lambda d: "results for image" in d.find_element(By.ID, "message").text)

        # a label picked from the catalog's labels, then a filter typed: only matching images, the plan shown
        from selenium.webdriver.support.ui import Select

        Select(driver.find_element(By.ID, "label-pick")).select_by_value("red_circle")
        WebDriverWait(driver, 30).until(lambda d: "8 images passed" in d.find_element(By.ID, "message").text)
        labels = {element.text for element in driver.find_elements(By.CSS_SELECTOR, "#results .label")}
        assert labels == {"red_circle"}
        Select(driver.find_element(By.ID, "label-pick")).select_by_value("")
        box = driver.find_element(By.ID, "filter")
        box.send_keys('label != "red_circle"\n')
        driver.execute_script("document.getElementById('filter').dispatchEvent(new Event('change'))")
        WebDriverWait(driver, 30).until(lambda d: "16 images passed" in d.find_element(By.ID, "message").text)
        assert "red_circle" not in {e.text for e in driver.find_elements(By.CSS_SELECTOR, "#results .label")}

        # load more: the next page is appended, ranks 11..16 after 1..10
        driver.find_element(By.ID, "more").click()
        WebDriverWait(driver, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .hit")) > 10)
        ranks = [element.text for element in driver.find_elements(By.CSS_SELECTOR, "#results .rank")]
        assert ranks == [f"#{i}" for i in range(1, len(ranks) + 1)] and len(ranks) == 15, ranks

        # a bad filter is shown as the service's one-line reason
        box.clear()
        box.send_keys("colour = 'red'")
        driver.execute_script("document.getElementById('filter').dispatchEvent(new Event('change'))")
        WebDriverWait(driver, 30).until(lambda d: "unknown field 'colour'" in d.find_element(By.ID, "message").text)
        assert "fields: label, split" in driver.find_element(By.ID, "fields-hint").text
    finally:
        driver.quit()
