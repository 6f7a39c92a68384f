#!/usr/bin/env python3
"""Mints Freight for bench/scale-pipeline.sh the way barge does, in bulk: rounds of one new
tag pushed to each image, then one `barge discover --db` pass over every Warehouse.

    mint-freight.py BARGE DEFS REWRITE REGISTRY FREIGHT"""
import importlib.util
import json
import subprocess
import sys

barge, defs, rewrite, registry, freight = sys.argv[1:6]
WAREHOUSES = 10

spec = importlib.util.spec_from_file_location("push", "scripts/push-demo-images.py")
push = importlib.util.module_from_spec(spec)
spec.loader.exec_module(push)

for r in range(int(freight) // WAREHOUSES):
    for i in range(1, WAREHOUSES + 1):
        push.push(registry, f"bench/app-{i}", f"1.0.{r}", r % 28)
    report = subprocess.run([barge, "discover", defs, "--rewrite", rewrite, "-o", "json"],
                            capture_output=True, text=True)
    if report.returncode != 0:
        raise SystemExit(f"round {r}: discovery failed: {report.stderr}{report.stdout}")
    created = sum(w.get("stored") == "created" for w in json.loads(report.stdout))
    if created != WAREHOUSES:
        raise SystemExit(f"round {r}: {created} Freight minted, not {WAREHOUSES}: {report.stdout}")
