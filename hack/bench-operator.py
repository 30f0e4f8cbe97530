#!/usr/bin/env python3
"""The operator at scale, against the test environment (make bench-operator).

N MaterializedViews (1 shard, 1 replica, one existing topic) exist in a fresh
namespace; one operator (release build, default settings) starts. Measured:
seconds until every view has its StatefulSet and a phase; how long a view
applied during that wave waits for its phase, and one applied after it while
the others build; reconcile latency p50/p99 (the operator's histogram);
Kubernetes API requests per view (the operator's own counter, by verb and
resource); operator and test-environment CPU seconds, operator peak RSS; then,
once the controller manager has created every pod, API requests and CPU per
minute. No kubelet runs, so views stay Building: the worst case for periodic
work.

usage: hack/bench-operator.py [N]     (default 1000; BENCH_RUST_LOG sets the
       operator's RUST_LOG, e.g. matview::operator::reconcile=debug)
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
DEADLINE = 900


def log(message):
    print(f"[bench-operator {time.strftime('%H:%M:%S')}] {message}", flush=True)


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def testenv():
    subprocess.run([f"{REPO}/hack/testenv.sh", "up"], check=True)
    env = dict(os.environ)
    with open(f"{REPO}/.testenv/testenv.env") as f:
        for line in f:
            key, _, value = line.strip().partition("=")
            env[key] = value
    env["PATH"] = f"{env['MATVIEW_KUBE_BIN']}:{env['PATH']}"
    return env


def kubectl(env, *args, stdin=None):
    return subprocess.run(["kubectl", "--request-timeout=60s", *args], check=True,
                          capture_output=True, text=True, env=env, input=stdin).stdout


def create_topic(env, topic):
    cache = os.environ.get("MATVIEW_CACHE", os.path.expanduser("~/.cache/matview"))
    kafka = sorted(d for d in os.listdir(cache) if d.startswith("kafka-"))[-1]
    subprocess.run(["java", "-cp", f"{cache}/{kafka}/lib/*", "org.apache.kafka.tools.TopicCommand",
                    "--bootstrap-server", env["MATVIEW_KAFKA_BOOTSTRAP"], "--create",
                    "--topic", topic, "--partitions", "1"], check=True, capture_output=True)


def view(name, topic, bootstrap):
    with open(f"{REPO}/examples/items-by-price.yaml") as f:
        text = f.read()
    text = re.sub(r"(?m)^  name: .*$", f"  name: {name}", text, count=1)
    text = re.sub(r"(?m)^      topic: .*$", f"      topic: {topic}", text, count=1)
    text = re.sub(r"(?m)^  shards: .*$", "  shards: 1", text)
    text = re.sub(r"(?m)^  replicasPerShard: .*$", "  replicasPerShard: 1", text)
    text = re.sub(r"(?m)^      bootstrapServers: .*$", f"      bootstrapServers: {bootstrap}", text)
    text = re.sub(r"(?m)^  namespace: .*\n", "", text)
    return text


def metrics(url):
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        return r.read().decode()


def quantile(text, q):
    buckets = [(float("inf") if le == "+Inf" else float(le), float(v)) for le, v in
               re.findall(r'matview_operator_reconcile_seconds_bucket\{le="([^"]+)"\} (\S+)', text)]
    total = buckets[-1][1] if buckets else 0
    for le, count in buckets:
        if total and count >= q * total:
            return le
    return float("nan")


def api_requests(text):
    """Requests by "verb resource"."""
    return {f"{verb} {resource}": float(v) for verb, resource, v in re.findall(
        r'matview_operator_api_requests_total\{verb="([^"]+)",resource="([^"]+)"\} (\S+)', text)}


def testenv_cpu():
    """CPU seconds used so far by each process of the test environment."""
    pids = f"{REPO}/.testenv/pids"
    cpu = {}
    for name in sorted(os.listdir(pids)):
        with open(f"{pids}/{name}") as f:
            cpu[name] = cpu_seconds(int(f.read().strip()))
    return cpu


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) / 1024


def changed_fields(before, after, path="status"):
    """What differs between two JSON documents: path → [before, after]."""
    if isinstance(before, dict) and isinstance(after, dict):
        return {p: d for k in sorted(set(before) | set(after))
                for p, d in changed_fields(before.get(k), after.get(k), f"{path}.{k}").items()}
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return {p: d for i, (b, a) in enumerate(zip(before, after))
                for p, d in changed_fields(b, a, f"{path}[{i}]").items()}
    return {} if before == after else {path: [before, after]}


def phases(env, ns):
    out = kubectl(env, "get", "mv", "-n", ns, "-o",
                  "jsonpath={range .items[*]}{.metadata.name}={.status.phase}{\"\\n\"}{end}")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def main():
    env = testenv()
    log("building the release binary")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "matview"], cwd=REPO, check=True)
    binary = f"{REPO}/target/release/matview"
    ns = f"bench-{int(time.time())}"
    kubectl(env, "apply", "-f", f"{REPO}/crds/materializedview.yaml")
    kubectl(env, "create", "namespace", ns)
    topic = f"bench-{ns}"
    create_topic(env, topic)
    log(f"creating {N} views in {ns} (before the operator starts)")
    docs = "---\n".join(view(f"v{i:04d}", topic, env["MATVIEW_KAFKA_BOOTSTRAP"]) for i in range(N))
    for start in range(0, N, 200):
        chunk = "---\n".join(docs.split("---\n")[start:start + 200])
        kubectl(env, "create", "-n", ns, "-f", "-", stdin=chunk)
    port = 18000 + os.getpid() % 1000
    url = f"http://127.0.0.1:{port}"
    logfile = tempfile.NamedTemporaryFile(prefix="bench-operator-", suffix=".log", delete=False)
    operator = subprocess.Popen([binary, "operator", "--namespace", ns, "--no-leader-election",
                                 "--listen", f"127.0.0.1:{port}", "--log-format", "json"],
                                env={**env, "RUST_LOG": os.environ.get("BENCH_RUST_LOG", "warn")}, stdout=subprocess.DEVNULL,
                                stderr=logfile)
    started = time.monotonic()
    env_cpu = testenv_cpu()
    late = None
    try:
        while True:
            elapsed = time.monotonic() - started
            if late is None and elapsed > 5:
                late = ("late", time.monotonic())
                kubectl(env, "create", "-n", ns, "-f", "-", stdin=view("late", topic, env["MATVIEW_KAFKA_BOOTSTRAP"]))
            seen = phases(env, ns)
            with_phase = sum(1 for p in seen.values() if p)
            sets = len(kubectl(env, "get", "statefulsets", "-n", ns, "--no-headers").splitlines())
            if late and len(late) == 2 and seen.get("late"):
                late = ("late", late[1], time.monotonic() - late[1])
            log(f"{elapsed:6.1f} s: {with_phase}/{N + 1} views with a phase, {sets}/{N + 1} StatefulSets")
            if with_phase >= N + 1 and sets >= N + 1:
                break
            if elapsed > DEADLINE:
                sys.exit(f"not every view was reconciled within {DEADLINE} s (log: {logfile.name})")
            time.sleep(2)
        wave = time.monotonic() - started
        text = metrics(url)
        requests = api_requests(text)
        cpu = cpu_seconds(operator.pid)
        result = {
            "views": N,
            "seconds_until_every_view_has_objects_and_phase": round(wave, 1),
            "late_view_seconds_to_phase": round(late[2], 1) if late and len(late) == 3 else None,
            "reconcile_p50_s_le": quantile(text, 0.5),
            "reconcile_p99_s_le": quantile(text, 0.99),
            "reconciles": float(re.search(r"matview_operator_reconciles_total (\S+)", text).group(1)),
            "api_requests_per_view": round(sum(requests.values()) / (N + 1), 1),
            "api_requests_by_verb_and_resource": requests,
            "cpu_seconds": round(cpu, 1),
            "testenv_cpu_seconds_during_the_wave": {
                name: round(v - env_cpu[name], 1) for name, v in testenv_cpu().items()},
            "peak_rss_mib": round(peak_rss_mib(operator.pid), 1),
        }
        # A view applied while the others build, once the wave has passed.
        applied = time.monotonic()
        kubectl(env, "create", "-n", ns, "-f", "-", stdin=view("after-wave", topic, env["MATVIEW_KAFKA_BOOTSTRAP"]))
        while not kubectl(env, "get", "mv", "after-wave", "-n", ns, "-o", "jsonpath={.status.phase}"):
            if time.monotonic() - applied > DEADLINE:
                sys.exit(f"the view applied after the wave got no phase (log: {logfile.name})")
            time.sleep(0.2)
        result["view_applied_after_the_wave_seconds_to_phase"] = round(time.monotonic() - applied, 1)
        # The controller manager creates pods at its own pace (20 requests/s
        # by default); each new pod is a real change of its view's status.
        waited = time.monotonic()
        while (count := len(kubectl(env, "get", "pods", "-n", ns, "--no-headers").splitlines())) < N + 2:
            if time.monotonic() - waited > DEADLINE:
                sys.exit("the controller manager did not create every pod")
            log(f"waiting for the controller manager to create every pod ({count} of {N + 2})")
            time.sleep(5)
        # Then until the operator has written no status for 30 s (its pod
        # watch may still be delivering the last pods).
        quiet_since, patches = time.monotonic(), None
        while time.monotonic() - quiet_since < 30:
            now = sum(v for k, v in api_requests(metrics(url)).items()
                      if k == "patch materializedviews/status")
            if now != patches:
                quiet_since, patches = time.monotonic(), now
            if time.monotonic() - waited > DEADLINE:
                sys.exit("the operator kept writing status")
            time.sleep(2)
        log("steady state: 60 s with every view settled")
        requests, cpu = api_requests(metrics(url)), cpu_seconds(operator.pid)
        sample = kubectl(env, "get", "mv", "v0000", "-n", ns, "-o", "jsonpath={.status}")
        time.sleep(60)
        result["status_fields_of_a_view_changed_in_the_steady_minute"] = changed_fields(
            json.loads(sample),
            json.loads(kubectl(env, "get", "mv", "v0000", "-n", ns, "-o", "jsonpath={.status}")))
        text = metrics(url)
        after = api_requests(text)
        result["steady_api_requests_per_minute"] = round(
            sum(after.values()) - sum(requests.values()))
        result["steady_api_requests_per_minute_by_verb_and_resource"] = {
            verb: after.get(verb, 0) - requests.get(verb, 0) for verb in after
            if after.get(verb, 0) != requests.get(verb, 0)}
        result["steady_cpu_seconds_per_minute"] = round(cpu_seconds(operator.pid) - cpu, 2)
        result["peak_rss_mib"] = round(peak_rss_mib(operator.pid), 1)
        print(json.dumps(result, indent=2))
    finally:
        operator.terminate()
        operator.wait(timeout=30)
        subprocess.run(["kubectl", "delete", "namespace", ns, "--wait=false"], env=env,
                       capture_output=True)


if __name__ == "__main__":
    main()
