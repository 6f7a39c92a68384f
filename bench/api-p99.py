#!/usr/bin/env python3
"""p50 and p99 of REST API reads next to /healthz (bench/api-p99.sh sets up the pipeline):
each round GETs every route once, in turn, on one kept-alive HTTP/1.1 connection.

    api-p99.py HOST:PORT TOKEN REQUESTS"""
import http.client
import json
import sys
import time

listen, token, requests = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection(listen)
auth = {"Authorization": f"Bearer {token}"}


def get(path):
    # "gzip:" before a path: ask for it gzipped (the transfer is timed, not the unzipping).
    headers = dict(auth)
    if path.startswith("gzip:"):
        path, headers["Accept-Encoding"] = path[len("gzip:"):], "gzip"
    start = time.perf_counter()
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    body = r.read()
    took = time.perf_counter() - start
    if r.status != 200:
        raise SystemExit(f"{path}: {r.status} {body[:300]!r}")
    return took, body


stages = json.loads(get("/api/v1/projects/bench/stages")[1])["items"]
first = json.loads(get("/api/v1/projects/bench/freight?limit=100")[1])
# A page from the middle: the cursor after half the Freight.
cursor = first.get("continue")
freight = len(first["items"])
while freight < 5000 and cursor:
    page = json.loads(get(f"/api/v1/projects/bench/freight?limit=100&continue={cursor}")[1])
    cursor, freight = page.get("continue"), freight + len(page["items"])
routes = {
    "/healthz (floor)": "/healthz",
    "stages (300)": "/api/v1/projects/bench/stages",
    "stages (300), gzip": "gzip:/api/v1/projects/bench/stages",
    "freight?limit=100": "/api/v1/projects/bench/freight?limit=100",
}
if cursor:
    routes[f"freight?limit=100, after {freight}"] = f"/api/v1/projects/bench/freight?limit=100&continue={cursor}"
print(f"stages: {len(stages)}")
print("bytes:", ", ".join(f"{name} {len(get(path)[1]):,}" for name, path in routes.items()))
times = {name: [] for name in routes}
for _ in range(20):
    for path in routes.values():
        get(path)
for _ in range(requests):
    for name, path in routes.items():
        times[name].append(get(path)[0] * 1000)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


floor50, floor99 = pct(times["/healthz (floor)"], 0.50), pct(times["/healthz (floor)"], 0.99)
print(f"{requests} requests each")
print(f"{'':30} {'p50 ms':>8} {'p99 ms':>8} {'p50/floor':>10} {'p99/floor':>10}")
for name, xs in times.items():
    p50, p99 = pct(xs, 0.50), pct(xs, 0.99)
    print(f"{name:30} {p50:8.2f} {p99:8.2f} {p50 / floor50:10.1f} {p99 / floor99:10.1f}")
