#!/usr/bin/env python3
"""Measures the web UI's pipeline page against /healthz (bench/ui-page.sh sets up the
pipeline): server time over HTTP, Chromium's navigation-to-load over WebDriver, page weight.

    ui-page.py BASE_URL TOKEN"""
import gzip
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request

base, token = sys.argv[1], sys.argv[2]
page = "/projects/bench"


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


server = median_ms(page)
floor = median_ms("/healthz")
html = get(page)[1]
assets = [get(p)[1] for p in ("/ui/app.css", "/ui/app.js")]
raw = len(html) + sum(map(len, assets))
packed = len(gzip.compress(html)) + sum(len(gzip.compress(a)) for a in assets)

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

    load_ms(page, 1)
    browser = load_ms(page)
    browser_floor = load_ms("/healthz")
    call("DELETE", f"/session/{sid}")
finally:
    driver.kill()

print(f"{'':38} {'page':>10} {'/healthz':>10} {'ratio':>7}")
print(f"{'server time, median of 20 (ms)':38} {server:10.1f} {floor:10.1f} {server / floor:7.1f}")
print(f"{'Chromium navigation-to-load (ms)':38} {browser:10.1f} {browser_floor:10.1f} {browser / browser_floor:7.1f}")
print(f"page weight: {raw / 1024:.1f} KB raw, {packed / 1024:.1f} KB gzip-compressed (HTML, CSS, JS)")
