"""A real Chromium (Debian's chromium + chromium-driver) driven by Selenium, for the console's browser tests.

Selenium is always given the system driver and browser, so Selenium Manager never downloads anything.
Without them the browser tests are deselected, unless MAGNET_REQUIRE_BROWSER=1 (CI), where that fails.
"""
from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REQUIRED = os.environ.get("MAGNET_REQUIRE_BROWSER") == "1"


def browser_present() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


def start_chromium(width: int = 1280, height: int = 900):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # CSP violations are logged there
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    return driver
