#!/usr/bin/env python3
"""Measures the web UI's pipeline page and Freight timeline against /healthz
(bench/ui-page.sh sets up the pipeline): server time over HTTP, Chromium's
navigation-to-load over WebDriver, page weight. The timeline is measured at its newest page
and at its 11th (Freight 501 to 550, reached by following its "Older" links).

    ui-page.py BASE_URL TOKEN"""
import gzip
import html
import json
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request

base, token = sys.argv[1], sys.argv[2]
pipeline_page = "/projects/bench"
timeline_page = "/projects/bench/freight"


def api(path):
    req = urllib.request.Request(base + "/api/v1" + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


warehouses = api("/projects/bench/warehouses")["items"]
print(f"freight: {sum(w['status']['barge']['freight'] for w in warehouses)}")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


def sign_in():
    body = urllib.parse.urlencode({"token": token, "next": "/"}).encode()
    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(urllib.request.Request(base + "/sign-in", data=body, method="POST"))
    except urllib.error.HTTPError as e:
        return e.headers["Set-Cookie"].split(";")[0]
    raise SystemExit("sign-in did not redirect")


cookie = sign_in()


def get(path):
    req = urllib.request.Request(base + path, headers={"Cookie": cookie})
    start = time.perf_counter()
    with urllib.request.urlopen(req) as r:
        data = r.read()
    return time.perf_counter() - start, data


def median_ms(path, n=20):
    get(path)
    return statistics.median(get(path)[0] for _ in range(n)) * 1000



def older(path):
    """The timeline page after `path`, by its "Older" link."""
    found = re.search(rb'<a href="([^"]*)" rel="next"', get(path)[1])
    if not found:
        raise SystemExit(f"{path} has no Older link")
    return html.unescape(found.group(1).decode())


deep_page = timeline_page
for _ in range(10):
    deep_page = older(deep_page)
pages = [("pipeline", pipeline_page), ("timeline, newest", timeline_page), ("timeline, page 11", deep_page)]

server = {name: median_ms(path) for name, path in pages}
floor = median_ms("/healthz")
assets = [get(p)[1] for p in ("/ui/app.css", "/ui/app.js")]
weight = {}
for name, path in pages:
    body = get(path)[1]
    weight[name] = (len(body) + sum(map(len, assets)),
                    len(gzip.compress(body)) + sum(len(gzip.compress(a)) for a in assets))

# Chromium: navigation start to the load event, through WebDriver.
s = socket.socket()
s.bind(("127.0.0.1", 0))
driver_port = s.getsockname()[1]
s.close()
driver = subprocess.Popen(["chromedriver", f"--port={driver_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wd = f"http://127.0.0.1:{driver_port}"


def call(method, path, body=None):
    req = urllib.request.Request(wd + path, data=json.dumps(body).encode() if body is not None else None,
                                 method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)["value"]


try:
    for _ in range(100):
        try:
            call("GET", "/status")
            break
        except OSError:
            time.sleep(0.1)
    import tempfile
    profile = tempfile.mkdtemp()
    caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
        "--window-size=1280,900"]}}}}
    sid = call("POST", "/session", caps)["sessionId"]
    call("POST", f"/session/{sid}/url", {"url": base + "/healthz"})
    name, value = cookie.split("=", 1)
    call("POST", f"/session/{sid}/cookie", {"cookie": {"name": name, "value": value, "path": "/"}})

    def load_ms(path, n=5):
        times = []
        for _ in range(n):
            call("POST", f"/session/{sid}/url", {"url": base + path})
            times.append(call("POST", f"/session/{sid}/execute/sync", {
                "script": "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;",
                "args": []}))
        return statistics.median(times)

    browser = {}
    for name, path in pages:
        load_ms(path, 1)
        browser[name] = load_ms(path)
    browser_floor = load_ms("/healthz")
    call("DELETE", f"/session/{sid}")
finally:
    driver.kill()

print(f"{'':38} {'page':>10} {'/healthz':>10} {'ratio':>7}")
for name, _ in pages:
    print(f"{name}")
    print(f"{'  server time, median of 20 (ms)':38} {server[name]:10.1f} {floor:10.1f} {server[name] / floor:7.1f}")
    print(f"{'  Chromium navigation-to-load (ms)':38} {browser[name]:10.1f} {browser_floor:10.1f} {browser[name] / browser_floor:7.1f}")
    raw, packed = weight[name]
    print(f"  page weight: {raw / 1024:.1f} KB raw, {packed / 1024:.1f} KB gzip-compressed (HTML, CSS, JS)")
print(f"deep timeline page: {deep_page}")
