#!/usr/bin/env python3
"""Soak: one projector (release build) on the test broker for N minutes at a
steady event rate with readers, sampled every few seconds into a CSV and drawn
as a PNG. Memory must be flat: the script exits non-zero when the projector's
RSS in the last fifth of the run exceeds its median after warm-up by more than
--max-growth percent.

    make soak                       # 30 minutes, 500 orders/s, 4 readers
    make soak SOAK_MINUTES=5        # shorter
    hack/soak.py --help

Needs the test environment (`make testenv`) and target/release/matview. Its
Python packages (kafka-python, matplotlib, PyYAML) live in a virtualenv under
~/.cache/matview, made on the first run.
"""

import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("MATVIEW_CACHE", Path.home() / ".cache/matview")) / "soak-venv"
PACKAGES = ["kafka-python==2.3.3", "matplotlib==3.11.2", "PyYAML==6.0.3"]


def in_venv():
    """Re-runs this script in its virtualenv (made once) unless already there."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    python = VENV / "bin" / "python"
    marker = VENV / ".complete"
    if not marker.exists():
        print(f"soak: making {VENV} ({', '.join(PACKAGES)})", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PACKAGES], check=True)
        marker.touch()
    os.execv(str(python), [str(python), *sys.argv])


def env_file():
    path = Path(os.environ.get("MATVIEW_TESTENV_DIR", REPO / ".testenv")) / "testenv.env"
    if not path.exists():
        sys.exit(f"soak: {path} is missing: start the test environment with `make testenv`")
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def metric_sum(text, name):
    """Sum of a metric's samples (all label sets)."""
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else None


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return answer.status, answer.read()


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Orders:
    """Shop orders from a seeded generator: 1-5 items, prices 0.50-120."""

    def __init__(self, seed, users):
        self.random = random.Random(seed)
        self.users = users
        self.n = 0

    def next(self):
        self.n += 1
        items = [
            {"itemId": f"s{self.n}-{i}", "name": "thing",
             "price": round(self.random.uniform(0.5, 120), 2)}
            for i in range(self.random.randint(1, 5))
        ]
        user = f"u{self.random.randrange(self.users)}"
        return f"s{self.n}", {"orderId": f"s{self.n}", "userId": user, "items": items}


def produce(servers, topic, rate, stop, counts):
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=servers, linger_ms=10)
    orders = Orders(7, 20_000)
    tick = 0.1
    per_tick = max(1, round(rate * tick))
    next_at = time.monotonic()
    while not stop.is_set():
        for _ in range(per_tick):
            key, order = orders.next()
            producer.send(topic, key=key.encode(), value=json.dumps(order).encode())
        counts["produced"] += per_tick
        next_at += tick
        time.sleep(max(0.0, next_at - time.monotonic()))
    producer.flush()
    producer.close()


def read(base, stop, latencies, failures):
    rng = random.Random()
    while not stop.is_set():
        started = time.monotonic()
        try:
            status, _ = get(f"{base}/v1/rows/u{rng.randrange(20_000)}")
            if status not in (200, 404):
                failures.append(status)
        except urllib.error.HTTPError as e:
            if e.code != 404:
                failures.append(e.code)
        except OSError as e:
            failures.append(str(e))
        latencies.append(time.monotonic() - started)


def chart(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [r["seconds"] / 60 for r in rows]
    panels = [
        ("rss_mib", "projector RSS (MiB)"),
        ("lag", "lag (events)"),
        ("commit_ms", "store commit, mean (ms)"),
        ("read_p99_ms", "row read p99 (ms)"),
        ("events_per_s", "events applied per second"),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 11), sharex=True)
    for ax, (key, title) in zip(axes, panels):
        ax.plot(minutes, [r[key] for r in rows], linewidth=1)
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("minutes")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30, help="length of the run (default 30)")
    parser.add_argument("--rate", type=int, default=500, help="orders per second (default 500)")
    parser.add_argument("--readers", type=int, default=4, help="reader threads (default 4)")
    parser.add_argument("--every", type=float, default=5, help="seconds between samples (default 5)")
    parser.add_argument("--warmup", type=float, default=10,
                        help="minutes before memory counts: the page cache fills first (default 10)")
    parser.add_argument("--max-growth", type=float, default=10,
                        help="allowed RSS growth after warm-up, percent (default 10)")
    parser.add_argument("--store-cache-mib", type=int, default=64,
                        help="the projector's page cache (default 64: full within minutes, so "
                             "that growth after it is growth, not the cache filling)")
    parser.add_argument("--out", default=str(REPO / "target/soak"), help="CSV, PNG, logs, store")
    args = parser.parse_args()
    in_venv()
    import yaml
    from kafka.admin import KafkaAdminClient, NewTopic

    env = env_file()
    servers = env["MATVIEW_KAFKA_BOOTSTRAP"]
    binary = REPO / "target/release/matview"
    if not binary.exists():
        sys.exit("soak: target/release/matview is missing: cargo build --release")
    out = Path(args.out)
    subprocess.run(["rm", "-rf", str(out)], check=True)
    out.mkdir(parents=True)
    stamp = int(time.time())
    topic, dead = f"soak-{stamp}", f"soak-{stamp}-dlq"
    admin = KafkaAdminClient(bootstrap_servers=servers)
    admin.create_topics([NewTopic(topic, 4, 1), NewTopic(dead, 1, 1)])
    admin.close()
    view = yaml.safe_load((REPO / "examples/items-by-price.yaml").read_text())
    view["metadata"] = {"name": "soak", "namespace": "soak"}
    view["spec"]["source"]["kafka"].update({"topic": topic, "bootstrapServers": servers})
    view["spec"]["deadLetter"] = {"topic": dead}
    view["spec"]["shards"] = 1
    (out / "view.yaml").write_text(yaml.safe_dump(view))
    port = 18000 + stamp % 1000
    base = f"http://127.0.0.1:{port}"
    log = open(out / "projector.log", "w")
    projector = subprocess.Popen(
        [str(binary), "projector", "--view", str(out / "view.yaml"), "--shard", "0",
         "--data-dir", str(out / "data"), "--listen", f"127.0.0.1:{port}",
         "--store-cache-mib", str(args.store_cache_mib)],
        stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 60
    while True:
        try:
            if get(f"{base}/readyz")[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline or projector.poll() is not None:
            sys.exit(f"soak: the projector did not become ready; see {out / 'projector.log'}")
        time.sleep(0.2)

    stop = threading.Event()
    counts = {"produced": 0}
    latencies, failures = [], []
    threads = [threading.Thread(target=produce, args=(servers, topic, args.rate, stop, counts))]
    threads += [threading.Thread(target=read, args=(base, stop, latencies, failures))
                for _ in range(args.readers)]
    for t in threads:
        t.start()
    rows = []
    started = time.monotonic()
    last = {"events": 0.0, "commit_sum": 0.0, "commit_count": 0.0, "at": started}
    fields = ["seconds", "rss_mib", "lag", "commit_ms", "read_p50_ms", "read_p99_ms",
              "reads", "read_failures", "events_per_s", "produced"]
    with open(out / "soak.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        try:
            while time.monotonic() - started < args.minutes * 60:
                time.sleep(args.every)
                if projector.poll() is not None:
                    sys.exit(f"soak: the projector exited ({projector.returncode}); see its log")
                text = get(f"{base}/metrics")[1].decode()
                now = time.monotonic()
                events = metric_sum(text, "matview_events_consumed_total") or 0.0
                commit_sum = metric_sum(text, "matview_commit_seconds_sum") or 0.0
                commit_count = metric_sum(text, "matview_commit_seconds_count") or 0.0
                window, latencies[:] = sorted(latencies), []
                batches = commit_count - last["commit_count"]
                row = {
                    "seconds": round(now - started, 1),
                    "rss_mib": round(rss_mib(projector.pid), 1),
                    "lag": int(metric_sum(text, "matview_lag") or 0),
                    "commit_ms": round(1000 * (commit_sum - last["commit_sum"]) / batches, 2)
                    if batches else 0.0,
                    "read_p50_ms": round(1000 * window[len(window) // 2], 2) if window else 0.0,
                    "read_p99_ms": round(1000 * window[int(len(window) * 0.99)], 2) if window else 0.0,
                    "reads": len(window),
                    "read_failures": len(failures),
                    "events_per_s": round((events - last["events"]) / (now - last["at"]), 1),
                    "produced": counts["produced"],
                }
                last = {"events": events, "commit_sum": commit_sum,
                        "commit_count": commit_count, "at": now}
                rows.append(row)
                writer.writerow(row)
                f.flush()
                print(f"soak {row['seconds']:7.0f} s  rss {row['rss_mib']:6.1f} MiB  "
                      f"lag {row['lag']:6d}  commit {row['commit_ms']:6.2f} ms  "
                      f"read p99 {row['read_p99_ms']:6.2f} ms  {row['events_per_s']:7.1f} ev/s  "
                      f"failed reads {row['read_failures']}", flush=True)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
            projector.terminate()
            projector.wait(timeout=60)
    chart(rows, out / "soak.png")
    settled = [r["rss_mib"] for r in rows if r["seconds"] >= args.warmup * 60]
    if len(settled) < 5:
        sys.exit("soak: too short to judge memory; run longer than the warm-up")
    baseline = statistics.median(settled[: max(1, len(settled) // 5)])
    tail = statistics.median(settled[-max(1, len(settled) // 5):])
    growth = 100 * (tail - baseline) / baseline
    print(f"soak: {len(rows)} samples in {out / 'soak.csv'}, chart {out / 'soak.png'}")
    print(f"soak: RSS after warm-up {baseline:.1f} MiB, at the end {tail:.1f} MiB "
          f"({growth:+.1f} %); {rows[-1]['read_failures']} failed reads; "
          f"{counts['produced']} orders produced")
    if rows[-1]["read_failures"]:
        sys.exit("soak: reads failed")
    if growth > args.max_growth:
        sys.exit(f"soak: memory grew by more than {args.max_growth} %")


if __name__ == "__main__":
    main()
