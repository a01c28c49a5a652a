"""The timely cluster (issue 16): several shopflow processes as one dataflow.

- `replay --input` as 2 processes x 2 workers writes CSVs byte-identical to
  1 process x 1 worker.
- `run` as 2 processes x 1 worker against the real Kafka, PostgreSQL and S3
  ends with the warehouse of a single-process run over the same topics,
  table by table, dead letters included.
- A wrong hostfile, an unreachable peer or a stale generation fails within
  the connect deadline, naming the peer and what to check.
- Under the launcher (`deploy/cluster/launch.sh`, `shopflow supervise`), SIGKILL of one process (after a commit, at a
  random moment), three times: the supervisor restarts the whole cluster each
  time, and the final warehouse equals an uninterrupted run.
- SIGTERM to the supervisor drains every process (exit 0); a restart then
  completes the data exactly.
"""

import filecmp
import os
import random
import signal
import socket
import subprocess
import time
from urllib.request import urlopen

import psycopg

from kafka_util import ROOT, sf, wait_for
from lake_util import lake_env, last_commit
from test_kafka_pipeline import FAULTS
from test_warehouse import EXPORTS, assert_warehouse_equals, db_rows, integrity


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def hostfile(path, n):
    path.write_text("".join(f"127.0.0.1:{p}\n" for p in free_ports(n)))
    return path


def start(shopflow, args, env, log):
    with open(log, "wb") as err:
        return subprocess.Popen([shopflow, *map(str, args)], env=env, stdout=subprocess.DEVNULL,
                                stderr=err)


def wait_all(procs, logs, timeout=600):
    deadline = time.monotonic() + timeout
    for proc, log in zip(procs, logs):
        rc = proc.wait(max(1, deadline - time.monotonic()))
        assert rc == 0, f"{log.name} exited {rc}:\n{log.read_text(errors='replace')[-3000:]}"


def test_replay_as_two_processes_equals_one_worker(shopflow, tmp_path):
    gen = tmp_path / "gen"
    sf(shopflow, ["generate", "--seed", "61", "--events", "40000", *FAULTS, "--out-dir", gen], {})
    sf(shopflow, ["replay", "--input", gen, "--output-csv", tmp_path / "one"], {})
    hosts = hostfile(tmp_path / "hosts", 2)
    logs = [tmp_path / f"p{i}.log" for i in range(2)]
    procs = [start(shopflow, ["replay", "--input", gen, "--output-csv", tmp_path / "two",
                              "--workers", 2, "--processes", 2, "--process", i, "--hostfile",
                              hosts], {}, logs[i]) for i in (1, 0)]
    wait_all(procs, logs[::-1])
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert len(names) >= 12
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "one", tmp_path / "two", names,
                                               shallow=False)
    assert not mismatch and not errors, f"differ: {mismatch}, missing: {errors}"
    assert "cluster connected" in logs[1].read_text()


def test_a_wrong_hostfile_or_a_missing_peer_fails_within_the_deadline(shopflow, tmp_path):
    gen = tmp_path / "gen"
    sf(shopflow, ["generate", "--seed", "62", "--events", "200", "--out-dir", gen], {})
    base = ["replay", "--input", gen, "--output-csv", tmp_path / "out", "--processes", 2,
            "--connect-timeout", "3s"]
    cases = {
        # Process 0 never starts: process 1 names it and its address.
        "missing peer": (["--process", 1], "127.0.0.1:{p0}", "could not connect to process 0"),
        # A host that does not resolve.
        "unresolvable": (["--process", 1], "no-such-host.invalid:{p0}", "cannot resolve"),
        # Process 1 never dials in: process 0 says which one to check.
        "silent peer": (["--process", 0], "127.0.0.1:{p0}", "could not connect to process 1"),
    }
    for name, (extra, first, expected) in cases.items():
        p0, p1 = free_ports(2)
        hosts = tmp_path / f"{name}.hosts"
        hosts.write_text(first.format(p0=p0) + f"\n127.0.0.1:{p1}\n")
        began = time.monotonic()
        proc = subprocess.run([shopflow, *map(str, base + extra), "--hostfile", hosts],
                              capture_output=True, timeout=60)
        took = time.monotonic() - began
        err = proc.stderr.decode(errors="replace")
        assert proc.returncode != 0, f"{name}: must fail"
        assert expected in err and "hostfile" in err, f"{name}: {err[-1500:]}"
        assert took < 30, f"{name}: took {took:.0f} s with a 3 s deadline"
    # A hostfile with fewer lines than processes is refused before any network.
    short = tmp_path / "short.hosts"
    short.write_text("127.0.0.1:1\n")
    proc = subprocess.run([shopflow, *map(str, base + ["--process", 0]), "--hostfile", short],
                          capture_output=True, timeout=60)
    assert proc.returncode != 0 and "lists 1 address(es) but --processes is 2" in \
        proc.stderr.decode()


def test_a_stale_generation_never_joins(shopflow, tmp_path):
    gen = tmp_path / "gen"
    sf(shopflow, ["generate", "--seed", "63", "--events", "200", "--out-dir", gen], {})
    hosts = hostfile(tmp_path / "hosts", 2)
    logs = [tmp_path / f"p{i}.log" for i in range(2)]
    procs = [start(shopflow, ["replay", "--input", gen, "--output-csv", tmp_path / "out",
                              "--processes", 2, "--process", i, "--hostfile", hosts,
                              "--generation", 7 + i, "--connect-timeout", "4s"], {}, logs[i])
             for i in range(2)]
    for proc in procs:
        assert proc.wait(60) != 0, "processes of different generations must not connect"
    assert "refused the handshake" in logs[1].read_text()
    assert "could not connect to process 1" in logs[0].read_text()


def test_a_two_process_run_equals_a_single_process_run(broker, postgres, s3, shopflow, tmp_path):
    prefix = "k1."
    settings = dict(run_exit_when_idle_ms=3000, warehouse_url=postgres, lake_flush_ms=1000,
                    dataflow_allowed_lateness_ms=1_800_000,
                    dataflow_horizon_ms=2_400_000)
    env = lake_env(broker, prefix, s3, warehouse_schema="k1", **settings)
    sf(shopflow, ["topics", "create"], env)
    sf(shopflow, ["generate", "--seed", "64", "--events", "20000", "--rate", "20", *FAULTS,
                  "--out-dir", tmp_path / "gen", "--kafka", broker.brokers, "--topic-prefix",
                  prefix], env)
    hosts = hostfile(tmp_path / "hosts", 2)
    logs = [tmp_path / f"run{i}.log" for i in range(2)]
    procs = [start(shopflow, ["run", "--workers", 1, "--processes", 2, "--process", i,
                              "--hostfile", hosts], env, logs[i]) for i in (1, 0)]
    wait_all(procs, logs[::-1])
    single = lake_env(broker, prefix, s3, warehouse_schema="k1s", kafka_group_id="k1.single",
                      **settings)
    single["SHOPFLOW_LAKE_URL"] += "-single"
    sf(shopflow, ["run"], single)
    with psycopg.connect(postgres) as conn:
        for table in EXPORTS:
            want, got = db_rows(conn, "k1s", table), db_rows(conn, "k1", table)
            assert want and got == want, f"{table}: {len(got)} rows, single process {len(want)}"
        integrity(conn, "k1")
        with conn.cursor() as cur:
            letters = []
            for schema in ("k1", "k1s"):
                cur.execute("SELECT source_topic, source_partition, source_offset, reason "
                            f"FROM {schema}.dq_dead_letters ORDER BY 1, 2, 3")
                letters.append(cur.fetchall())
            assert letters[0] == letters[1] and letters[0], \
                f"dead letters: {len(letters[0])} in the cluster's warehouse, {len(letters[1])} single"
            cur.execute("SELECT count(*) FROM k1.pipeline_progress")
            assert cur.fetchone()[0] >= 12, "every partition's position is recorded"
    assert "cluster connected" in logs[1].read_text()


def children_of(pid):
    """{process index: pid} of the shopflow processes `pid` started."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
            args = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"--process" in args:
            out[int(args[args.index(b"--process") + 1])] = int(entry)
    return out


def test_the_supervisor_restarts_the_whole_cluster_after_each_kill(broker, postgres, s3, shopflow,
                                                                    tmp_path):
    prefix, schema = "k2.", "k2"
    env = lake_env(broker, prefix, s3, run_exit_when_idle_ms=2500, warehouse_url=postgres,
                   warehouse_schema=schema, warehouse_commit_interval_ms=0, kafka_batch=200,
                   lake_flush_ms=300)
    sf(shopflow, ["topics", "create"], env)
    # Enough data that three generations, each killed soon after its first
    # commit, do not finish it: a fast machine got through 60,000 in two.
    sf(shopflow, ["generate", "--seed", "65", "--events", "200000", *FAULTS, "--out-dir",
                  tmp_path / "gen", "--kafka", broker.brokers, "--topic-prefix", prefix], env)
    rng = random.Random(65)
    log = tmp_path / "supervise.log"
    with open(log, "wb") as err:
        # Through the launcher script, as an operator starts it.
        metrics = free_ports(1)[0]
        sup = subprocess.Popen([ROOT / "deploy/cluster/launch.sh", "-n", "2", "-w", "1", "-h",
                                hostfile(tmp_path / "hosts", 2), "-m", str(metrics), "--", "run"],
                               env=dict(env, SHOPFLOW_BIN=shopflow), stdout=subprocess.DEVNULL,
                               stderr=err)
    try:
        seen = None
        for kill in range(3):
            # Each kill lands after a commit of the current generation, so
            # every restart has committed state to recover.
            wait_for(lambda: last_commit(postgres, schema) not in (None, seen)
                     or sup.poll() is not None,
                     f"a commit before kill {kill + 1}", timeout=180, every=0.05)
            if kill == 0:
                # Every process serves its own /metrics and /healthz.
                for port in (metrics, metrics + 1):
                    assert urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read() == b"ok\n"
                    text = urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
                    assert b"shopflow_messages_total{" in text, f"port {port}"
            time.sleep(rng.uniform(0.0, 1.0))
            victims = children_of(sup.pid)
            assert sup.poll() is None and len(victims) == 2, \
                f"the run ended before kill {kill + 1}: use more data"
            os.kill(victims[rng.choice([0, 1])], signal.SIGKILL)
            wait_for(lambda: set(children_of(sup.pid).values()).isdisjoint(victims.values())
                     and len(children_of(sup.pid)) == 2, "a new generation", timeout=120)
            # The old generation is gone: the next commit is the new one's.
            seen = last_commit(postgres, schema)
        assert sup.wait(600) == 0, log.read_text(errors="replace")[-3000:]
    finally:
        if sup.poll() is None:
            sup.kill()
    text = log.read_text(errors="replace")
    assert text.count("a process failed: the whole cluster restarts") == 3, text[-3000:]
    assert text.count("state recovered from the lake") >= 6, "both processes of every restart"
    sf(shopflow, ["replay", "--input", tmp_path / "gen", "--output-csv", tmp_path / "replay"], env)
    with psycopg.connect(postgres) as conn:
        assert_warehouse_equals(conn, schema, tmp_path / "replay")
        integrity(conn, schema)


def test_sigterm_to_the_supervisor_drains_the_cluster_and_a_restart_completes(
        broker, postgres, s3, shopflow, tmp_path):
    prefix, schema = "k3.", "k3"
    env = lake_env(broker, prefix, s3, warehouse_url=postgres, warehouse_schema=schema,
                   warehouse_commit_interval_ms=0, kafka_batch=200, lake_flush_ms=300)
    sf(shopflow, ["topics", "create"], env)
    sf(shopflow, ["generate", "--seed", "66", "--events", "30000", *FAULTS, "--out-dir",
                  tmp_path / "gen", "--kafka", broker.brokers, "--topic-prefix", prefix], env)
    hosts = hostfile(tmp_path / "hosts", 2)
    launch = [ROOT / "deploy/cluster/launch.sh", "-n", "2", "-w", "1", "-h", hosts, "-m", "0",
              "--", "run"]
    log = tmp_path / "supervise.log"
    with open(log, "wb") as err:
        sup = subprocess.Popen(launch, env=dict(env, SHOPFLOW_BIN=shopflow),
                               stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(lambda: last_commit(postgres, schema), "a first commit", timeout=180, every=0.05)
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(120) == 0, log.read_text(errors="replace")[-3000:]
    finally:
        if sup.poll() is None:
            sup.kill()
    text = log.read_text(errors="replace")
    assert text.count("stopped messages=") == 2, "both processes drain and stop cleanly"
    assert "a process failed" not in text, text[-3000:]
    # The rest of the data, then: exactly the uninterrupted result.
    sf(shopflow, ["run"], dict(env, SHOPFLOW_RUN_EXIT_WHEN_IDLE_MS="2500"))
    sf(shopflow, ["replay", "--input", tmp_path / "gen", "--output-csv", tmp_path / "replay"], env)
    with psycopg.connect(postgres) as conn:
        assert_warehouse_equals(conn, schema, tmp_path / "replay")
        integrity(conn, schema)
