"""The page in a real browser: headless Debian Chromium driven by Selenium against a live server.

Types a text query, sees the thumbnail grid, clicks a hit, uploads an image, pages, opens the
duplicate groups, and checks a phone-sized window. Assertions are on the DOM, never on pixels;
screenshots go to the test's temp dir (and to ``$EMBEDSEARCH_SCREENSHOT_DIR`` when set, which is
how ``docs/serve.png`` is made).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="needs the system chromium and chromedriver "
    "(apt-get install chromium chromium-driver; .ci/run does)",
)
WAIT_S = 20
HITS = "[...document.querySelectorAll('#results .hit')]"
FIRST = "document.querySelector('#results .hit')"


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)  # no driver download
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


def wait_for(driver, script: str, what: str):
    """Poll a JS expression until it is truthy (the page's own state, not a sleep)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.05).until(
        lambda d: d.execute_script(f"return {script}"), message=what
    )


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    driver.save_screenshot(str(path))
    extra = os.environ.get("EMBEDSEARCH_SCREENSHOT_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / name)
    return path


def loaded_thumbnails(driver) -> int:
    return driver.execute_script(
        "return [...document.querySelectorAll('#results .hit img')]"
        ".filter(i => i.complete && i.naturalWidth > 0).length"
    )


def search_text(driver, live_server, text: str, k: int) -> None:
    from selenium.webdriver.common.by import By

    driver.get(live_server.url + "/")
    wait_for(driver, "document.body.dataset.ready === '1'", "page did not load the index list")
    box = driver.find_element(By.ID, "k")
    box.clear()
    box.send_keys(str(k))
    driver.find_element(By.ID, "query").send_keys(text)
    driver.find_element(By.ID, "search-button").click()
    wait_for(
        driver, f"document.querySelectorAll('#results .hit').length === {k}", "no grid of hits"
    )


def test_text_query_shows_a_grid_of_thumbnails_with_scores(browser, live_server, tmp_path) -> None:
    search_text(browser, live_server, "a red circle", 14)
    wait_for(
        browser,
        HITS + ".every(h => !h.querySelector('img') || h.querySelector('img').naturalWidth > 0)",
        "thumbnails did not load",
    )
    # the symlink that points outside the source folder is refused (404): its card shows its path
    links = browser.execute_script(
        f"return {HITS}.filter(h => h.title.includes('link.png'))"
        ".map(h => h.querySelector('img') === null)"
    )
    assert all(links) and loaded_thumbnails(browser) == 14 - len(links)
    scores = browser.execute_script(
        "return [...document.querySelectorAll('#results .hit .score')].map(s => s.textContent)"
    )
    assert scores[0].startswith("#1 ") and len(scores) == 14
    values = [float(s.split()[1]) for s in scores]
    assert values == sorted(values, reverse=True)
    assert "index: 25 rows" in browser.find_element("id", "index-info").text
    assert screenshot(browser, tmp_path, "serve.png").stat().st_size > 10_000


def test_clicking_a_hit_searches_by_it(browser, live_server) -> None:
    search_text(browser, live_server, "a blue square", 6)
    third = browser.find_elements("css selector", "#results .hit")[2]
    key = third.get_attribute("data-key")
    source = third.get_attribute("title").splitlines()[0]
    third.click()
    wait_for(
        browser,
        "document.getElementById('query-card').textContent.startsWith('like:')",
        "no id query",
    )
    wait_for(
        browser,
        f"{FIRST} && {FIRST}.dataset.key === '{key}'",
        "the clicked hit is not the first result of its own search",
    )
    assert source in browser.find_element("id", "query-card").text


def test_uploading_an_image_finds_it(browser, live_server, clip_corpus) -> None:
    from selenium.webdriver.common.by import By

    browser.get(live_server.url + "/")
    wait_for(browser, "document.body.dataset.ready === '1'", "page did not load")
    image = sorted(clip_corpus.images.glob("0*.png"))[6]
    browser.find_element(By.ID, "file").send_keys(str(image))
    wait_for(
        browser,
        "document.getElementById('query-card').textContent.includes('image:')",
        "no image query",
    )
    wait_for(
        browser,
        f"{FIRST} && {FIRST}.title.startsWith({str(image)!r})",
        "the uploaded image is not its own first hit",
    )


def test_paging_walks_through_k(browser, live_server) -> None:
    search_text(browser, live_server, "a green star", 10)
    first_page = browser.execute_script(
        "return [...document.querySelectorAll('#results .hit')].map(h => h.dataset.key)"
    )
    browser.find_element("id", "next").click()
    wait_for(browser, "document.getElementById('page').textContent === 'page 2'", "no second page")
    wait_for(
        browser,
        "document.querySelector('#results .hit .score').textContent.startsWith('#11 ')",
        "ranks did not move on",
    )
    second_page = browser.execute_script(
        "return [...document.querySelectorAll('#results .hit')].map(h => h.dataset.key)"
    )
    assert not set(first_page) & set(second_page) and len(first_page) + len(second_page) == 20
    browser.find_element("id", "prev").click()
    wait_for(
        browser,
        "document.querySelector('#results .hit .score').textContent.startsWith('#1 ')",
        "no way back",
    )


def test_duplicate_groups_show_the_kept_image_first(browser, live_server, tmp_path) -> None:
    browser.get(live_server.url + "/")
    wait_for(browser, "document.body.dataset.ready === '1'", "page did not load")
    browser.find_element("id", "tab-dedup").click()
    wait_for(
        browser, "document.querySelectorAll('#dedup .group').length === 2", "no duplicate groups"
    )
    first = browser.execute_script(
        "const g = document.querySelector('#dedup .group');"
        "return {kept: [...g.querySelectorAll('.hit')].map(h => h.classList.contains('kept')),"
        "        pairs: g.querySelector('.pairs').textContent}"
    )
    assert first["kept"] == [True, False, False]
    assert "0.990" in first["pairs"] and "0.970" in first["pairs"]
    screenshot(browser, tmp_path, "serve-dedup.png")


def test_phone_sized_window_fits_without_sideways_scrolling(browser, live_server, tmp_path) -> None:
    browser.set_window_size(390, 844)
    try:
        search_text(browser, live_server, "a yellow triangle", 6)
        layout = browser.execute_script(
            "return {overflow: document.documentElement.scrollWidth - window.innerWidth,"
            " columns: getComputedStyle(document.getElementById('results'))"
            ".gridTemplateColumns.split(' ').length}"
        )
        assert layout["overflow"] <= 0 and layout["columns"] == 2
        screenshot(browser, tmp_path, "serve-phone.png")
    finally:
        browser.set_window_size(1280, 900)


def test_token_form_stays_hidden_when_no_token_is_needed(browser, live_server) -> None:
    browser.get(live_server.url + "/")
    wait_for(browser, "document.body.dataset.ready === '1'", "page did not load")
    assert not browser.find_element("id", "token-form").is_displayed()
    assert not browser.find_element("id", "error").is_displayed()
