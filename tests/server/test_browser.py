"""The search page in a real headless Chromium: a Japanese query, hits, and the highlighted explanation
equal to ``Index.explain``. Needs Debian's ``chromium`` + ``chromium-driver`` (``.ci/run`` installs them)."""

from __future__ import annotations

import shutil

import pytest

from colja import Index
from tests.server.conftest import READ_KEY

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="needs Debian's chromium and chromium-driver: "
                                       "apt-get install -y chromium chromium-driver fonts-ipafont-gothic")

QUERY = "日本シリーズで優勝したのはいつ？"


@pytest.fixture()
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000",
                 "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _expected_marks(explanation):
    """The passage tokens the page should highlight: each matched token once, by position, no overlaps."""
    matched: dict[int, list] = {}
    for m in explanation.matches:
        matched.setdefault(m.passage_index, []).append(m)
    spans = sorted((explanation.passage_tokens[i].start, explanation.passage_tokens[i].end, i)
                   for i in matched if explanation.passage_tokens[i].start is not None)
    out, at = [], 0
    for start, end, i in spans:
        if start < at:
            continue
        out.append((start, end, explanation.text[start:end], " ".join(m.query_token for m in matched[i])))
        at = end
    return out


def test_search_and_explain_in_chromium(served, browser, _fixture_model, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    server, paths = served
    wait = WebDriverWait(browser, 60)
    browser.get(server.url + "/")
    browser.find_element(By.CSS_SELECTOR, "#keybox summary").click()
    browser.find_element(By.ID, "apikey").send_keys(READ_KEY + Keys.TAB)  # the server needs a key
    wait.until(lambda d: any(o.get_attribute("value") == "ja" for o in d.find_elements(By.CSS_SELECTOR, "#index option")))
    browser.find_element(By.CSS_SELECTOR, "#index option[value='ja']").click()
    box = browser.find_element(By.ID, "query")
    box.send_keys(QUERY)
    assert box.get_attribute("value") == QUERY
    box.send_keys(Keys.ENTER)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#hits .hit")) == 10)

    with Index.load(paths["ja"], model=_fixture_model) as local:
        want = local.search(QUERY, k=10)
        hits = browser.find_elements(By.CSS_SELECTOR, "#hits .hit")
        assert [h.get_attribute("data-doc-id") for h in hits] == [h.doc_id for h in want]
        assert hits[0].find_element(By.CSS_SELECTOR, ".score").text == f"{want[0].score:.3f}"

        second = hits[1]
        second.find_element(By.CSS_SELECTOR, "button.explain").click()
        wait.until(ec.visibility_of_element_located((By.ID, "explanation")))
        explanation = local.explain(QUERY, want[1].doc_id)

    assert browser.find_element(By.ID, "explain-doc").text == want[1].doc_id
    assert browser.find_element(By.ID, "explain-score").text == f"{explanation.score:.3f}"
    marks = [(int(m.get_attribute("data-start")), int(m.get_attribute("data-end")), m.text,
              m.get_attribute("data-query-tokens")) for m in browser.find_elements(By.CSS_SELECTOR, "#passage mark.match")]
    assert marks and marks == _expected_marks(explanation)
    assert browser.find_element(By.ID, "passage").text.replace("\n", "") == explanation.text.replace("\n", "")
    rows = browser.find_elements(By.CSS_SELECTOR, "#alignment tbody tr")
    assert len(rows) == len(explanation.matches)
    first = rows[2].find_elements(By.TAG_NAME, "td")  # the first word piece of the query
    assert [c.text for c in first[1:3]] == [explanation.matches[2].query_token, explanation.matches[2].passage_token]

    shot = tmp_path / "search-page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
