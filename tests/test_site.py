"""The built website in a real headless browser (Debian's Chromium through Selenium).

Every page of the table of contents loads, shows the figures its notebook holds, and links
only to pages and anchors that exist; a screenshot of the front page is kept as a build
artifact (``_build/screenshots/index.png``). ``make test`` builds the site first; run alone,
this module builds it if it is missing.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import pytest
import yaml

from mfutils.runs.paths import project_root

ROOT = project_root()
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = pytest.mark.slow


def toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [c["file"] for c in part["chapters"]]
    return pages


def expected_figures(page: str) -> int:
    """PNG outputs the executed notebook holds (0 for a markdown page)."""
    nb = ROOT / f"{page}.ipynb"
    if not nb.exists():
        return 0
    cells = json.loads(nb.read_text())["cells"]
    return sum("image/png" in o.get("data", {}) for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []))


@pytest.fixture(scope="module")
def site():
    if not (HTML / "index.html").exists():
        from mfutils.book.runner import html

        html()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() or not Path(CHROMEDRIVER).exists():
        pytest.fail("Chromium and ChromeDriver are needed (`apt-get install chromium chromium-driver`; "
                    "`make test` installs them when absent)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1600"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()


#: a host name's last label that is really a file suffix: "http://paper-notes.md" came from a
#: Markdown file name auto-linked as a URL
FILE_SUFFIXES = {"md", "py", "ipynb", "yaml", "yml", "json", "csv", "txt", "cfg", "toml", "html"}


def external_link_is_well_formed(href: str) -> bool:
    """http(s) with a dotted host name whose last label is alphabetic and not a file suffix, or mailto."""
    u = urlparse(href)
    if u.scheme == "mailto":
        return "@" in u.path
    host = u.hostname or ""
    labels = host.split(".")
    return (u.scheme in ("http", "https") and len(labels) >= 2 and all(labels)
            and labels[-1].isalpha() and labels[-1].lower() not in FILE_SUFFIXES)


def test_external_link_form():
    assert external_link_is_well_formed("https://arxiv.org/abs/2602.03677")
    assert not external_link_is_well_formed("http://paper-notes.md")
    assert not external_link_is_well_formed("https://localhost/x") and not external_link_is_well_formed("ftp://a.org")


#: the widest a table or figure may be: the article column (a tolerance of 1 CSS px)
OVERFLOW_JS = """
const col = document.querySelector('article.bd-article') || document.querySelector('main');
const width = col.clientWidth;
const right = col.getBoundingClientRect().right;
const out = [];
for (const el of col.querySelectorAll('table, img')) {
  const r = el.getBoundingClientRect();
  const w = el.tagName === 'TABLE' ? Math.max(el.scrollWidth, r.width) : r.width;
  // a cell output scrolls what is wider than itself: such a table is cut off at the page width
  // (a reader sees part of it and a scroll bar), so it counts as overflowing too
  let box = el.parentElement;
  while (box && box !== col && getComputedStyle(box).overflowX === 'visible') box = box.parentElement;
  const clipped = box && box !== col && r.right > box.getBoundingClientRect().right + 1;
  if (w > width + 1 || r.right > right + 1 || clipped) {
    out.push(el.tagName + ' ' + Math.round(w) + 'px' + (clipped ? ' (cut off by its output box)' : '') + ': ' +
             (el.innerText || el.getAttribute('src') || '').slice(0, 60));
  }
}
return [width, out];
"""


@pytest.mark.parametrize("page", toc_pages())
def test_no_table_or_figure_overflows_the_column(site, browser, page):
    browser.get(site + page + ".html")
    width, overflowing = browser.execute_script(OVERFLOW_JS)
    assert width > 300, f"{page}: no article column found"
    assert not overflowing, f"{page}: wider than the {width}px column: {overflowing}"


@pytest.mark.parametrize("page", toc_pages())
def test_page_loads_with_its_figures_and_no_broken_links(site, browser, page):
    browser.get(site + page + ".html")
    assert browser.execute_script("return document.readyState") == "complete"
    assert browser.find_elements("css selector", "main h1"), f"{page}: no heading rendered"
    images = browser.execute_script(
        "return [...document.querySelectorAll('main img')].map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])")
    broken = [src for src, ok in images if not ok]
    assert not broken, f"{page}: images that did not load: {broken}"
    if "/chapters/" in page or page.endswith(("index", "organism")):
        assert expected_figures(page) >= 1, f"{page}: the executed notebook holds no figure"
    assert len(images) >= expected_figures(page), f"{page}: {len(images)} images shown, notebook has {expected_figures(page)}"
    hrefs = browser.execute_script("return [...document.querySelectorAll('a[href]')].map(a => a.href)")
    for href in hrefs:
        url, frag = urldefrag(href)
        if urlparse(url).netloc != urlparse(site).netloc:
            assert external_link_is_well_formed(href), f"{page}: malformed external link {href}"
            continue  # no network here: an external link is checked by its form only
        path = HTML / urlparse(url).path.lstrip("/")
        if path.is_dir():
            path = path / "index.html"
        assert path.exists(), f"{page}: broken internal link {href}"
        if frag and path.suffix == ".html":
            assert re.search(rf'id="{re.escape(frag)}"', path.read_text()), f"{page}: link to missing anchor {href}"


#: column names of the result files that must never reach a reader's eye
RAW_NAMES = ("competitor_is_prior", "following_ratio", "pearson_r", "n_failed", "image_only", "text_only", "log_odds",
             "ci_low", "ci_high")


#: a figure's least displayed width at a 1280-px window (CSS px): narrower, its 8-pt text shrinks below legibility
MIN_FIGURE_PX = 600


@pytest.mark.parametrize("page", toc_pages())
def test_no_page_scrolls_sideways_shows_raw_names_or_shrinks_a_figure(site, browser, page):
    browser.get(site + page + ".html")
    wide, view = browser.execute_script("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert wide <= view, f"{page}: {wide} px wide in a {view} px window"
    # what a reader sees (collapsed code cells are not seen) carries no raw column names
    text = browser.find_element("css selector", "main").text
    raw = [name for name in RAW_NAMES if name in text]
    assert not raw, f"{page}: raw column names in the visible text: {raw}"
    # every figure (an output image, not an icon or a badge) is shown at least MIN_FIGURE_PX wide
    shown = browser.execute_script(
        "return [...document.querySelectorAll('main .cell_output img, main figure img')]"
        ".filter(i => i.naturalWidth >= 600).map(i => [i.getAttribute('src'), i.getBoundingClientRect().width])")
    narrow = [(src, round(w)) for src, w in shown if w < MIN_FIGURE_PX]
    assert not narrow, f"{page}: figures shown under {MIN_FIGURE_PX} px wide: {narrow}"


def test_front_page_shows_the_generated_summary_and_is_screenshotted(site, browser):
    browser.get(site + "book/index.html")
    text = browser.find_element("css selector", "main").text
    assert "Reproduction summary" in text
    # the table is generated from the result files: each chapter's title appears in it
    for title in ("Shallow routing into the instruction anchors", "Causal interventions"):
        assert title in text
    cells = browser.execute_script("return [...document.querySelectorAll('main table td')].map(td => td.innerText.trim())")
    badges = browser.execute_script("return [...document.querySelectorAll('main .mf-badge')].map(b => b.innerText.trim())")
    assert {"reproduced", "met"} & set(badges), "the summary shows no verdict"
    # the answer first: the first verdict sits within the first 1,200 px of the page (at 1280 px)
    top = browser.execute_script("return document.querySelector('main .mf-badge').getBoundingClientRect().top + window.scrollY")
    assert top < 1200, f"the first verdict is {top:.0f} px down the front page"
    # every verdict word in use is defined on the page
    for word in set(badges):
        assert f"{word}:" in text, f"the legend does not define {word!r}"
    # what a reader sees carries no raw column names
    raw = [name for name in RAW_NAMES if name in text]
    assert not raw, f"raw column names on the front page: {raw}"
    heads = browser.execute_script("return [...document.querySelectorAll('main table th')].map(th => th.innerText.trim())")
    from mfutils.book.chapters import MODEL_LABELS
    from mfutils.book.chapters import comparison_overrides

    compared = comparison_overrides("00_behaviour")["model_id"]
    assert {f"{MODEL_LABELS[m].split(' (')[0]}: verdict" for m in ("pretrained-organism", compared)} <= set(heads), \
        "one verdict column per model"
    assert "What changes between the two families" in text
    assert "not run" not in cells, "a chapter has no finished results for the book's parameters"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "index.png"))
    assert (SCREENSHOTS / "index.png").stat().st_size > 10_000
