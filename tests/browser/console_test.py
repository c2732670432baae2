"""The console in a real browser (`make test-browser`, part of `make test`):
Debian's chromium, headless, driven through chromium-driver by selenium. It
opens the URL `eventlake console` prints and does what a person would: sees the
lake's event types, runs a ready query and sees its rows and a drawn chart,
starts two producers and sees their counts rise and their states go through
`shutting down` to `stopped`, replays a rejected record and finds it in the
lake, traces an event. Screenshots of each panel go to SCREENSHOTS (look at
them). Expected figures come from the inputs this script writes.

usage: console_test.py EVENTLAKE SCREENSHOTS_DIR
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

# A record rejected for a producer clock that is off (ingest --max-age-days 30),
# replayable into the lake once the window is open.
LATE = {"event_uuid": "0d9e1a52-8c0f-4d7e-9b43-2f1c6a7e5b10", "event_name": "late:arrival",
        "created_at": 1710689696, "note": "clock off"}


def build_lake(eventlake, work):
    """A week of generated events up to today, a record with no event_name,
    and the late record: the lake, and the event types ingested."""
    lake = os.path.join(work, "lake")
    events = subprocess.run([eventlake, "generate", "--events", "6000", "--seed", "5", "--types", "7",
                             "--start", "today-6", "--days", "7", "--duplicates", "0", "--invalid", "0"],
                            check=True, capture_output=True).stdout
    broken = b'{"event_uuid":"b941dd91-03ea-43ca-af11-1eb98e2cf1b7","created_at":1710689696}\n'
    path = os.path.join(work, "events.ndjson")
    with open(path, "wb") as f:
        f.write(events + broken)
    subprocess.run([eventlake, "ingest", "--quiet", "--lake", lake, path], check=True, capture_output=True)
    late = os.path.join(work, "late.ndjson")
    with open(late, "w") as f:
        f.write(json.dumps(LATE) + "\n")
    subprocess.run([eventlake, "ingest", "--quiet", "--max-age-days", "30", "--lake", lake, late], check=True,
                   capture_output=True)
    types = {json.loads(line)["event_name"].split(":")[0] for line in events.decode().splitlines()}
    return lake, types, events.decode().splitlines()[0]


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                     "--disable-gpu"):
        options.add_argument(argument)
    # The driver Debian installs: nothing is downloaded (no Selenium Manager).
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(options=options, service=service)


def wait(driver, what, condition, timeout=60):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: condition(d))
    except Exception as error:
        raise AssertionError(f"{what}: {error!r}; page error: {driver.find_element(By.ID, 'error').text!r}") from None


def cells(driver, selector):
    """The text of the elements `selector` finds, read in one script call."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent);", selector)


def shoot(driver, directory, name):
    path = os.path.join(directory, f"{name}.png")
    driver.save_screenshot(path)
    return path


def producer_rows(driver):
    """The producers' rows as shown, read in one script call (the panel redraws
    them every second, so elements found one by one may go stale)."""
    rows = driver.execute_script(
        "return [...document.querySelectorAll('#producers tbody tr')].map(r => ({id: r.dataset.producer,"
        " state: r.dataset.state, states: r.dataset.states, events: r.querySelector('td.events').textContent}));")
    return {row["id"]: {"state": row["state"], "states": row["states"], "events": int(row["events"].replace(",", ""))}
            for row in rows}


def click_stop(driver, producer):
    driver.execute_script(
        "document.querySelector(`#producers tr[data-producer='${arguments[0]}'] button`).click();", producer)


def main():
    eventlake, screenshots = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    os.makedirs(screenshots, exist_ok=True)
    work = tempfile.mkdtemp(prefix="eventlake-console-")
    console = None
    driver = None
    try:
        lake, types, first_event = build_lake(eventlake, work)
        console = subprocess.Popen([eventlake, "console", "--listen", "127.0.0.1:0", "--lake", lake],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = console.stdout.readline()
        url = next(word for word in line.split() if word.startswith("http://"))
        driver = browser()
        driver.get(url)

        # Lake: the event types ingested, as rows of the types x days table.
        wait(driver, "the lake's event types", lambda d: len(cells(d, "#lake-types tbody tr td:first-child")) >= len(types))
        shown = set(cells(driver, "#lake-types tbody tr td:first-child"))
        assert shown == types, (shown, types)
        reasons = cells(driver, "#lake-rejected tbody tr td:first-child")
        assert sorted(reasons) == ["created_at_implausible", "missing_field"], reasons
        shots = [shoot(driver, screenshots, "lake")]

        # Query: a ready query, its rows and a drawn chart.
        driver.find_element(By.CSS_SELECTOR, 'nav a[data-panel="query"]').click()
        wait(driver, "the ready queries", lambda d: d.find_elements(By.CSS_SELECTOR, '[data-query="events_per_type_per_day"]'))
        driver.find_element(By.CSS_SELECTOR, '[data-query="events_per_type_per_day"]').click()
        wait(driver, "the query's rows", lambda d: len(d.find_elements(By.CSS_SELECTOR, "#result-table tbody tr")) > 0)
        header = cells(driver, "#result-table thead th")
        assert header == ["event_type", "created_date", "events"], header
        rows = driver.find_elements(By.CSS_SELECTOR, "#result-table tbody tr")
        total = sum(int(row.find_elements(By.TAG_NAME, "td")[2].text.replace(",", "")) for row in rows)
        assert total == 6000, f"the week's events: {total}"
        wait(driver, "a drawn chart", lambda d: d.find_element(By.ID, "result-chart").get_attribute("data-kind") in ("bars", "line")
             and d.find_elements(By.CSS_SELECTOR, "#result-chart canvas"))
        canvas = driver.find_element(By.CSS_SELECTOR, "#result-chart canvas")
        assert canvas.size["width"] > 300 and canvas.size["height"] > 100, canvas.size
        painted = driver.execute_script(
            "const c = arguments[0]; const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;", canvas)
        assert painted > 1000, f"the chart's canvas has {painted} painted pixels"
        driver.find_element(By.ID, "query-editor").clear()
        driver.find_element(By.ID, "query-editor").send_keys(
            "SELECT created_date, count(*) AS events FROM events GROUP BY created_date ORDER BY created_date")
        driver.find_element(By.ID, "run-query").click()
        wait(driver, "a time series as a line", lambda d: d.find_element(By.ID, "result-chart").get_attribute("data-kind") == "line")
        shots.append(shoot(driver, screenshots, "query"))

        # Live: two producers; their counts rise; stopped, through shutting down.
        driver.find_element(By.CSS_SELECTOR, 'nav a[data-panel="live"]').click()
        rate = driver.find_element(By.ID, "producer-rate")
        rate.clear()
        rate.send_keys("300")
        driver.find_element(By.ID, "start-producer").click()
        wait(driver, "producer 1", lambda d: "1" in producer_rows(d))
        driver.find_element(By.ID, "start-producer").click()
        wait(driver, "two producers making events", lambda d: len(producer_rows(d)) == 2 and all(
            p["events"] > 0 for p in producer_rows(d).values()))
        before = producer_rows(driver)
        wait(driver, "their counts rising", lambda d: all(
            producer_rows(d)[k]["events"] > before[k]["events"] for k in before))
        assert all(p["state"] == "running" for p in producer_rows(driver).values())
        wait(driver, "the rates chart", lambda d: d.find_elements(By.CSS_SELECTOR, "#rate-chart canvas"))
        shots.append(shoot(driver, screenshots, "live"))
        for producer in before:
            click_stop(driver, producer)
        wait(driver, "both stopped", lambda d: all(p["state"] == "stopped" for p in producer_rows(d).values()))
        for producer in producer_rows(driver).values():
            assert producer["states"] == "running,shutting down,stopped", producer
        shots.append(shoot(driver, screenshots, "live-stopped"))

        # Rejected: replay the late record; then trace it into the lake.
        driver.find_element(By.CSS_SELECTOR, 'nav a[data-panel="rejected"]').click()
        wait(driver, "the rejected records", lambda d: len(d.find_elements(By.CSS_SELECTOR, "#rejected-records tbody tr")) >= 2)
        for row in driver.find_elements(By.CSS_SELECTOR, "#rejected-records tbody tr"):
            if LATE["event_uuid"] in row.find_element(By.CSS_SELECTOR, "td.record").text:
                row.find_element(By.CSS_SELECTOR, "input[type=checkbox]").click()
        driver.find_element(By.ID, "replay-selected").click()
        wait(driver, "the replay's result", lambda d: "1 added" in d.find_element(By.ID, "replay-status").text)
        shots.append(shoot(driver, screenshots, "rejected"))

        driver.find_element(By.CSS_SELECTOR, 'nav a[data-panel="trace"]').click()
        for uuid, partition in ((LATE["event_uuid"], "event_type=late/created_date=2024-03-17"),
                                (json.loads(first_event)["event_uuid"], None)):
            box = driver.find_element(By.ID, "trace-uuid")
            box.clear()
            box.send_keys(uuid)
            driver.find_element(By.CSS_SELECTOR, "#trace-form button").click()
            wait(driver, f"the trace of {uuid}", lambda d, u=uuid: u.lower() in d.find_element(By.ID, "trace-result").text)
            copies = driver.find_elements(By.CSS_SELECTOR, "#trace-copies tbody tr")
            assert len(copies) == 1, driver.find_element(By.ID, "trace-result").text
            if partition:
                assert copies[0].find_elements(By.TAG_NAME, "td")[0].text == partition
        shots.append(shoot(driver, screenshots, "trace"))

        # Back on the lake: the replayed type is there now.
        driver.find_element(By.CSS_SELECTOR, 'nav a[data-panel="lake"]').click()
        wait(driver, "the replayed event's type", lambda d: "late" in cells(d, "#lake-types tbody tr td:first-child"))
        logs = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert not logs, logs
        print(f"console in chromium: lake, ready query with a chart, two producers started and stopped, a replay "
              f"and two traces; screenshots: {', '.join(os.path.relpath(s) for s in shots)}")
    finally:
        if driver is not None:
            driver.quit()
        if console is not None:
            console.kill()
            console.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
