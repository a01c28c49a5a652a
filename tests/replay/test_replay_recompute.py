"""`shopflow replay` equals an independent Python recomputation of docs/metrics.md.

What this proves, on seeded generator output (duplicates, late and malformed lines) that the
test then roughens with valid but awkward inputs the generator does not make (timestamps with
offsets, lower-case t/z and sub-millisecond digits; conflicting re-sends of one event_id;
an older, a future and a re-offered FX record; a currency with no rate, so orders wait):
1. replay with 1 and with 2 workers writes byte-identical CSV files for every table;
2. agg_sales_minute, agg_funnel_5min, agg_top_products_hour, fact_orders, fact_order_items
   and dim_time equal, row for row and as exact strings, what this file computes from the
   definitions with the standard library alone (exact decimals, integer cents); fact_clicks,
   fact_cart and dim_user have the expected number of rows and the expected keys;
3. the data is not vacuous: many sales minutes and orders, duplicates, late events.
`shopflow validate` is used only to tell valid lines from invalid ones. Run it with:

    cargo build --release
    SHOPFLOW_BIN=target/release/shopflow pytest tests/replay
"""

import collections
import csv
import datetime
import io
import json
import re
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest

from shopflow_cli import read_lines, run

KINDS = {"clicks": "click", "carts": "cart", "purchases": "purchase",
         "fx_rates": "fx", "products": "product", "users": "user"}
TABLES = ["fact_clicks", "fact_cart", "fact_orders", "fact_order_items", "dim_user", "dim_product",
          "dim_currency", "dim_time", "agg_sales_minute", "agg_funnel_5min", "agg_top_products_hour"]
HEADERS = {
    "agg_sales_minute": "window_start,orders,items,revenue_usd,aov_usd,buyers",
    "agg_funnel_5min": "window_start,sessions_active,sessions_carted,sessions_purchased",
    "agg_top_products_hour": "window_start,ranking,rank,product_id,value",
    "fact_orders": "event_id,user_id,session_id,ts,currency,total_amount,total_amount_usd,line_count,item_count",
    "fact_order_items": "event_id,line_number,product_id,quantity,unit_price,line_amount,line_amount_usd,ts",
    "dim_time": "ts_minute,date,hour,minute,weekday,is_weekend,month,quarter,year",
}
TS = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:[Zz]|([+-])(\d\d):(\d\d))\Z", re.A)
TS_FIELD = re.compile(rb'"ts":"([^"]*)"')
EPOCH, MS = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc), datetime.timedelta(milliseconds=1)
MINUTE, HOUR = 60_000, 3_600_000


def parse_ts(text):
    """RFC 3339 with a zone -> UTC epoch ms, digits past the millisecond truncated; None if not one."""
    m = TS.match(text)
    try:
        ms = (datetime.datetime(*map(int, m.groups()[:6]), tzinfo=datetime.timezone.utc) - EPOCH) // MS
    except (AttributeError, ValueError):  # no match, or no real date-time
        return None
    ms += int((m[7] or "")[:3].ljust(3, "0"))
    return ms - (int(m[9]) * 60 + int(m[10])) * MINUTE * (1 if m[8] == "+" else -1) if m[8] else ms


def utc(ms):
    return EPOCH + datetime.timedelta(milliseconds=ms)


def fmt_ts(ms):  # RFC 3339 UTC, milliseconds only when not zero
    return utc(ms).strftime("%Y-%m-%dT%H:%M:%S") + (f".{ms % 1000:03d}" if ms % 1000 else "") + "Z"


def render_ts(ms, style):  # the same instant, written four ways the contract accepts
    body = utc(ms + [0, 330, 0, -480][style] * MINUTE).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}"
    return [body + "Z", body + "+05:30", (body + "987z").replace("T", "t"), body + "123456-08:00"][style]


def cents(value):  # exact money (int, or Decimal from the JSON text) -> integer cents
    c = Decimal(value) * 100
    assert c == c.to_integral_value(), value
    return int(c)


def fmt_money(c):
    return f"{c // 100}.{c % 100:02d}"


def div_half_even(n, d):  # round_half_even(n / d) for n >= 0, d > 0
    q, r = divmod(n, d)
    return q + 1 if 2 * r > d or (2 * r == d and q % 2) else q


def to_usd(amount_cents, rate_micro):  # round_half_even(amount / rate, 2), exactly
    return div_half_even(amount_cents * 1_000_000, rate_micro)


def roughen(d, day):
    """Valid but awkward input the generator leaves out; see the module docstring."""
    prev, nxt = (str(datetime.date.fromisoformat(day) + datetime.timedelta(days=k)) for k in (-1, 1))
    fx = [raw for raw in read_lines(d / "fx_rates.jsonl") if b'"BRL"' not in raw]  # BRL orders wait
    fx.insert(0, f'{{"date":"{prev}","base":"USD","currency":"EUR","rate":0.5}}'.encode())
    fx.append(f'{{"date":"{nxt}","base":"USD","currency":"GBP","rate":0.5}}'.encode())
    fx.append(f'{{"date":"{day}","base":"USD","currency":"JPY","rate":150}}'.encode())
    (d / "fx_rates.jsonl").write_bytes(b"".join(raw + b"\n" for raw in fx))
    for name in ("clicks", "carts", "purchases"):
        out, extra = [], []
        for i, raw in enumerate(read_lines(d / f"{name}.jsonl")):
            m = TS_FIELD.search(raw)
            ms = parse_ts(m[1].decode("latin-1")) if m else None  # malformed lines stay as they are
            if ms is not None:
                with_ts = lambda t, k, orig=raw: orig[:m.start(1)] + render_ts(t, k % 4).encode() + orig[m.end(1):]
                if i % 37 == 0:  # same instant, other spelling
                    raw = with_ts(ms, i // 37)
                if i % 53 == 0:  # an earlier, different version: it wins, in another session
                    extra.append(with_ts(ms - 30 * MINUTE, i // 53).replace(b'"session_id":"', b'"session_id":"z'))
                if name == "purchases" and i % 19 == 0:  # same ts, other bytes: smaller bytes win
                    extra.append(re.sub(rb'"total_amount":[^,}]*', b'"total_amount":0', raw))
            out.append(raw)
        (d / f"{name}.jsonl").write_bytes(b"".join(raw + b"\n" for raw in out + extra))


@pytest.fixture(scope="module")
def data(shopflow):
    with tempfile.TemporaryDirectory(prefix="shopflow-replay-") as tmp:
        src = Path(tmp) / "in"
        run(shopflow, "generate", "--seed", 7, "--events", 100000, "--duplicates", 0.01, "--late", 0.05,
            "--malformed", 0.002, "--out-dir", src)
        manifest = json.loads((src / "manifest.json").read_text())
        roughen(src, manifest["start"][:10])
        valid = {}
        for name, kind in KINDS.items():
            lines = read_lines(src / f"{name}.jsonl")
            verdicts = [json.loads(v) for v in run(shopflow, "validate", "--kind", kind, src / f"{name}.jsonl")
                        .splitlines() if v.strip()]
            assert [v["line"] for v in verdicts] == list(range(1, len(lines) + 1)), f"validate {name}: a verdict a line"
            valid[name] = [raw for raw, v in zip(lines, verdicts) if v["ok"]]
        outs = {}
        for workers in (1, 2):
            run(shopflow, "replay", "--input", src, "--output-csv", Path(tmp) / f"out{workers}", "--workers", workers)
            outs[workers] = {p.stem: p.read_bytes() for p in (Path(tmp) / f"out{workers}").glob("*.csv")}
        yield manifest, valid, outs


def dedup(raws):
    """event_id -> the version with the smallest (UTC ts, raw bytes), with its ts in ms as "ms"."""
    best = {}
    for raw in raws:
        ev = json.loads(raw, parse_float=Decimal)
        key = (parse_ts(ev["ts"]), raw)
        if ev["event_id"] not in best or key < best[ev["event_id"]][0]:
            best[ev["event_id"]] = (key, ev)
    return {eid: dict(ev, ms=key[0]) for eid, (key, ev) in best.items()}


@pytest.fixture(scope="module")
def expected(data):
    """(rows per table, keys per table, number of deduplicated purchases), from docs/metrics.md."""
    _, valid, _ = data
    clicks, carts, orders = (dedup(valid[n]) for n in ("clicks", "carts", "purchases"))
    events = [*clicks.values(), *carts.values(), *orders.values()]
    fx = collections.defaultdict(dict)
    for raw in valid["fx_rates"]:
        rec = json.loads(raw, parse_float=Decimal)
        fx[rec["currency"]][rec["date"]] = int(Decimal(rec["rate"]) * 1_000_000)  # last offered wins
    exp = {t: [] for t in TABLES}
    sales = collections.defaultdict(lambda: [0, 0, 0, set()])
    top = {r: collections.defaultdict(collections.Counter) for r in ("clicks", "revenue")}
    for eid in sorted(orders):
        o = orders[eid]
        ts = fmt_ts(o["ms"])
        dates = [d for d in fx[o["currency"]] if d <= ts[:10]]  # on or before the order's UTC date
        rate = 1_000_000 if o["currency"] == "USD" else (fx[o["currency"]][max(dates)] if dates else None)
        if rate is None:
            continue  # waiting for a rate: in no order fact or sales figure
        total, items = cents(o["total_amount"]), sum(it["quantity"] for it in o["items"])
        exp["fact_orders"].append([eid, o["user_id"], o["session_id"], ts, o["currency"], fmt_money(total),
                                   fmt_money(to_usd(total, rate)), str(len(o["items"])), str(items)])
        for n, it in enumerate(o["items"], 1):
            price = cents(it["unit_price"])
            line = price * it["quantity"]
            exp["fact_order_items"].append([eid, str(n), it["product_id"], str(it["quantity"]), fmt_money(price),
                                            fmt_money(line), fmt_money(to_usd(line, rate)), ts])
            top["revenue"][o["ms"] // HOUR][it["product_id"]] += to_usd(line, rate)
        s = sales[o["ms"] // MINUTE]
        s[0], s[1], s[2] = s[0] + 1, s[1] + items, s[2] + to_usd(total, rate)
        s[3].add(o["user_id"])
    for m, (n, items, revenue, buyers) in sorted(sales.items()):
        exp["agg_sales_minute"].append([fmt_ts(m * MINUTE), str(n), str(items), fmt_money(revenue),
                                        fmt_money(div_half_even(revenue, n)), str(len(buyers))])
    for c in clicks.values():
        top["clicks"][c["ms"] // HOUR][c["product_id"]] += 1
    for h in sorted(set(top["revenue"]) | set(top["clicks"])):
        for ranking in ("clicks", "revenue"):
            ranked = sorted((-v, pid) for pid, v in top[ranking][h].items() if v > 0)[:10]
            show = fmt_money if ranking == "revenue" else str
            exp["agg_top_products_hour"] += [[fmt_ts(h * HOUR), ranking, str(r), pid, show(-v)]
                                             for r, (v, pid) in enumerate(ranked, 1)]
    funnel = collections.defaultdict(lambda: (set(), set(), set()))  # active, carted, purchased
    for kind, evs in enumerate((clicks, carts, orders)):
        for e in evs.values():
            for level in range(kind + 1):
                funnel[e["ms"] // (5 * MINUTE)][level].add(e["session_id"])
    exp["agg_funnel_5min"] = [[fmt_ts(w * 5 * MINUTE), *(str(len(s)) for s in funnel[w])] for w in sorted(funnel)]
    for m in sorted({e["ms"] // MINUTE for e in events}):
        t = utc(m * MINUTE)
        exp["dim_time"].append([fmt_ts(m * MINUTE), t.date().isoformat(), str(t.hour), str(t.minute),
                                str(t.isoweekday()), "true" if t.isoweekday() >= 6 else "false",
                                str(t.month), str((t.month + 2) // 3), str(t.year)])
    users = {json.loads(raw)["user_id"] for raw in valid["users"]} | {e["user_id"] for e in events}
    return exp, {"fact_clicks": set(clicks), "fact_cart": set(carts), "dim_user": users}, len(orders)


def table(outs, name):
    assert name in outs[1], f"replay wrote no {name}.csv"
    rows = list(csv.reader(io.StringIO(outs[1][name].decode("utf-8"), newline="")))
    assert rows, f"{name}.csv is empty (no header)"
    return rows[0], rows[1:]


def test_workers_agree(data):
    _, _, outs = data
    written = TABLES + ["dq_conflicts"]
    assert sorted(outs[1]) == sorted(written), f"tables written: {sorted(outs[1])}"
    differ = [t for t in written if outs[1][t] != outs[2].get(t)]
    assert not differ, f"--workers 1 and --workers 2 differ on: {differ}"


@pytest.mark.parametrize("name", list(HEADERS))
def test_table_equals_recomputation(data, expected, name):
    header, rows = table(data[2], name)
    assert ",".join(header) == HEADERS[name], f"{name}.csv header: {header}"
    want = expected[0][name]
    if rows != want:
        got_set, want_set = set(map(tuple, rows)), set(map(tuple, want))
        missing, extra = sorted(want_set - got_set), sorted(got_set - want_set)
        pytest.fail(f"{name}: {len(rows)} rows, expected {len(want)}; {len(missing)} expected row(s) missing, "
                    f"{len(extra)} unexpected\n  expected: {missing[:10]}\n  got:      {extra[:10]}"
                    + ("" if missing or extra else "\n  same rows, wrong order"), pytrace=False)


@pytest.mark.parametrize("name", ["fact_clicks", "fact_cart", "dim_user"])
def test_keys_equal_recomputation(data, expected, name):
    header, rows = table(data[2], name)
    assert header[0] == ("user_id" if name == "dim_user" else "event_id"), header
    want, got = expected[1][name], [r[0] for r in rows]
    assert len(got) == len(want), f"{name}: {len(got)} rows, expected {len(want)}"
    assert set(got) == want, f"{name}: missing {sorted(want - set(got))[:10]}, extra {sorted(set(got) - want)[:10]}"


def test_not_vacuous(data, expected):
    manifest, _, _ = data
    exp, _, n_orders = expected
    assert len(exp["agg_sales_minute"]) > 50 and len(exp["fact_orders"]) > 100, "too little traffic to prove anything"
    assert len(exp["fact_orders"]) < n_orders, "no order waits for a rate"
    for fault in ("duplicates", "late"):
        assert sum(manifest["faults"][fault].values()) > 0, f"the generator injected no {fault}"
