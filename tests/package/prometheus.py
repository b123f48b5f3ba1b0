#!/usr/bin/env python3
"""A real Prometheus against the real daemon (tests/package/run; python3, standard library only).

Starts ringwarden with a one-page syscall ring that follows one syscall nobody else calls
(sched_get_priority_max), and Debian's `prometheus` scraping it every second with the
packaged alert rules loaded. A producer calls that syscall flat out, so the ring drops
(counted). Passes when:
- RingwardenDropsCritical fires (the rule: rate of drops over 1 m > 100/s for 1 m), seen in
  Prometheus's own /api/v1/alerts;
- after the producer stops and the scrapes settle, PromQL over the HTTP API gives the books
  the daemon logs at its stop, exactly: produced, received and dropped of the syscall ring,
  and produced = received + dropped.
Prints "pass: ..." / "FAIL: ..." lines; exits 1 on a failure.

Usage: prometheus.py RINGWARDEN ALERT_RULES WORKDIR
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

SYSCALL = "sched_get_priority_max"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def query(prom, q):
    """The value of an instant query with one sample (None without one)."""
    body = json.loads(get(f"http://127.0.0.1:{prom}/api/v1/query?" + urllib.parse.urlencode({"query": q})))
    res = body.get("data", {}).get("result", [])
    return float(res[0]["value"][1]) if len(res) == 1 else None


def alert_state(prom, name):
    body = json.loads(get(f"http://127.0.0.1:{prom}/api/v1/alerts"))
    states = [a["state"] for a in body["data"]["alerts"] if a["labels"].get("alertname") == name]
    return "firing" if "firing" in states else (states[0] if states else None)


def wait(what, timeout, f, every=0.5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            v = f()
        except OSError:
            v = None
        if v:
            return v
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {timeout} s")


def main():
    bin_, rules, work = sys.argv[1], os.path.abspath(sys.argv[2]), sys.argv[3]
    metrics, prom = free_port(), free_port()
    failed = 0

    def verdict(ok, what, detail=""):
        nonlocal failed
        failed += not ok
        print(f"{'pass' if ok else 'FAIL'}: prometheus: {what}" + ("" if ok else f": {detail}"), flush=True)

    if not shutil.which("prometheus"):
        verdict(False, "setup", "no prometheus binary (apt-get install prometheus)")
        return 1
    log_path = os.path.join(work, "prom-daemon.log")
    log = open(log_path, "w")
    daemon = subprocess.Popen(
        [bin_, "run", "--config", "/dev/null", "--output", "none", "--no-context", "--control-socket", "off",
         "--only", "syscall", "--syscalls", SYSCALL, "--ring-size", "syscall=4KiB", "--adaptive", "off",
         "--metrics-listen", f"127.0.0.1:{metrics}"],
        stdout=subprocess.DEVNULL, stderr=log)
    read_log = lambda: open(log_path).read()
    server = producer = None
    cfg = os.path.join(work, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {rules}
scrape_configs:
  - job_name: ringwarden
    static_configs:
      - targets: ["127.0.0.1:{metrics}"]
""")
    plog = open(os.path.join(work, "prometheus.log"), "w")
    try:
        server = subprocess.Popen(
            ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={os.path.join(work, 'tsdb')}",
             f"--web.listen-address=127.0.0.1:{prom}"],
            stdout=plog, stderr=subprocess.STDOUT)
        wait("the daemon's ready line", 60, lambda: "ready:" in read_log())
        wait("Prometheus's first scrape", 60,
             lambda: query(prom, f'up{{job="ringwarden"}}') == 1.0)
        # Flat out: the one-page ring overflows at once, and keeps dropping.
        producer = subprocess.Popen(
            [sys.executable, "-c",
             "import os\nwhile True:\n    os.sched_get_priority_max(0)\n"])
        t0 = time.monotonic()
        try:
            wait("RingwardenDropsCritical firing", 180,
                 lambda: alert_state(prom, "RingwardenDropsCritical") == "firing", every=1)
            verdict(True, f"RingwardenDropsCritical fired {time.monotonic() - t0:.0f} s after drops began "
                    "(rate over 1 m > 100/s for 1 m)")
        except TimeoutError as e:
            verdict(False, "RingwardenDropsCritical fires", str(e))
        producer.send_signal(signal.SIGKILL)
        producer.wait()
        producer = None

        # Settled: three scrapes with the same produced.
        names = ("produced", "received", "dropped")
        seen = []

        def settled():
            v = tuple(query(prom, f'ebpf_events_{n}_total{{ring="syscall"}}') for n in names)
            seen.append(v)
            return len(seen) >= 3 and seen[-1] == seen[-2] == seen[-3] and None not in v
        wait("the scrapes settle", 60, settled, every=1.1)
        books = dict(zip(names, (int(x) for x in seen[-1])))
    except (TimeoutError, OSError) as e:
        verdict(False, "setup", str(e))
        books = None
    finally:
        if producer:
            producer.kill()
            producer.wait()
        daemon.send_signal(signal.SIGINT)
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        if server:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    if books is None:
        return 1
    final = re.search(r"final ring syscall .*?produced=(\d+) received=(\d+) dropped=(\d+)", read_log())
    if not final:
        verdict(False, "the daemon's final books", "no `final ring syscall` line in " + log_path)
        return 1
    logged = dict(zip(names, (int(x) for x in final.groups())))
    verdict(books == logged and books["dropped"] > 0
            and books["produced"] == books["received"] + books["dropped"],
            f"PromQL gives the daemon's final books exactly: {books}", f"PromQL {books}, daemon {logged}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
