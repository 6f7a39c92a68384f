#!/usr/bin/env python3
"""Mints Freight for bench/scale-pipeline.sh the way barge does, in bulk: rounds of one new
tag pushed to each image, then one `barge discover --db` pass over every Warehouse.

    mint-freight.py BARGE DEFS REWRITE REGISTRY FREIGHT

Each image has one config blob; each tag is a manifest of it with the tag as an annotation,
so each tag has its own digest at the cost of one request (pushed 10 at a time)."""
import concurrent.futures
import hashlib
import http.client
import json
import subprocess
import sys
import threading

barge, defs, rewrite, registry, freight = sys.argv[1:6]
WAREHOUSES = 10
local = threading.local()


def request(method, path, body=None, headers=None):
    if not hasattr(local, "conn"):
        local.conn = http.client.HTTPConnection(registry)
    local.conn.request(method, path, body=body, headers=headers or {})
    r = local.conn.getresponse()
    r.read()
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: {r.status}")
    return r


def config_blob(repo):
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    location = request("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    location = location.split(registry, 1)[-1]
    sep = "&" if "?" in location else "?"
    request("PUT", f"{location}{sep}digest={digest}", config, {"Content-Type": "application/octet-stream"})
    return digest, len(config)


repos = [f"bench/app-{i}" for i in range(1, WAREHOUSES + 1)]
with concurrent.futures.ThreadPoolExecutor(WAREHOUSES) as pool:
    configs = dict(zip(repos, pool.map(config_blob, repos)))

    def push(repo, tag):
        digest, size = configs[repo]
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": size},
            "layers": [], "annotations": {"org.opencontainers.image.version": tag},
        }).encode()
        request("PUT", f"/v2/{repo}/manifests/{tag}", manifest, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})

    for r in range(int(freight) // WAREHOUSES):
        list(pool.map(push, repos, [f"1.0.{r}"] * WAREHOUSES))
        report = subprocess.run([barge, "discover", defs, "--rewrite", rewrite, "-o", "json"],
                                capture_output=True, text=True)
        if report.returncode != 0:
            raise SystemExit(f"round {r}: discovery failed: {report.stderr}{report.stdout}")
        created = sum(w.get("stored") == "created" for w in json.loads(report.stdout))
        if created != WAREHOUSES:
            raise SystemExit(f"round {r}: {created} Freight minted, not {WAREHOUSES}: {report.stdout}")
