"""A real browser as people meet the hubs: headless Chromium (Debian's chromium and chromium-driver,
driven by Selenium through /usr/bin/chromedriver; nothing is downloaded) opens each hub's URL
through the front door, logs in (the temporary login; GitHub's sign-in page of the fake GitHub),
waits for JupyterLab, opens a new notebook from the launcher, runs a cell and sees its output.

A screenshot of each final state is kept under tests/output/jupyterhub-browser/ (gitignored), and
on a failure a screenshot and the page's source of the moment. The tests remove the hub users they
made (and the private hub's system account), so the later tests are unaffected. Runs after
test_jupyterhub.py and before test_jupyterhub_culler.py, which must stay the last file."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait
from tests.jupyterhub.hub_client import HubClient, culler_token_command, delete_users

FRONT = "172.30.47.10"
PUBLIC = "public.hub.test"
PRIVATE = "private.hub.test"
FAKE_GITHUB = "http://172.30.47.10:9099"  # group_vars/all/main.yml: molecule_fake_github_url
MEMBER = "carol"  # a member of tess-research at the fake GitHub (prepare.yml), used only here

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "tests" / "output" / "jupyterhub-browser"
# Debian's packages (scripts/ensure-host-tools.sh): the browser itself, not /usr/bin/chromium, the
# wrapper that adds the flags of /etc/chromium.d; and the driver given explicitly, so Selenium
# Manager never runs (and SE_OFFLINE below forbids it any download if it did).
CHROMIUM = "/usr/lib/chromium/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",  # the checks run as root, where Chromium's sandbox refuses to start
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
    # The hubs' names go to the front door; every other name fails to resolve, and only the front
    # door's address (the hubs and the fake GitHub on port 9099) is left unmapped: the browser
    # reaches nothing but the scenario's node.
    f"--host-resolver-rules=MAP {PUBLIC} {FRONT}, MAP {PRIVATE} {FRONT}, MAP * ~NOTFOUND, EXCLUDE {FRONT}",
    "--no-proxy-server",
    # The scenario's front door serves a self-signed placeholder certificate (playbooks/frontdoor.yml
    # "Serve them (self-signed placeholder until a certificate exists ...)": no ACME CA in this
    # scenario), which no browser can verify; test_front_door_serves_a_self_signed_placeholder
    # checks that this is still so.
    "--ignore-certificate-errors",
    # Nothing of Chromium's own in the background (updates, sync, metrics, safe browsing, hints).
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--safebrowsing-disable-auto-update",
    "--metrics-recording-only",
    "--no-pings",
    "--no-first-run",
    "--no-default-browser-check",
    "--password-store=basic",
    "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication,"
    "CertificateTransparencyComponentUpdater,DialMediaRouteProvider",
]
# Generous but bounded: a spawn on the 2-core test machine while other checks run, JupyterLab's
# first load, a kernel's start.
SPAWN_S = 180
LAB_S = 120
KERNEL_S = 120
OUTPUT_S = 90

testinfra_hosts = ["mol-jh-hub"]


@pytest.fixture
def browser():
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager: no download, ever
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="jh-browser-")
    options = Options()
    options.binary_location = CHROMIUM
    for arg in [*CHROMIUM_ARGS, f"--user-data-dir={profile}"]:
        options.add_argument(arg)
    service = Service(executable_path=CHROMEDRIVER, log_output=str(ARTIFACTS / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@contextlib.contextmanager
def kept_on_failure(driver, name):
    """On a failure inside, a screenshot and the page's source beside the artifacts, and their paths."""
    try:
        yield
    except BaseException:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        shot, source = ARTIFACTS / f"{name}-FAILED-{stamp}.png", ARTIFACTS / f"{name}-FAILED-{stamp}.html"
        with contextlib.suppress(WebDriverException, OSError):
            driver.save_screenshot(str(shot))
            source.write_text(f"<!-- {driver.current_url} -->\n{driver.page_source}", encoding="utf-8")
            print(f"\nbrowser: {name} failed at {driver.current_url}; screenshot {shot}, page source {source}")
        raise


def screenshot(driver, name):
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"
    print(f"\nbrowser: {name}: final state in {path}")
    return path


# Chromium drops a page's requests with ERR_NETWORK_CHANGED when the host's interfaces change:
# the checks that run beside this scenario create and remove docker networks (bridges) on the
# same host. A person would press Reload; so does the test, a bounded number of times.
NETWORK_CHANGED_RELOADS = 5


def wait(driver, seconds, condition, message):
    reloads = []

    def checked(d):
        if len(reloads) < NETWORK_CHANGED_RELOADS and network_changed(d):
            reloads.append(d.current_url)
            print(f"\nbrowser: ERR_NETWORK_CHANGED at {d.current_url} (another check changed the host's networks): reloading")
            d.refresh()
            return False
        if len(reloads) < NETWORK_CHANGED_RELOADS and dismissed_unreachable_dialog(d):
            reloads.append(d.current_url)
            print("\nbrowser: JupyterLab lost a request to its server ('Server unavailable or unreachable'): dismissed")
            return False
        return condition(d)
    return WebDriverWait(driver, seconds, poll_frequency=0.5).until(checked, message)


def dismissed_unreachable_dialog(driver):
    """JupyterLab's 'Server unavailable or unreachable' dialog (a request to the server failed; the
    server itself runs) dismissed, as a person would; True when there was one."""
    with contextlib.suppress(WebDriverException):
        for dialog in driver.find_elements(By.CSS_SELECTOR, ".jp-Dialog"):
            if "Server unavailable or unreachable" in dialog.text:
                dialog.find_element(By.XPATH, ".//button[normalize-space()='Dismiss']").click()
                return True
    return False


def network_changed(driver):
    """The browser shows Chromium's error page for a network change (and nothing else)."""
    with contextlib.suppress(WebDriverException):
        if str(driver.execute_script("return document.URL")).startswith("chrome-error://"):
            return "ERR_NETWORK_CHANGED" in driver.find_element(By.TAG_NAME, "body").text
    return False


def lab_user(driver, server_name):
    """The user whose JupyterLab the browser shows (its URL /user/<name>/lab...), or None."""
    url = urlparse(driver.current_url)
    found = re.match(r"^/user/([^/]+)/lab", url.path)
    return found.group(1) if url.hostname == server_name and found else None


# JupyterLab's page with no application after this long: one of its scripts was lost (a network
# change drops subresources too, without an error page); reloaded, as a person would.
LAB_BLANK_S = 45


def wait_for_jupyterlab(driver, server_name):
    """Wait until the browser is in a user's JupyterLab with its launcher shown (the spawn, the
    pending page's redirect, the server's OAuth hand-shake and the app's load); returns the user."""
    blank = {"since": None, "reloads": 0}

    def ready(d):
        if lab_user(d, server_name) is None:
            blank["since"] = None
            return False
        if not d.find_elements(By.CSS_SELECTOR, ".jp-LabShell"):
            blank["since"] = blank["since"] or time.monotonic()
            if time.monotonic() - blank["since"] > LAB_BLANK_S and blank["reloads"] < NETWORK_CHANGED_RELOADS:
                print(f"\nbrowser: JupyterLab did not start at {d.current_url} within {LAB_BLANK_S} s (a script lost): reloading")
                blank.update(since=None, reloads=blank["reloads"] + 1)
                d.refresh()
            return False
        cards = d.find_elements(By.CSS_SELECTOR, '.jp-LauncherCard[data-category="Notebook"]')
        return cards[0] if cards and cards[0].is_displayed() else False
    wait(driver, SPAWN_S + LAB_S, ready, f"JupyterLab's launcher within {SPAWN_S + LAB_S} s")
    return lab_user(driver, server_name)


def kernel_idle(driver):
    """The open notebook's kernel is connected and idle (the status bar says '... | Idle', or the
    toolbar's execution indicator has data-status=idle)."""
    for item in driver.find_elements(By.CSS_SELECTOR, ".jp-StatusBar-Widget, .jp-StatusBar-TextItem"):
        if re.search(r"\|\s*Idle\b", item.text):
            return True
    return bool(driver.find_elements(By.CSS_SELECTOR, '.jp-Notebook-ExecutionIndicator[data-status="idle"]'))


def run_cell_in_a_new_notebook(driver, code):
    """From the launcher: a new Python notebook, code typed into its first cell and run with
    Shift+Enter; returns the text of the cell's output once it is there."""
    card = wait(driver, LAB_S, EC.element_to_be_clickable((By.CSS_SELECTOR, '.jp-LauncherCard[data-category="Notebook"]')),
                "the launcher's notebook card")
    card.click()
    panel = ".jp-NotebookPanel:not(.lm-mod-hidden)"
    editor = wait(driver, LAB_S, EC.element_to_be_clickable((By.CSS_SELECTOR, f"{panel} .jp-Cell .cm-content")),
                  "the new notebook's first cell")
    wait(driver, KERNEL_S, kernel_idle, f"the notebook's kernel idle within {KERNEL_S} s")
    editor.click()
    editor.send_keys(code)
    ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()

    def output(d):
        texts = [e.text.strip() for e in d.find_elements(By.CSS_SELECTOR, f"{panel} .jp-Cell .jp-OutputArea-output")]
        return next((t for t in texts if t), False)
    return wait(driver, OUTPUT_S, output, f"the cell's output within {OUTPUT_S} s")


def test_front_door_serves_a_self_signed_placeholder(host):
    """Why the browser may ignore certificate errors: the front door's certificate for both names is
    the self-signed placeholder (issuer = subject), not one a CA issued."""
    for name in (PUBLIC, PRIVATE):
        out = host.check_output(f"echo | openssl s_client -connect 127.0.0.1:443 -servername {name} 2>/dev/null"
                                " | openssl x509 -noout -issuer -subject -nameopt RFC2253")
        issuer, subject = (line.split("=", 1)[1].strip() for line in out.splitlines()[:2])
        assert issuer == subject, out


def test_public_hub_in_a_browser(host, browser):
    user = None
    try:
        with kept_on_failure(browser, "public"):
            browser.get(f"https://{PUBLIC}/")
            user = wait_for_jupyterlab(browser, PUBLIC)  # the temporary login needs no click: it is the hub's auto-login
            out = run_cell_in_a_new_notebook(browser, "print(6*7)")
            assert out == "42", out
            wait(browser, 10, lambda d: "[1]:" in d.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) "
                                                                      ".jp-InputPrompt").text, "the cell's prompt [1]:")
            screenshot(browser, "public-hub-notebook")
    finally:
        if user:
            token = host.check_output(culler_token_command("public"))
            assert delete_users(FRONT, PUBLIC, token, [user]) == [], f"{user} not deleted"
    assert not host.service(f"jupyter-public-{user}").is_running
    assert not host.file(f"/var/lib/private/{user}").exists, "the temporary user's state directory went with it"


def test_private_hub_in_a_browser_after_the_github_login(host, browser):
    signed_in = False
    try:
        with kept_on_failure(browser, "private"):
            browser.get(f"https://{PRIVATE}/")
            wait(browser, 30, lambda d: urlparse(d.current_url).path.startswith("/hub/login"), "the login page")
            link = wait(browser, 30, EC.element_to_be_clickable((By.PARTIAL_LINK_TEXT, "Sign in with GitHub")),
                        "the 'Sign in with GitHub' button")
            link.click()
            # the fake GitHub's sign-in page (tests/jupyterhub/fake_github.py): a login field and a button
            wait(browser, 30, lambda d: d.current_url.startswith(f"{FAKE_GITHUB}/login/oauth/authorize"),
                 "GitHub's sign-in page")
            field = wait(browser, 30, EC.element_to_be_clickable((By.NAME, "login")), "the sign-in page's login field")
            field.send_keys(MEMBER)
            signed_in = True
            browser.find_element(By.XPATH, "//button[normalize-space()='Sign in']").click()
            assert wait_for_jupyterlab(browser, PRIVATE) == MEMBER
            out = run_cell_in_a_new_notebook(browser, "import getpass; print(getpass.getuser(), 6*7)")
            assert out == f"jupyter-{MEMBER} 42", out
            screenshot(browser, "private-hub-notebook")
    finally:
        if signed_in:
            admin = HubClient(FRONT, PRIVATE)
            admin.github_login("hub-admin")
            assert delete_users(FRONT, PRIVATE, admin.new_token("browser test clean-up"), [MEMBER]) == []
            # the system account the hub made for the login (a persistent home: removed, as only this test used it)
            host.run_expect([0, 6], f"userdel --remove jupyter-{MEMBER}")
    assert not host.service(f"jupyter-private-{MEMBER}").is_running
    assert not host.user(f"jupyter-{MEMBER}").exists
