#!/usr/bin/env python3
"""End-to-end check of dashboards/unplug.json against a real Prometheus.

Starts examples/hotplug.rs with --metrics-addr on loopback, starts Debian's
`prometheus` scraping it every second, waits for samples, then evaluates
every PromQL expression of the dashboard through Prometheus's HTTP API
(`/api/v1/query`), with Grafana's `$__rate_interval` replaced by a window
that holds enough scrapes. Fails if any query errors or returns no data.
Every request goes to 127.0.0.1 only.
"""
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATE_WINDOW = "20s"
DEADLINE_S = 120


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(prom, expr):
    url = f"http://127.0.0.1:{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def dashboard_exprs():
    with open(os.path.join(ROOT, "dashboards", "unplug.json")) as f:
        dash = json.load(f)
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def main():
    prometheus = shutil.which("prometheus")
    if not prometheus:
        sys.exit("prometheus is not installed (apt-get install -y prometheus)")
    hotplug = os.path.join(ROOT, "target", "release", "examples", "hotplug")
    if not os.path.exists(hotplug):
        sys.exit(f"{hotplug} missing: cargo build --release --example hotplug")
    metrics_port, prom_port = free_port(), free_port()
    work = tempfile.mkdtemp(prefix="unplug-e2e-")
    config = os.path.join(work, "prometheus.yml")
    with open(config, "w") as f:
        f.write(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: unplug\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{metrics_port}']\n"
        )
    procs = []
    try:
        procs.append(subprocess.Popen(
            [hotplug, "--seconds", "90", "--long-polls", "--metrics-addr", f"127.0.0.1:{metrics_port}"],
            stdout=open(os.path.join(work, "hotplug.log"), "w"), stderr=subprocess.STDOUT))
        procs.append(subprocess.Popen(
            [prometheus, f"--config.file={config}", f"--storage.tsdb.path={work}/data",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=open(os.path.join(work, "prometheus.log"), "w"), stderr=subprocess.STDOUT))
        # Wait for enough scrapes: rate() over RATE_WINDOW needs several.
        start = time.time()
        while True:
            if time.time() - start > DEADLINE_S:
                sys.exit("timed out waiting for Prometheus to collect samples")
            if any(p.poll() is not None for p in procs):
                sys.exit("hotplug or prometheus exited early; logs in " + work)
            try:
                r = query(prom_port, "count_over_time(unplug_tasks_spawned_total[1m])")
                res = r["data"]["result"]
                if res and float(res[0]["value"][1]) >= 25:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        print(f"prometheus 127.0.0.1:{prom_port} scraping hotplug 127.0.0.1:{metrics_port}")
        failures = 0
        exprs = list(dashboard_exprs())
        for title, expr in exprs:
            q = expr.replace("$__rate_interval", RATE_WINDOW).replace("$__interval", "1s")
            try:
                r = query(prom_port, q)
            except OSError as e:
                print(f"FAIL {title}: {q}: {e}")
                failures += 1
                continue
            result = r.get("data", {}).get("result", [])
            finite = [s for s in result if not math.isnan(float(s["value"][1]))]
            if r.get("status") != "success" or not result or not finite:
                print(f"FAIL {title}: {q}: status={r.get('status')} series={len(result)} finite={len(finite)} {r.get('error', '')}")
                failures += 1
            else:
                print(f"ok   {len(result):>3} series  {q}")
        # The long-poll panels must show what `--long-polls` does (a 25 ms
        # poll each second), not just finite zeros.
        for title, q, low in [
            ("long polls were counted", "sum(unplug_long_polls_total)", 1.0),
            ("schedule latency was sampled", "sum(unplug_schedule_latency_seconds_count)", 1.0),
        ]:
            r = query(prom_port, q)
            result = r.get("data", {}).get("result", [])
            value = float(result[0]["value"][1]) if result else float("nan")
            if not value >= low:
                print(f"FAIL {title}: {q} = {value} (want >= {low})")
                failures += 1
            else:
                print(f"ok   {title}: {q} = {value}")
        print(f"{len(exprs) + 2 - failures} passed, {failures} failed")
        if failures:
            sys.exit(1)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
