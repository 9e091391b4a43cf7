"""The page end to end in a real headless Chromium (Debian's chromium + chromium-driver, via Selenium)."""

import os
import threading

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from cgan.model import model_files, networks

from cgan.share import serve

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--window-size=1200,900")

pytestmark = pytest.mark.skipif(
    not (os.path.isfile(CHROMIUM) and os.path.isfile(CHROMEDRIVER)),
    reason=f"{CHROMIUM} or {CHROMEDRIVER} is missing: apt-get install chromium chromium-driver "
           f"(.ci/run installs them)")


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    generator = networks.build_generator(64, latent_dim=8, num_classes=3)
    info = {"class_names": ["actinic_keratosis", "basal_cell_carcinoma", "melanoma"], "latent_dim": 8,
            "resolution": 64, "step": 1234}
    model_files.save_models(str(workdir), generator, generator, info)
    httpd = serve.make_server(*model_files.load_generator(str(workdir / model_files.GENERATOR_FILE)), port=0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    # The driver's path is given, so Selenium Manager never runs (it would try to download one).
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def open_page(browser, url):
    browser.get(url)
    WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "generate").is_enabled())


def fill(browser, element_id, text):
    field = browser.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(text)


def test_generate_a_grid_by_class_name(browser, page_url):
    open_page(browser, page_url)
    meta = browser.find_element(By.ID, "meta").text
    assert "64×64" in meta and "Training step 1,234" in meta
    assert [o.text for o in Select(browser.find_element(By.ID, "label")).options] == [
        "actinic keratosis (0)", "basal cell carcinoma (1)", "melanoma (2)"]
    Select(browser.find_element(By.ID, "label")).select_by_visible_text("melanoma (2)")
    fill(browser, "seed", "3")
    fill(browser, "num", "5")
    fill(browser, "truncation", "0.7")
    browser.find_element(By.ID, "generate").click()
    grid = browser.find_element(By.ID, "grid")
    WebDriverWait(browser, 60).until(lambda b: grid.is_displayed() and grid.get_property("naturalWidth") > 0)
    assert (grid.get_property("naturalWidth"), grid.get_property("naturalHeight")) == (3 * 66 - 2, 2 * 66 - 2)
    assert browser.find_element(By.ID, "caption").text == "melanoma · seeds 3–7 · truncation 0.7"
    assert not browser.find_element(By.ID, "error").is_displayed()
    assert browser.find_element(By.ID, "grid-link").get_attribute("href") == \
        page_url + "api/grid.png?label=melanoma&seed=3&num=5&truncation=0.7"
    seed_links = browser.find_elements(By.CSS_SELECTOR, "#seed-links a")
    assert [a.text for a in seed_links] == [f"seed {s}" for s in range(3, 8)]
    assert seed_links[0].get_attribute("href") == page_url + "api/image.png?label=melanoma&seed=3&truncation=0.7"


@pytest.mark.parametrize("field,text,message", [
    ("num", "65", "num=65 is out of range: use an integer from 1 to 64"),
    ("truncation", "abc", "truncation='abc' is not a number"),
    ("seed", "-4", "seed=-4 is negative"),
])
def test_bad_input_shows_the_error_on_the_page(browser, page_url, field, text, message):
    open_page(browser, page_url)
    fill(browser, field, text)
    browser.find_element(By.ID, "generate").click()
    error = browser.find_element(By.ID, "error")
    WebDriverWait(browser, 60).until(lambda b: error.is_displayed())
    assert message in error.text
    assert not browser.find_element(By.ID, "grid").is_displayed()
