#!/usr/bin/env python3
"""The race (`make bench-race`): shopflow's bounded replay against a batch SQL
engine on the same files.

Generates a data set (cached under ~/.cache/shopflow/race), runs
`shopflow replay --input D --output-csv OUT --workers W` and DuckDB's SQL
(scripts/race.sql) for `agg_sales_minute` and `agg_funnel_5min`, checks that
both tables agree row for row, and prints both wall times, their ratio,
events/s and shopflow's peak RSS. It asserts correctness, never timing.

    make bench-race                      # 2,000,000 events
    RACE_EVENTS=200000 make bench-race   # any size
"""

import argparse
import csv
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("SHOPFLOW_CACHE", Path.home() / ".cache/shopflow"))


def run_measured(args):
    """Runs a command to completion; returns (wall seconds, peak RSS in bytes)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench-race: {' '.join(map(str, args))} failed:\n{stderr.decode()[-3000:]}")
    return wall, usage.ru_maxrss * 1024


def data_set(binary, seed, events):
    """The generated files, made once per (seed, size) and kept in the cache."""
    out = CACHE / "race" / f"seed{seed}-events{events}"
    if not (out / "manifest.json").is_file():
        shutil.rmtree(out, ignore_errors=True)
        print(f"bench-race: generating {events:,} events into {out}", flush=True)
        subprocess.run([binary, "generate", "--seed", str(seed), "--events", str(events),
                        "--duplicates", "0.01", "--late", "0.05", "--out-dir", str(out)],
                       check=True, stdout=subprocess.DEVNULL)
    return out


def duckdb_tables(data):
    sql = (ROOT / "scripts/race.sql").read_text().replace("{dir}", str(data))
    con = duckdb.connect()
    start = time.perf_counter()
    con.execute(sql)
    tables = {
        "agg_sales_minute": con.execute("SELECT * FROM sales_csv").fetchall(),
        "agg_funnel_5min": con.execute("SELECT * FROM funnel_csv").fetchall(),
    }
    wall = time.perf_counter() - start
    return wall, {t: sorted(tuple(str(v) for v in r) for r in rows) for t, rows in tables.items()}


def csv_table(path):
    with open(path, newline="") as f:
        return sorted(tuple(r) for r in list(csv.reader(f))[1:])


def machine():
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    except OSError:
        mem = 0
    return f"{os.cpu_count()} vCPU ({cpu}), {mem:.0f} GiB, {platform.system()} {platform.release()}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=int(os.environ.get("RACE_EVENTS", 2_000_000)))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bin", default=os.environ.get("SHOPFLOW_BIN"))
    args = parser.parse_args()
    if not args.bin:
        sys.exit("bench-race: set SHOPFLOW_BIN (or --bin) to a release build of shopflow")
    data = data_set(args.bin, args.seed, args.events)
    out = CACHE / "race" / "out"
    shutil.rmtree(out, ignore_errors=True)
    print(f"bench-race: shopflow replay --workers {args.workers} over {data}", flush=True)
    sf_wall, sf_rss = run_measured([args.bin, "replay", "--input", str(data), "--output-csv",
                                    str(out), "--workers", str(args.workers)])
    print("bench-race: DuckDB over the same files", flush=True)
    db_wall, db = duckdb_tables(data)
    problems = []
    for table, rows in db.items():
        ours = csv_table(out / f"{table}.csv")
        if ours != rows:
            diff = sorted(set(ours) ^ set(rows))[:3]
            problems.append(f"{table}: {len(ours)} rows vs DuckDB's {len(rows)}; e.g. {diff}")
    print()
    print(f"machine: {machine()}; duckdb {duckdb.__version__}")
    print(f"data: {args.events:,} events (seed {args.seed}, 1% duplicates, 5% late)")
    print(f"| engine | wall (s) | events/s | peak RSS |")
    print(f"|---|---:|---:|---:|")
    print(f"| shopflow replay, {args.workers} workers, all tables | {sf_wall:.2f} | "
          f"{args.events / sf_wall:,.0f} | {sf_rss / 2**20:,.0f} MiB |")
    print(f"| DuckDB, agg_sales_minute + agg_funnel_5min | {db_wall:.2f} | "
          f"{args.events / db_wall:,.0f} | (in process) |")
    print(f"ratio shopflow / DuckDB: {sf_wall / db_wall:.1f}x")
    if problems:
        sys.exit("bench-race: the tables differ:\n" + "\n".join(problems))
    print("tables agree row for row: agg_sales_minute, agg_funnel_5min")


if __name__ == "__main__":
    main()
