#!/usr/bin/env python3
"""The race: matview's projector and Kafka Streams applications
(race/kafka-streams: the expert peer, the same with exactly-once, and the
naive one) build the same view (the shop's items grouped by price, per user)
from the same topic, one after the other, on this machine; their rows are
compared and their figures printed side by side.

    make race                        # 200,000 orders
    make race RACE_EVENTS=2000000    # the 2-million-order run
    hack/race.py --help

Needs the test environment (`make testenv`), target/release/matview and the
Streams application built by Maven (`make race` does both). Standard library
only.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STREAMS = REPO / "race" / "kafka-streams"
# Kafka Streams peers: main class and its extra arguments (race/kafka-streams/README.md).
PEERS = {
    "expert": ("dev.matview.race.ExpertItemsByPrice", []),
    "exactly-once": ("dev.matview.race.ExpertItemsByPrice", ["--eos"]),
    "naive": ("dev.matview.race.ItemsByPrice", []),
}


def env_file():
    path = Path(os.environ.get("MATVIEW_TESTENV_DIR", REPO / ".testenv")) / "testenv.env"
    if not path.exists():
        sys.exit(f"race: {path} is missing: start the test environment with `make testenv`")
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def cpu_seconds(pid):
    """User + system CPU of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_rows(path):
    """key → {group: (count, exact sum)} from a JSON-lines rows file."""
    rows = {}
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            rows[row["key"]] = {
                name: (g["count"], Decimal(str(g["sum"])))
                for name, g in row["groups"].items()
                if g["count"] > 0
            }
    return rows


def compare(matview, streams):
    """Differences between the two sets of rows, at most a few, as text."""
    diffs = []
    for key in sorted(set(matview) | set(streams)):
        if matview.get(key) != streams.get(key):
            diffs.append(f"{key}: matview {matview.get(key)} vs Kafka Streams {streams.get(key)}")
            if len(diffs) >= 5:
                break
    return diffs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="orders to produce")
    parser.add_argument("--users", type=int, default=100_000, help="distinct users (rows)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the topic")
    parser.add_argument("--work-dir", default=str(REPO / "target" / "race"), help="stores, rows and figures")
    parser.add_argument("--peers", default="expert,exactly-once,naive",
                        help="Kafka Streams peers to run, comma-separated: " + ", ".join(PEERS))
    args = parser.parse_args()

    env = env_file()
    bootstrap = env["MATVIEW_KAFKA_BOOTSTRAP"]
    broker_pid = int((Path(env["MATVIEW_TESTENV_DIR"]) / "pids" / "kafka").read_text())
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    matview = REPO / "target" / "release" / "matview"
    jar = STREAMS / "target" / "items-by-price-streams-1.0.jar"
    for needed, how in [(matview, "cargo build --release"), (jar, "mvn -f race/kafka-streams package")]:
        if not needed.exists():
            sys.exit(f"race: {needed} is missing: run `{how}` (or `make race`)")

    print(f"race: {args.events} orders, {args.partitions} partitions, {args.users} users", flush=True)
    report, matview_rows = work / "matview-figures.json", work / "matview-rows.jsonl"
    subprocess.run(
        [str(matview), "bench", "projector", "--bootstrap-servers", bootstrap,
         "--events", str(args.events), "--users", str(args.users),
         "--partitions", str(args.partitions), "--broker-pid", str(broker_pid),
         "--work-dir", str(work), "--keep-topic", "--report", str(report),
         "--rows-out", str(matview_rows)],
        check=True,
    )
    m = json.loads(report.read_text())
    topic, items = m["topic"], m["items"]
    classpath = f"{jar}:{STREAMS / 'target' / 'lib'}/*"

    matview_rows_loaded = load_rows(matview_rows)
    results, failed = [], False
    for peer in args.peers.split(","):
        if peer not in PEERS:
            sys.exit(f"race: unknown peer {peer!r}; peers are {', '.join(PEERS)}")
        main_class, extra = PEERS[peer]
        print(f"race: Kafka Streams, {peer}, on {topic}…", flush=True)
        rows, figures = work / f"streams-{peer}-rows.jsonl", work / f"streams-{peer}-figures.json"
        state = tempfile.mkdtemp(prefix=f"streams-{peer}-state-", dir=work)
        broker_before = cpu_seconds(broker_pid)
        subprocess.run(
            ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", classpath, main_class, bootstrap,
             topic, f"race-{peer}-{os.getpid()}", state, str(items), str(rows), str(figures), *extra],
            check=True,
        )
        s = json.loads(figures.read_text())
        s["brokerCpu"] = cpu_seconds(broker_pid) - broker_before
        diffs = compare(matview_rows_loaded, load_rows(rows))
        if diffs:
            failed = True
            print(f"rows of {peer} differ:\n  " + "\n  ".join(diffs))
        results.append((peer, s, not diffs))
    subprocess.run(["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", classpath,
                    "dev.matview.race.DeleteTopics", bootstrap, topic, topic + ".dlq"], check=False)

    events = args.events
    names = ["matview"] + [f"KS {peer}" for peer, _, _ in results]
    secs = [m["elapsed"]] + [s["seconds"] for _, s, _ in results]
    table = [
        ("", *names),
        ("seconds to caught up", *(f"{x:.1f}" for x in secs)),
        ("events/s", *(f"{events / x:,.0f}" for x in secs)),
        ("items/s", *(f"{items / x:,.0f}" for x in secs)),
        ("CPU seconds", f"{m['projectorCpu']:.1f}", *(f"{s['cpuSeconds']:.1f}" for _, s, _ in results)),
        ("peak RSS (MiB)", f"{m['peakKib'] / 1024:,.0f}", *(f"{s['peakRssMiB']:,.0f}" for _, s, _ in results)),
        ("broker CPU seconds", f"{m['brokerCpu']:.1f}", *(f"{s['brokerCpu']:.1f}" for _, s, _ in results)),
        ("rows", f"{len(matview_rows_loaded):,}", *(f"{s['rows']:,}" for _, s, _ in results)),
        ("rows equal to matview's", "—", *("yes" if ok else "NO" for _, _, ok in results)),
    ]
    print()
    print(f"{events:,} orders ({items:,} items), {args.partitions} partitions, {args.users:,} users")
    for name, *cells in table:
        print(f"{name:<24}" + "".join(f"{c:>18}" for c in cells))
    for peer, s, _ in results:
        print(f"matview is {s['seconds'] / m['elapsed']:.1f}× faster than Kafka Streams ({peer}), "
              f"{s['cpuSeconds'] / max(m['projectorCpu'], 0.001):.1f}× less CPU")
    if failed:
        sys.exit(1)
    print("rows: equal (every user's count and exact sum per group)")


if __name__ == "__main__":
    main()
