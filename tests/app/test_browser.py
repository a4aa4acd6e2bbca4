"""The web page in a real browser: Debian's chromium, headless, driven by Selenium through Debian's
chromedriver, against a real ``facever serve``. Screenshots of each page go to the test's tmp_path.

Needs the apt packages chromium and chromium-driver (`.ci/run` installs them); skipped without them,
except where FACEVER_TEST_REQUIRE_BROWSER=1 (CI) makes that a failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from live_server import LiveServer

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


def test_a_phone_sized_screen_has_no_sideways_scrolling(chrome, server, tmp_path):
    # A window cannot be made this narrow in headless chromium: emulate the phone's screen instead.
    metrics = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
    chrome.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        _open(chrome, server.url + "/ui/")
        _verify(chrome, BUSH_1, BUSH_2)
        _visible_text(chrome, "verdict", "the verdict")
        overflow = chrome.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert chrome.execute_script("return document.documentElement.clientWidth") == 390
        assert overflow <= 1
        chrome.save_screenshot(str(tmp_path / "verify-phone.png"))
    finally:
        chrome.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


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
