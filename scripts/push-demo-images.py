#!/usr/bin/env python3
"""Pushes tiny OCI images to a registry over its HTTP API (no docker needed).

    push-demo-images.py HOST REPO TAG [TAG...]

Each tag gets its own image (a config blob whose `created` differs), so each has its own
digest, as real builds would."""
import hashlib
import json
import sys
import urllib.request


def request(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    return urllib.request.urlopen(req)


def push(host, repo, tag, n):
    base = f"http://{host}/v2/{repo}"
    config = json.dumps({
        "created": f"2026-01-{n + 1:02d}T00:00:00Z", "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []}, "config": {"Labels": {"demo.tag": tag}},
    }).encode()
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    location = request("POST", f"{base}/blobs/uploads/").headers["Location"]
    if not location.startswith("http"):
        location = f"http://{host}{location}"
    sep = "&" if "?" in location else "?"
    request("PUT", f"{location}{sep}digest={digest}", config, {"Content-Type": "application/octet-stream"})
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": len(config)},
        "layers": [],
    }).encode()
    request("PUT", f"{base}/manifests/{tag}", manifest, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})


if __name__ == "__main__":
    host, repo, *tags = sys.argv[1:]
    for i, tag in enumerate(tags):
        push(host, repo, tag, i)
        print(f"pushed {host}/{repo}:{tag}")
