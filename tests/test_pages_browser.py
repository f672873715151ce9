"""The course's pages in a real headless browser: Selenium driving Debian's chromium and chromedriver.

A real server (uvicorn in a thread, loopback, free port) for a small course: a
team signs in, hands in a valid file and sees its receipt, an invalid one and
sees its hint, chooses its final, sees the board; the instructor signs in and
reveals (through the confirmation page). No console message of level SEVERE
(errors, CSP violations) on any page, nothing overflows sideways at phone
width, and screenshots are kept in ``$BRATS_KIT_ARTIFACTS`` or ``test-artifacts/``.
Skipped with the reason when no browser or driver is installed (``.ci/run`` installs them).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from brats_kit.server.run import ServerThread
from data_spec import load_truth
from data_spec.submission import write_submission
from grader.isolation import IsolatedScorer
from test_server_support import Clock, make_course, shifted

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and os.path.exists(p)), None)
DRIVER = next((p for p in ("/usr/bin/chromedriver", shutil.which("chromedriver") or "") if p and os.path.exists(p)),
              None)
try:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.expected_conditions import staleness_of
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - selenium is a test dependency
    webdriver = None

_REASON = ("selenium is not installed" if webdriver is None else
           "chromium is not installed (apt-get install chromium; .ci/run does it)" if CHROMIUM is None else
           "chromedriver is not installed (apt-get install chromium-driver; .ci/run does it)" if DRIVER is None else
           None)
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--disable-dev-shm-usage", "--window-size=1100,1400"]


def artifacts() -> Path:
    out = Path(os.environ.get("BRATS_KIT_ARTIFACTS", "test-artifacts"))
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.implicitly_wait(5)  # a click's navigation may still be loading when the next element is looked up
    try:
        yield driver
    finally:
        driver.quit()


def severe(driver) -> list:
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def no_sideways_overflow(driver) -> bool:
    # Tables scroll inside their own box; the page itself must fit a phone's width.
    wide = driver.execute_script(
        "const w = document.documentElement.clientWidth;"
        "return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > w + 1"
        " && !e.closest('.scroll, .fig')).map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 5)")
    assert wide == [], f"wider than the screen: {wide}"
    return driver.execute_script(
        "return document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def click_and_wait(driver, by, value):
    """Click what submits a form or follows a link, and wait until the next page replaced this one."""
    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(by, value).click()
    WebDriverWait(driver, 15).until(staleness_of(old))
    WebDriverWait(driver, 15).until(lambda d: d.execute_script("return document.readyState") == "complete")


def sign_in(driver, url, token):
    driver.get(url + "/")
    driver.find_element(By.ID, "token").send_keys(token)
    click_and_wait(driver, By.ID, "signin")


def test_a_team_hands_in_chooses_finals_and_the_instructor_reveals(tmp_path, competition, browser):
    truth = load_truth(competition / "private")
    good, bad = tmp_path / "pred.npy", tmp_path / "pred255.npy"
    write_submission(good, shifted(truth.y, 3))
    np.save(bad, truth.y * np.uint8(255))
    root, tok, admin = make_course(tmp_path, competition, teams=("Team Öst", "beta"), deadline="2026-12-15T23:59:00+01:00")
    out = artifacts()
    d = browser
    with IsolatedScorer(competition / "private", workers=1, timeout=30) as scorer, \
            ServerThread(root, clock=Clock(), scorer=scorer) as server:
        url = server.url
        sign_in(d, url, tok["Team Öst"])
        assert d.current_url == url + "/team"
        d.find_element(By.ID, "file").send_keys(str(good))
        click_and_wait(d, By.ID, "upload")
        receipt = d.find_element(By.ID, "receipt").text
        assert "is scored" in receipt and "Public Dice" in receipt
        d.find_element(By.ID, "file").send_keys(str(bad))
        click_and_wait(d, By.ID, "upload")
        receipt = d.find_element(By.ID, "receipt").text
        assert "is invalid" in receipt and "bad_values" in receipt and "divide by 255" in receipt
        d.find_element(By.CSS_SELECTOR, "input[name=final][value='1']").click()
        click_and_wait(d, By.ID, "finals")
        assert "Finals: 1" in d.find_element(By.ID, "message").text
        click_and_wait(d, By.LINK_TEXT, "report")
        assert "Dice per public slice" in d.find_element(By.ID, "report").text
        d.save_screenshot(str(out / "pages_team.png"))
        d.set_window_size(390, 844)
        assert no_sideways_overflow(d), "the team page overflows sideways at 390 px"
        d.get(url + "/leaderboard")
        assert "Team Öst" in d.find_element(By.ID, "board").text
        assert no_sideways_overflow(d), "the board overflows sideways at 390 px"
        d.save_screenshot(str(out / "pages_board_phone.png"))
        d.set_window_size(1100, 1400)
        assert severe(d) == []
        click_and_wait(d, By.ID, "signout")
        assert d.current_url == url + "/"

        sign_in(d, url, admin)  # one token box: the server knows it is the instructor's
        assert d.current_url == url + "/admin"
        assert "bad_values" in d.find_element(By.ID, "codes").text
        assert "chain intact" in d.find_element(By.ID, "audit").text
        d.save_screenshot(str(out / "pages_dashboard.png"))
        click_and_wait(d, By.ID, "reveal-link")
        # Before the deadline the page asks a second time, naming it.
        assert "2026-12-15 23:59 UTC+01:00" in d.find_element(By.ID, "before-deadline").find_element(By.XPATH, "..").text
        d.find_element(By.ID, "before-deadline").click()
        click_and_wait(d, By.ID, "confirm-reveal")
        assert "revealed" in d.find_element(By.ID, "message").text
        d.get(url + "/leaderboard")
        assert "Final (private) board" in d.find_element(By.TAG_NAME, "h1").text
        d.save_screenshot(str(out / "pages_board_revealed.png"))
        assert severe(d) == [], "console errors (or CSP violations) on the pages"
    print(f"screenshots in {out.resolve()}")


def inside(driver, element) -> bool:
    """Shown and wholly inside the viewport's width (no sideways swipe to see it)."""
    return driver.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return r.width > 0 && r.left >= -1 && r.right <= document.documentElement.clientWidth + 1", element)


def test_what_matters_fits_a_phone_and_a_laptop_after_the_reveal(tmp_path, competition, browser):
    # Issue 21 item 7: at 390 and 1280 px the team page's rows (number, scores, final, download and report)
    # and the final board's rank, team and score are inside the viewport; at 1280 px "Submitted" too.
    truth = load_truth(competition / "private")
    good, bad = tmp_path / "pred.npy", tmp_path / "pred255.npy"
    write_submission(good, shifted(truth.y, 3))
    np.save(bad, truth.y * np.uint8(255))
    teams = ("Team Öst", "a rather long team name for a phone", "gamma")
    root, tok, admin = make_course(tmp_path, competition, teams=teams)
    out = artifacts()
    d = browser
    with IsolatedScorer(competition / "private", workers=1, timeout=30) as scorer, \
            ServerThread(root, clock=Clock(), scorer=scorer, board_interval_s=0.05) as server:
        url = server.url
        for team in teams[:2]:
            sign_in(d, url, tok[team])
            for path in (good, bad, good):
                d.find_element(By.ID, "file").send_keys(str(path))
                click_and_wait(d, By.ID, "upload")
            click_and_wait(d, By.ID, "signout")
        sign_in(d, url, admin)
        click_and_wait(d, By.ID, "reveal-link")
        click_and_wait(d, By.ID, "confirm-reveal")
        assert server.app.state.board.wait_current(timeout=120)
        for width, height in ((390, 844), (1280, 900)):
            d.set_window_size(width, height)
            d.get(url + "/admin")
            assert no_sideways_overflow(d), width
            d.save_screenshot(str(out / f"dashboard_{width}.png"))
        click_and_wait(d, By.ID, "signout")
        sign_in(d, url, tok[teams[1]])
        for width, height in ((390, 844), (1280, 900)):
            d.set_window_size(width, height)
            d.get(url + "/team")
            assert "The competition is over" in d.find_element(By.ID, "over").text
            rows = d.find_elements(By.CSS_SELECTOR, "#submissions tbody tr")
            assert len(rows) == 3
            for row in rows:
                for label in ("#", "Status", "Public Dice", "Private Dice", "Final", "File"):
                    cell = row.find_element(By.CSS_SELECTOR, f'td[data-label="{label}"]')
                    assert inside(d, cell), (width, label)
                for link in row.find_elements(By.TAG_NAME, "a"):
                    assert inside(d, link), (width, link.text)
            assert no_sideways_overflow(d), width
            d.save_screenshot(str(out / f"team_page_{width}.png"))
            d.get(url + "/leaderboard")
            board = d.find_elements(By.CSS_SELECTOR, "#board tbody tr.team")
            assert len(board) == 2 and d.find_element(By.CSS_SELECTOR, "#board tbody tr.absent")
            heads = [h for h in d.find_elements(By.CSS_SELECTOR, "#board thead th") if inside(d, h)]
            shown = [h.text for h in heads]
            assert {"Rank", "Team", "Dice (private)"} <= set(shown), (width, shown)
            for row in board:
                cells = row.find_elements(By.TAG_NAME, "td")
                assert all(inside(d, c) for c in cells[:1]) and any(inside(d, c) and c.text.startswith("0.")
                                                                  for c in cells), width
                assert inside(d, row.find_element(By.CSS_SELECTOR, "td.team")), width
            for cell in d.find_elements(By.CSS_SELECTOR, "#problems td"):
                assert inside(d, cell), width
            if width == 1280:
                assert "Submitted (UTC)" in shown  # once hidden past the table's box at 1280 px
            assert no_sideways_overflow(d), width
            d.save_screenshot(str(out / f"board_{width}.png"))
        assert severe(d) == []
