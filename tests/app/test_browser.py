"""The web page in a real browser: Debian's chromium, headless, driven by Selenium through Debian's
chromedriver, against a real ``facever serve``. Screenshots of each page go to the test's tmp_path.

Needs the apt packages chromium and chromium-driver (`.ci/run` installs them); skipped without them,
except where FACEVER_TEST_REQUIRE_BROWSER=1 (CI) makes that a failure."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pytest
from live_server import LiveServer
from PIL import Image

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
LFW = Path(__file__).resolve().parents[3] / "shared" / "data" / "lfw" / "images"
BUSH_1 = LFW / "George_W_Bush" / "George_W_Bush_0007.jpg"
BUSH_2 = LFW / "George_W_Bush" / "George_W_Bush_0065.jpg"
SERENA = LFW / "Serena_Williams" / "Serena_Williams_0001.jpg"
WAIT_S = 60
VERIFY_KEY = "browser-test-verify-key-0123456789"

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def _require_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        message = f"{', '.join(missing)} missing: apt-get install chromium chromium-driver"
        if os.environ.get("FACEVER_TEST_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    for image in (BUSH_1, BUSH_2, SERENA):
        if not image.exists():
            pytest.fail(f"{image} is missing (the LFW images beside the clone)")


@pytest.fixture(scope="module")
def chrome(tmp_path_factory):
    _require_browser()
    # Selenium Manager must not look for (or download) a driver or a browser: both are given here.
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--window-size=1200,1400",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingOptions", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _require_browser()
    with LiveServer(tmp_path_factory.mktemp("browser-server")) as live:
        yield live


def _wait(driver, condition, what: str):
    try:
        return WebDriverWait(driver, WAIT_S).until(condition)
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {what}; page text:\n{_text(driver, 'main')}") from None


def _text(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def _visible_text(driver, element_id: str, what: str) -> str:
    _wait(driver, lambda d: d.find_element(By.ID, element_id).text.strip(), what)
    return _text(driver, element_id)


def _open(driver, url: str) -> None:
    driver.get(url)
    _wait(driver, lambda d: "Connecting" not in _text(d, "service-status"), "the service status")


def _csp_violations(driver) -> list[str]:
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if "Content Security Policy" in entry["message"] or "Refused to" in entry["message"]
    ]


def _verify(driver, first: Path, second: Path) -> None:
    driver.find_element(By.ID, "tab-verify").click()
    driver.find_element(By.ID, "image1").send_keys(str(first))
    driver.find_element(By.ID, "image2").send_keys(str(second))
    driver.find_element(By.ID, "verify-button").click()
    _wait(
        driver,
        lambda d: _text(d, "verify-result").strip() or _text(d, "verify-error").strip(),
        "the verify answer",
    )


def test_root_redirects_to_the_page_and_auth_disabled_is_shown(chrome, server):
    _open(chrome, server.url + "/")
    assert chrome.current_url == server.url + "/ui/"
    assert "Authentication is disabled" in _text(chrome, "service-status")
    assert not chrome.find_element(By.ID, "auth").is_displayed()


def test_two_photos_of_one_person_read_same_person(chrome, server, tmp_path):
    _open(chrome, server.url + "/ui/")
    _verify(chrome, BUSH_1, BUSH_2)
    verdict = _visible_text(chrome, "verdict", "the verdict")
    assert verdict.lower() == "same person"
    result = _text(chrome, "verify-result")
    assert "Score" in result and "Threshold" in result
    for n in (1, 2):  # the aligned crops the model saw, as PNG data URLs
        crop = chrome.find_element(By.ID, f"crop{n}")
        _wait(
            chrome,
            lambda d, c=crop: (
                c.is_displayed()
                and d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", c)
            ),
            f"crop {n}",
        )
        assert chrome.execute_script("return arguments[0].naturalWidth", crop) == 150
    chrome.save_screenshot(str(tmp_path / "verify-same-person.png"))
    assert not _csp_violations(chrome)


def test_two_different_people_read_different_people(chrome, server, tmp_path):
    _open(chrome, server.url + "/ui/")
    _verify(chrome, BUSH_1, SERENA)
    assert _visible_text(chrome, "verdict", "the verdict").lower() == "different people"
    chrome.save_screenshot(str(tmp_path / "verify-different-people.png"))


def test_a_text_file_gives_the_error_message(chrome, server, tmp_path):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("this is not a photo\n")
    _open(chrome, server.url + "/ui/")
    _verify(chrome, text_file, BUSH_2)
    error = _visible_text(chrome, "verify-error", "the error message")
    assert "First photo" in error and "not an image" in error
    assert not _text(chrome, "verify-result").strip()
    chrome.save_screenshot(str(tmp_path / "verify-bad-file.png"))


def test_create_enroll_search_identify_and_delete(chrome, server, tmp_path):
    _open(chrome, server.url + "/ui/")
    chrome.find_element(By.ID, "tab-identities").click()
    chrome.find_element(By.ID, "new-name").send_keys("George W Bush")
    chrome.find_element(By.CSS_SELECTOR, "#create-form button[type=submit]").click()
    _wait(chrome, lambda d: _text(d, "detail-title") == "George W Bush", "the new identity")

    text_file = tmp_path / "notes.txt"
    text_file.write_text("this is not a photo\n")
    chrome.find_element(By.ID, "enroll-images").send_keys(f"{BUSH_1}\n{text_file}")
    chrome.find_element(By.ID, "enroll-button").click()
    _wait(chrome, lambda d: "enrolled" in _text(d, "enroll-results"), "the enrollment results")
    results = _text(chrome, "enroll-results")
    assert "1 enrolled, 1 rejected" in results
    assert "George_W_Bush_0007.jpg: accepted" in results
    assert "notes.txt: rejected" in results and "not an image" in results
    _wait(chrome, lambda d: "Delete face" in _text(d, "face-list"), "the enrolled face")

    chrome.find_element(By.ID, "search-name").send_keys("george")
    chrome.find_element(By.CSS_SELECTOR, "#search-form button").click()
    _wait(chrome, lambda d: "George W Bush" in _text(d, "identity-rows"), "the search result")
    assert "1–1 of 1" in _text(chrome, "page-info")
    chrome.save_screenshot(str(tmp_path / "identities.png"))
    search = chrome.find_element(By.ID, "search-name")
    search.clear()
    search.send_keys("serena")
    chrome.find_element(By.CSS_SELECTOR, "#search-form button").click()
    _wait(chrome, lambda d: "No identity" in _text(d, "identity-rows"), "an empty search result")

    chrome.find_element(By.ID, "tab-identify").click()
    chrome.find_element(By.ID, "probe").send_keys(str(BUSH_2))
    chrome.find_element(By.ID, "identify-button").click()
    _visible_text(chrome, "identify-result", "the identify answer")
    # Identify's threshold is stricter than verify's: the top match is the point, above it or not.
    first_row = chrome.find_elements(By.CSS_SELECTOR, "#matches tr")[1].text
    assert first_row.startswith("1 George W Bush 0.")
    chrome.save_screenshot(str(tmp_path / "identify.png"))

    chrome.find_element(By.ID, "tab-identities").click()
    chrome.find_element(By.ID, "delete-identity").click()
    alert = _wait(chrome, ec.alert_is_present(), "the confirmation")
    assert "Delete George W Bush" in alert.text
    alert.accept()
    _wait(chrome, lambda d: not d.find_element(By.ID, "detail").is_displayed(), "the identity gone")
    search = chrome.find_element(By.ID, "search-name")
    search.clear()
    chrome.find_element(By.CSS_SELECTOR, "#search-form button").click()
    _wait(chrome, lambda d: "No identities yet" in _text(d, "identity-rows"), "an empty list")
    chrome.save_screenshot(str(tmp_path / "identities-after-delete.png"))
    assert not _csp_violations(chrome)


def test_with_auth_enabled_the_page_asks_for_a_key_and_shows_its_scope(chrome, tmp_path_factory, tmp_path):
    with LiveServer(
        tmp_path_factory.mktemp("browser-auth"), auth="enabled", api_keys_verify=VERIFY_KEY
    ) as live:
        chrome.get(live.url + "/ui/")
        chrome.execute_script("sessionStorage.clear()")
        _open(chrome, live.url + "/ui/")
        _wait(chrome, lambda d: d.find_element(By.ID, "auth").is_displayed(), "the key form")
        assert "needs an API key" in _text(chrome, "auth")
        chrome.save_screenshot(str(tmp_path / "auth-asks-for-key.png"))

        chrome.find_element(By.ID, "api-key").send_keys(VERIFY_KEY)
        chrome.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
        _wait(chrome, lambda d: "Key scope: verify" in _text(d, "service-status"), "the key's scope")
        assert chrome.execute_script("return sessionStorage.getItem('facever.apiKey')") == VERIFY_KEY
        assert chrome.execute_script("return localStorage.length") == 0
        chrome.find_element(By.ID, "tab-identities").click()
        assert "needs an API key with scope admin" in _text(chrome, "identities-scope")
        chrome.save_screenshot(str(tmp_path / "auth-verify-key.png"))
        chrome.execute_script("sessionStorage.clear()")


# -- a phone's screen, the numbers shown, errors, quality (issue 18, point 8) ----------------------

PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
# What sticks out sideways: the page (scrollWidth past the viewport), any element of <main> past the
# viewport's right edge, and any value of a result's list of numbers outside its box or broken over lines.
OVERFLOW_SCRIPT = """
const root = document.documentElement;
const width = root.clientWidth;
const problems = [];
if (root.scrollWidth > width) problems.push("the page is " + root.scrollWidth + " px wide");
for (const node of document.querySelectorAll("main *")) {
  const box = node.getBoundingClientRect();
  if (box.width && box.right > width + 0.5) {
    problems.push(node.tagName + "#" + node.id + "." + node.className + " ends at " + box.right);
  }
}
for (const value of document.querySelectorAll(".result dd")) {
  const owner = value.closest(".result").getBoundingClientRect();
  const range = document.createRange();
  range.selectNodeContents(value);
  const text = range.getBoundingClientRect();
  const lines = new Set(Array.from(range.getClientRects(), (rect) => Math.round(rect.top))).size;
  if (text.right > owner.right + 0.5) problems.push("'" + value.textContent + "' spills out of its box");
  if (lines > 1) problems.push("'" + value.textContent + "' is broken over " + lines + " lines");
}
return problems;
"""
PROBABILITY_STUB = """
const [probability] = arguments;
const realFetch = window.fetch.bind(window);
window.fetch = async (...args) => {
  const response = await realFetch(...args);
  if (!response.ok || !/verify|identify/.test(String(args[0]))) return response;
  const data = await response.json();
  if ("probability" in data) data.probability = probability;
  for (const match of data.matches || []) match.probability = probability;
  return new Response(JSON.stringify(data), { status: response.status, headers: response.headers });
};
"""


def _full_page_screenshot(driver, path: Path) -> None:
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    path.write_bytes(base64.b64decode(shot["data"]))


def _no_sideways_scrolling(driver, where: str, tmp_path: Path) -> None:
    _full_page_screenshot(driver, tmp_path / f"phone-{where}.png")
    assert driver.execute_script("return document.documentElement.clientWidth") == PHONE["width"]
    assert driver.execute_script(OVERFLOW_SCRIPT) == [], where


@pytest.fixture
def phone(chrome):
    # A window cannot be made this narrow in headless chromium: emulate the phone's screen instead.
    chrome.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    try:
        yield chrome
    finally:
        chrome.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def _no_face_photo(tmp_path: Path) -> Path:
    path = tmp_path / "wall.jpg"
    Image.new("RGB", (240, 240), (180, 170, 160)).save(path, "JPEG")
    return path


def _create_and_enroll(driver, name: str, *photos: Path) -> None:
    driver.find_element(By.ID, "tab-identities").click()
    driver.find_element(By.ID, "new-name").send_keys(name)
    driver.find_element(By.CSS_SELECTOR, "#create-form button[type=submit]").click()
    _wait(driver, lambda d: _text(d, "detail-title") == name, "the new identity")
    driver.find_element(By.ID, "enroll-images").send_keys("\n".join(str(photo) for photo in photos))
    driver.find_element(By.ID, "enroll-button").click()
    _wait(driver, lambda d: "enrolled," in _text(d, "enroll-results"), "the enrollment results")
    _wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#face-list li")) >= 1, "the faces")


def _delete_shown_identity(driver) -> None:
    driver.find_element(By.ID, "tab-identities").click()
    driver.find_element(By.ID, "delete-identity").click()
    _wait(driver, ec.alert_is_present(), "the confirmation").accept()
    _wait(driver, lambda d: not d.find_element(By.ID, "detail").is_displayed(), "the identity gone")


def _identify(driver, photo: Path) -> None:
    driver.find_element(By.ID, "tab-identify").click()
    driver.find_element(By.ID, "probe").send_keys(str(photo))
    driver.find_element(By.ID, "identify-button").click()
    _wait(
        driver,
        lambda d: _text(d, "identify-result").strip() or _text(d, "identify-error").strip(),
        "the identify answer",
    )


def test_every_tab_with_its_results_fits_a_phone_screen(phone, server, tmp_path):
    _open(phone, server.url + "/ui/")
    _no_sideways_scrolling(phone, "start", tmp_path)
    _verify(phone, BUSH_1, BUSH_2)
    _visible_text(phone, "verdict", "the verdict")
    _no_sideways_scrolling(phone, "verify", tmp_path)

    _create_and_enroll(phone, "George Walker Bush, 43rd President", BUSH_1, BUSH_2, SERENA)
    _no_sideways_scrolling(phone, "identities", tmp_path)
    try:
        _identify(phone, BUSH_2)
        assert len(phone.find_elements(By.CSS_SELECTOR, "#matches tr")) >= 2
        _no_sideways_scrolling(phone, "identify", tmp_path)
    finally:
        _delete_shown_identity(phone)
    _no_sideways_scrolling(phone, "identities-after-delete", tmp_path)
    assert not _csp_violations(phone)  # the crops are data: URLs, which img-src allows


def test_the_quality_of_each_face_is_shown(chrome, server, tmp_path):
    _open(chrome, server.url + "/ui/")
    _verify(chrome, BUSH_1, SERENA)
    result = _visible_text(chrome, "verify-result", "the verify result")
    assert re.search(r"Quality of the first photo\s+[01]\.\d\d", result), result
    assert re.search(r"Quality of the second photo\s+[01]\.\d\d", result), result

    _create_and_enroll(chrome, "Quality check", BUSH_1)
    try:
        accepted = _text(chrome, "enroll-results")
        assert re.search(r"George_W_Bush_0007\.jpg: accepted \(face \d+, quality [01]\.\d\d\)", accepted)
        # The face just enrolled: its quality and date, and its crop (cut in the browser from the photo
        # still there: the service keeps no image).
        today = chrome.execute_script(
            "const d = new Date(); return d.getFullYear() + '-' + String(d.getMonth() + 1).padStart(2, '0')"
            " + '-' + String(d.getDate()).padStart(2, '0')"
        )
        face = _text(chrome, "face-list")
        assert re.search(r"quality [01]\.\d\d", face) and f"enrolled {today}" in face, face
        crop = chrome.find_element(By.CSS_SELECTOR, "#face-list img")
        assert chrome.execute_script("return arguments[0].naturalWidth", crop) > 0
        # Opened again later (a reload forgets the photo): quality and date still, from the service.
        _open(chrome, server.url + "/ui/")
        chrome.find_element(By.ID, "tab-identities").click()
        _wait(chrome, lambda d: "Quality check" in _text(d, "identity-rows"), "the identity list")
        chrome.find_element(By.CSS_SELECTOR, "#identity-rows button[aria-label='Open Quality check']").click()
        _wait(chrome, lambda d: "enrolled" in _text(d, "face-list"), "the faces")
        face = _text(chrome, "face-list")
        assert re.search(r"quality [01]\.\d\d", face) and f"enrolled {today}" in face, face
        _full_page_screenshot(chrome, tmp_path / "identity-faces.png")

        _identify(chrome, BUSH_2)
        result = _visible_text(chrome, "identify-result", "the identify result")
        assert re.search(r"Quality of the photo\s+[01]\.\d\d", result), result
    finally:
        _delete_shown_identity(chrome)


@pytest.mark.parametrize(
    ("probability", "shown", "never"),
    [(0.99999, "> 99.9 %", "100.0 %"), (2.5e-7, "< 0.1 %", "0.0 %"), (0.5, "50.0 %", "> ")],
)
def test_probabilities_near_certainty_are_not_rounded_to_it(chrome, server, probability, shown, never):
    _open(chrome, server.url + "/ui/")
    _create_and_enroll(chrome, "Probability check", BUSH_1)
    try:
        chrome.execute_script(PROBABILITY_STUB, probability)
        _verify(chrome, BUSH_1, BUSH_2)
        result = _visible_text(chrome, "verify-result", "the verify result")
        assert f"Probability of the same person\n{shown}" in result and never not in result, result
        _identify(chrome, BUSH_2)
        row = chrome.find_elements(By.CSS_SELECTOR, "#matches tr")[1].text
        assert shown in row and never not in row, row
    finally:
        _delete_shown_identity(chrome)


def test_errors_are_said_once_in_plain_words(chrome, server, tmp_path):
    wall = _no_face_photo(tmp_path)
    _open(chrome, server.url + "/ui/")
    _verify(chrome, wall, BUSH_2)
    assert _visible_text(chrome, "verify-error", "the error") == "First photo: no face was found in it."
    _verify(chrome, BUSH_1, wall)
    assert _visible_text(chrome, "verify-error", "the error") == "Second photo: no face was found in it."
    _identify(chrome, wall)
    assert _visible_text(chrome, "identify-error", "the error") == "The photo: no face was found in it."

    _create_and_enroll(chrome, "Error check", BUSH_1, wall)
    try:
        results = _text(chrome, "enroll-results")
        assert "wall.jpg: rejected — no face was found in it." in results, results
        for field in ("image1", "image2", "images[", "FACEVER_"):
            assert field not in results
    finally:
        _delete_shown_identity(chrome)


def test_a_failed_compare_leaves_no_old_face_box(chrome, server, tmp_path):
    _open(chrome, server.url + "/ui/")
    pixels = "return arguments[0].toDataURL()"
    chrome.find_element(By.ID, "tab-verify").click()
    canvas = chrome.find_element(By.ID, "canvas1")
    blank = chrome.execute_script(pixels, canvas)
    chrome.find_element(By.ID, "image1").send_keys(str(BUSH_1))
    _wait(chrome, lambda d: d.execute_script(pixels, canvas) != blank, "the first photo drawn")
    photo_only = chrome.execute_script(pixels, canvas)
    _verify(chrome, BUSH_1, BUSH_2)
    _visible_text(chrome, "verdict", "the verdict")
    _wait(chrome, lambda d: d.execute_script(pixels, canvas) != photo_only, "the face box drawn")

    # Only the second photo changes: the first one's box belonged to the comparison that is gone.
    chrome.find_element(By.ID, "image2").send_keys(str(_no_face_photo(tmp_path)))
    chrome.find_element(By.ID, "verify-button").click()
    _visible_text(chrome, "verify-error", "the error")
    _wait(chrome, lambda d: d.execute_script(pixels, canvas) == photo_only, "the first photo without its box")
    chrome.save_screenshot(str(tmp_path / "verify-failed.png"))
