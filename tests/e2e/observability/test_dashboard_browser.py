"""The built-in dashboard in a real headless Chromium, after real traffic through the gateway.

A staff user logs in through the admin, follows the admin index's link, and the page's charts
must be drawn by the vendored Chart.js (served from static files: the browser has no network).
"""

import os

import pytest
from django.contrib.auth import get_user_model

from budgets.models import UsageRecord
from tests.e2e.observability.conftest import binary_or_skip

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                  "--window-size=1400,2400")


@pytest.fixture
def browser(tmp_path):
    """A headless Chromium driven through Debian's chromedriver; quit on teardown."""
    chromium = binary_or_skip("chromium")
    chromedriver = binary_or_skip("chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Never let Selenium Manager try to download a driver or a browser: the network is closed.
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


# For every chart: drawn by Chart.js, and at least one painted pixel on its canvas.
_CHART_STATE = """
return Array.from(document.querySelectorAll('canvas[data-chart]')).map(function (canvas) {
  var chart = window.Chart && Chart.getChart(canvas);
  var pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  var painted = 0;
  for (var i = 3; i < pixels.length; i += 4) { if (pixels[i] > 0) { painted++; } }
  return {id: canvas.id, drawn: !!chart, points: chart ? chart.data.datasets.reduce(
    function (n, d) { return n + d.data.length; }, 0) : 0, painted: painted};
});
"""


def log_in_to_the_admin(browser, live_gateway) -> None:
    """Create a superuser and log in through the admin's login page, landing on its index."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    get_user_model().objects.create_superuser("ops", "ops@example.com", "a-long-passphrase")
    browser.get(f"{live_gateway.url}/admin/login/?next=/admin/")
    browser.find_element(By.NAME, "username").send_keys("ops")
    browser.find_element(By.NAME, "password").send_keys("a-long-passphrase")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, 15).until(ec.presence_of_element_located(
        (By.ID, "llmops-dashboard-link")))


def assert_no_script_errors(browser) -> None:
    """Script errors or a missing static file would show here (the site has no favicon)."""
    errors = [entry for entry in browser.get_log("browser")
              if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]]
    assert not errors, errors


def test_staff_see_live_numbers_and_rendered_charts(gateway_traffic, live_gateway, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    log_in_to_the_admin(browser, live_gateway)

    browser.find_element(By.LINK_TEXT, "Usage dashboard").click()
    WebDriverWait(browser, 15).until(
        lambda driver: driver.find_element(By.TAG_NAME, "body").get_attribute(
            "data-charts-rendered") == "6")

    assert browser.find_element(By.ID, "kpi-requests").text == str(UsageRecord.objects.count())
    cost = sum(float(r.cost) for r in UsageRecord.objects.all())
    spend = browser.find_element(By.ID, "kpi-cost").text  # "$0.000120": dollars, 6 decimals
    assert float(spend.lstrip("$").replace(",", "")) == pytest.approx(cost, abs=1e-6)
    assert browser.find_element(By.ID, "kpi-hit-rate").text.endswith("%")

    charts = browser.execute_script(_CHART_STATE)
    assert len(charts) == 6
    for chart in charts:
        assert chart["drawn"] and chart["points"] > 0 and chart["painted"] > 0, chart
    assert_no_script_errors(browser)


def test_staff_see_the_savings_page_with_rendered_charts(gateway_traffic, live_gateway,
                                                         browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    log_in_to_the_admin(browser, live_gateway)

    browser.find_element(By.LINK_TEXT, "Savings").click()
    WebDriverWait(browser, 15).until(
        lambda driver: driver.find_element(By.TAG_NAME, "body").get_attribute(
            "data-charts-rendered") == "2")
    cost = sum(float(r.cost) for r in UsageRecord.objects.all())
    spend = browser.find_element(By.ID, "kpi-spend").text
    assert float(spend.lstrip("$").replace(",", "")) == pytest.approx(cost, abs=1e-6)
    charts = browser.execute_script(_CHART_STATE)
    assert [chart["id"] for chart in charts] == ["chart-savings", "chart-savings-per-period"]
    for chart in charts:
        assert chart["drawn"] and chart["points"] > 0 and chart["painted"] > 0, chart
    assert_no_script_errors(browser)
