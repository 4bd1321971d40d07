"""STAC Browser end to end: build it (scripts/stac-browser.sh, cached), serve a catalog and the
build with ``serve.start`` on a fixed loopback port, and check in headless Debian Chromium
(driven by Playwright, no browser download) what the root catalog, a collection and an item page
show, including the item's thumbnail. Screenshots go to .artifacts/ (kept as CI artifacts)."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from sen12ts_stac.distribute.serve import BROWSER_PREFIX, build_browser, start

REPO = Path(__file__).resolve().parents[1]
PORT = 8431  # STAC Browser is built for one catalog URL; the Makefile pre-builds for this one
CATALOG_URL = f"http://127.0.0.1:{PORT}/catalog.json"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / ".artifacts"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser_dist() -> Path:
    if not Path(CHROMIUM).exists():
        pytest.skip("no chromium: `make install` installs Debian's chromium with apt-get (as root)")
    if not shutil.which("npm"):
        pytest.skip("no npm: STAC Browser is built from its npm source package")
    t0 = time.perf_counter()
    dist = build_browser(CATALOG_URL)  # scripts/stac-browser.sh: npm install + build, or the cached build
    print(f"STAC Browser build (or cache hit): {time.perf_counter() - t0:.1f} s")
    assert (dist / "index.html").is_file()
    return dist


@pytest.fixture(scope="module")
def page(browser_dist, small_catalog, tmp_path_factory):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    root = tmp_path_factory.mktemp("browse") / "cat"
    shutil.copytree(small_catalog, root)
    ARTIFACTS.mkdir(exist_ok=True)
    with start(root, port=PORT, browser_dist=browser_dist) as served, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        pg.set_default_timeout(90_000)  # generous: CI shares two cores with the rest of the suite
        assert served.browser_url == f"http://127.0.0.1:{PORT}{BROWSER_PREFIX}"
        pg.served, pg.root = served, root
        yield pg
        browser.close()


def _open(page, route: str, heading: str, shows: str) -> str:
    """Open a route, wait for its heading and for ``shows`` (a text that arrives with the data)."""
    page.goto(f"{page.served.browser_url}#/{route}")
    page.get_by_role("heading", name=heading).first.wait_for()
    page.get_by_text(shows).first.wait_for()
    return page.locator("body").inner_text()


def test_root_catalog_page(page):
    # the child is first listed under its link title ("California Central Valley"), then under
    # its own title once STAC Browser has fetched it: wait for the latter
    text = _open(page, "", "SEN12TS (sen12ts-stac)", "SEN12TS: California Central Valley")
    assert "SEN12TS: California Central Valley" in text  # the AOI child catalog is listed
    page.screenshot(path=ARTIFACTS / "stac-browser-catalog.png")


def test_collection_page(page):
    text = _open(
        page,
        "california/triplets/collection.json",
        "SEN12TS California Central Valley: Training triplets",
        "Training triplets near ",
    )
    assert "One record per S1/S2/label triplet" in text  # the description
    # its block catalogs are listed by where they are and what they hold, not by a grid key
    assert re.search(r"Training triplets near \d+\.\d\d°N \d+\.\d\d°W: \d+ items?", text), text
    assert "zone_path//8" not in text
    page.screenshot(path=ARTIFACTS / "stac-browser-collection.png", full_page=True)


def test_s1_item_page_names_its_bands(page):
    item = sorted(page.root.glob("california/s1/*/*/*.json"))[0]
    _open(page, item.relative_to(page.root).as_posix(), item.stem, "Raster Imagery")
    layers = page.locator("table", has_text="Data Type of Values").first
    layers.wait_for()
    rows = layers.inner_text()
    for name, unit in (("vh_t0", "dB"), ("phase_t0", "rad")):  # the raster table names each band, with its unit
        assert re.search(rf"{unit}\s+{name}\b", rows), rows[:500]
    page.screenshot(path=ARTIFACTS / "stac-browser-s1-item.png", full_page=True)


def test_label_page_names_classes_and_dates_its_sources(page):
    item = sorted(page.root.glob("california/labels/*/*/*.json"))[0]
    d = json.loads(item.read_text())
    text = _open(page, item.relative_to(page.root).as_posix(), item.stem, "Additional Resources")
    assert "Corn" in text and "Cotton" in text  # class titles from classification:classes
    sources = [ln["title"] for ln in d["links"] if ln["rel"] == "source"]
    assert len(sources) >= 2 and len(set(sources)) == len(sources)  # each source says which one it is
    for title in sources:
        assert re.search(r"20\d\d-\d\d-\d\d", title) and title in text, title
    assert "S1 source imagery" not in text
    page.screenshot(path=ARTIFACTS / "stac-browser-label.png", full_page=True)


def test_item_page_shows_its_thumbnail(page):
    item = sorted(page.root.glob("california/s2/*/*/*.json"))[0]
    route = item.relative_to(page.root).as_posix()
    text = _open(page, route, item.stem, "Cloud Cover")
    assert "Sentinel-2" in text and "Cloud Cover" in text and "EPSG:32610" in text
    page.get_by_role("tab", name="Thumbnails").click()
    img = page.locator("img.thumbnail").first
    img.wait_for(state="visible")
    assert img.get_attribute("src").endswith(f"/{item.parent.name}/thumbnail.png")
    width, complete = img.evaluate("e => [e.naturalWidth, e.complete]")
    assert complete and width > 0, "the thumbnail did not load"
    shot = ARTIFACTS / "stac-browser-item.png"
    page.screenshot(path=shot)
    from PIL import Image, ImageStat

    box = img.bounding_box()
    crop = (
        Image.open(shot)
        .convert("RGB")
        .crop((int(box["x"]), int(box["y"]), int(box["x"] + box["width"]), int(box["y"] + box["height"])))
    )
    assert max(ImageStat.Stat(crop).stddev) > 5, "the thumbnail area of the screenshot is flat"
