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
DEADLINE_S = 150
# Longer than DEADLINE_S plus the queries: hotplug never ends on its own here.
HOTPLUG_SECONDS = 600


def free_ports(n):
    """n distinct free loopback ports (all held open while choosing)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


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


def dump_logs(work):
    """Prints the end of each process's log: CI keeps no files."""
    for name in ("hotplug.log", "prometheus.log"):
        try:
            with open(os.path.join(work, name), errors="replace") as f:
                lines = f.readlines()
        except OSError as e:
            print(f"--- {name}: {e}")
            continue
        print(f"--- last {min(len(lines), 40)} of {len(lines)} lines of {name}")
        sys.stdout.writelines(lines[-40:])


class PrometheusDied(Exception):
    """Prometheus itself exited before the check: worth one retry."""


def scrape_health(prom):
    """What Prometheus says of its scrapes of hotplug (for a failure's log)."""
    try:
        url = f"http://127.0.0.1:{prom}/api/v1/targets"
        with urllib.request.urlopen(url, timeout=10) as r:
            targets = json.load(r)["data"]["activeTargets"]
        return [(t.get("health"), t.get("lastError"), t.get("lastScrapeDuration")) for t in targets]
    except (OSError, ValueError, KeyError) as e:
        return f"no answer: {e}"


def wait_for_samples(prom_port, procs, work):
    """Waits until Prometheus holds enough scrapes for rate() over RATE_WINDOW."""
    start = time.time()
    while True:
        if time.time() - start > DEADLINE_S:
            print(f"timed out after {DEADLINE_S} s waiting for Prometheus to collect samples;"
                  f" its targets: {scrape_health(prom_port)}")
            dump_logs(work)
            sys.exit(1)
        hotplug, prometheus = procs
        if hotplug.poll() is not None:
            # hotplug runs far longer than the deadline: any exit is a failure
            # of the runtime under test (1: a task lost or polled twice).
            print(f"hotplug exited with {hotplug.returncode} after {time.time() - start:.1f} s")
            dump_logs(work)
            sys.exit(1)
        if prometheus.poll() is not None:
            print(f"prometheus exited with {prometheus.returncode} after {time.time() - start:.1f} s")
            dump_logs(work)
            raise PrometheusDied()
        try:
            r = query(prom_port, "count_over_time(unplug_tasks_spawned_total[1m])")
            res = r["data"]["result"]
            if res and float(res[0]["value"][1]) >= 25:
                print(f"{float(res[0]['value'][1]):.0f} scrapes collected in {time.time() - start:.1f} s")
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.5)


def check_dashboard(prom_port):
    """Evaluates every dashboard expression; returns the number of failures."""
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
    return failures


def attempt(prometheus, hotplug):
    metrics_port, prom_port = free_ports(2)
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
        # hotplug's load outlasts the whole check; it is stopped at the end.
        procs.append(subprocess.Popen(
            [hotplug, "--seconds", str(HOTPLUG_SECONDS), "--long-polls",
             "--metrics-addr", f"127.0.0.1:{metrics_port}"],
            stdout=open(os.path.join(work, "hotplug.log"), "w"), stderr=subprocess.STDOUT))
        procs.append(subprocess.Popen(
            [prometheus, f"--config.file={config}", f"--storage.tsdb.path={work}/data",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=open(os.path.join(work, "prometheus.log"), "w"), stderr=subprocess.STDOUT))
        wait_for_samples(prom_port, procs, work)
        print(f"prometheus 127.0.0.1:{prom_port} scraping hotplug 127.0.0.1:{metrics_port}")
        if check_dashboard(prom_port):
            print(f"prometheus's targets: {scrape_health(prom_port)}")
            dump_logs(work)
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


def main():
    prometheus = shutil.which("prometheus")
    if not prometheus:
        sys.exit("prometheus is not installed (apt-get install -y prometheus)")
    hotplug = os.path.join(ROOT, "target", "release", "examples", "hotplug")
    if not os.path.exists(hotplug):
        sys.exit(f"{hotplug} missing: cargo build --release --example hotplug")
    for tries_left in (1, 0):
        try:
            attempt(prometheus, hotplug)
            return
        except PrometheusDied:
            # Prometheus is the instrument, not the thing under test: one
            # more try with fresh ports and storage before failing.
            if not tries_left:
                sys.exit("prometheus exited early twice")
            print("prometheus exited early; trying once more")


if __name__ == "__main__":
    main()
