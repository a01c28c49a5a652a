"""The JSON Schemas in docs/schemas/ and the Rust validator agree on the event contract.

What this proves (see docs/event-contract.md):
1. every record of tests/corpus/malformed.jsonl gets its expected verdict (reason code and
   field path) from the Rust validator, and the matching verdict from the JSON Schema;
2. everything the generator makes is valid for both;
3. on generator output with injected faults, both accept and reject the same lines, except
   size and JSON-syntax rejections, which a schema cannot see.

Instances and schemas are parsed with exact decimals (parse_float=Decimal) and formats are
asserted, as the contract requires. Needs tests/schemas/requirements.txt and a built binary:

    pip install -r tests/schemas/requirements.txt
    cargo build --release
    SHOPFLOW_BIN=target/release/shopflow pytest tests/schemas
"""

import decimal
import json
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from shopflow_cli import read_lines, run

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "docs" / "schemas"
CORPUS = ROOT / "tests" / "corpus" / "malformed.jsonl"
MAX_MESSAGE_BYTES = 65536
SCHEMA_FILES = {"click": "click", "cart": "cart", "purchase": "purchase",
                "fx": "fx_rate", "product": "product", "user": "user"}
GENERATED = {"clicks.jsonl": "click", "carts.jsonl": "cart", "purchases.jsonl": "purchase",
             "fx_rates.jsonl": "fx", "products.jsonl": "product", "users.jsonl": "user"}
# Wide enough for exact `multipleOf` on any sane number; on absurd ones the operation yields
# NaN instead of raising, which fails `multipleOf` (and `maximum` fails them anyway).
DECIMAL_CONTEXT = decimal.Context(prec=1000, traps=[])
KEYWORD_RANK = {"required": 0, "type": 1}  # a wrong type also fails enum/const: report the type
if hasattr(sys, "set_int_max_str_digits"):
    sys.set_int_max_str_digits(0)  # long integer literals are a value error, not a parse error


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def _object(pairs):
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key")
    return obj


def load_json(text):
    """Parses like the contract: exact decimals; no NaN/Infinity, duplicate keys or lone surrogates."""
    value = json.loads(text, parse_float=decimal.Decimal, parse_constant=_no_constant,
                       object_pairs_hook=_object)
    json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")  # UnicodeError on a lone surrogate
    return value


@pytest.fixture(scope="module")
def validators():
    checker = Draft202012Validator.FORMAT_CHECKER
    for fmt, bad, good in [("date-time", "2026-13-01T00:00:00Z", "2026-11-24T10:00:00Z"),
                           ("date", "2026-02-30", "2026-11-24")]:
        assert fmt in checker.checkers and not checker.conforms(bad, fmt) and checker.conforms(good, fmt), (
            f'format "{fmt}" is not really checked: pip install -r tests/schemas/requirements.txt')
    out = {}
    for kind, name in SCHEMA_FILES.items():
        schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(), parse_float=decimal.Decimal)
        Draft202012Validator.check_schema(schema)
        assert schema["$id"] == f"https://shopflow.dev/schemas/{name}.schema.json"
        out[kind] = Draft202012Validator(schema, format_checker=checker)
    return out


def field_path(parts):
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out or "$"


def schema_verdict(validators, kind, raw):
    """(reason, field) of the schema for one raw line; ("unparsable", "$") if Python cannot parse it."""
    try:
        instance = load_json(raw.decode("utf-8"))
    except ValueError:  # UnicodeError and JSONDecodeError included
        return "unparsable", "$"
    with decimal.localcontext(DECIMAL_CONTEXT):
        errors = list(validators[kind].iter_errors(instance))
    if not errors:
        return "ok", ""
    err = min(errors, key=lambda e: KEYWORD_RANK.get(e.validator, 2))
    parts = list(err.absolute_path)
    if err.validator == "required":
        return "missing_field", field_path(parts + [next(f for f in err.validator_value if f not in err.instance)])
    if err.validator == "type":
        return "wrong_type", field_path(parts)
    if err.validator == "enum" and parts and parts[-1] == "currency":
        # The fx enum leaves out USD, which the contract calls invalid_value, not unknown_currency.
        return ("invalid_value" if kind == "fx" and err.instance == "USD" else "unknown_currency"), field_path(parts)
    return "invalid_value", field_path(parts)


def rust_verdicts(shopflow, kind, path):
    """The Rust validator's (reason, field) for every line of a .jsonl file, in order."""
    n = len(read_lines(path))
    out = [json.loads(line) for line in run(shopflow, "validate", "--kind", kind, path).splitlines() if line.strip()]
    assert [v.get("line") for v in out] == list(range(1, n + 1)), (
        f"validate --kind {kind} must print one verdict per line, numbered 1..{n}; got {len(out)}")
    return [("ok", "") if v["ok"] else (v["reason"], v.get("field")) for v in out]


def report(problems, what):
    shown = "\n".join(problems[:60]) + (f"\n... and {len(problems) - 60} more" if len(problems) > 60 else "")
    return f"{len(problems)} {what}:\n{shown}"


def test_corpus_verdicts(shopflow, validators, tmp_path):
    records = [dict(json.loads(line), n=n) for n, line in enumerate(CORPUS.read_text(encoding="utf-8").splitlines(), 1)
               if line.strip()]
    assert len(records) >= 60
    problems = []
    for kind in SCHEMA_FILES:
        mine = [r for r in records if r["kind"] == kind]
        assert mine, f"the corpus has no {kind} record"
        raws = [r["line"].encode("utf-8") for r in mine]
        assert not any(b"\n" in raw for raw in raws), "a corpus line holds a raw newline"
        path = tmp_path / f"{kind}.jsonl"
        path.write_bytes(b"".join(raw + b"\n" for raw in raws))
        for r, raw, rust in zip(mine, raws, rust_verdicts(shopflow, kind, path)):
            want = ("ok", "") if r["expect"] == "ok" else (r["expect"], r["field"])
            where = f"malformed.jsonl:{r['n']} {kind} {r['line'][:120]!r}"
            if r["expect"] == "invalid_json":  # no field to name: "$" or nothing
                rust_ok = rust[0] == "invalid_json" and rust[1] in ("$", "", None)
                want_schema = ("unparsable", "$")
            else:
                rust_ok, want_schema = rust == want, want
            if not rust_ok:
                problems.append(f"rust   {where}: want {want}, got {rust}")
            schema = schema_verdict(validators, kind, raw)
            if schema != want_schema:
                problems.append(f"schema {where}: want {want_schema}, got {schema}")
    assert not problems, report(problems, "corpus verdict(s) differ from `expect`")


def test_generated_data_is_valid_for_both(shopflow, validators, tmp_path):
    run(shopflow, "generate", "--seed", 11, "--events", 20000, "--out-dir", tmp_path)
    problems = []
    for name, kind in GENERATED.items():
        path = tmp_path / name
        lines = read_lines(path)
        assert lines, f"the generator wrote no {kind} line to {name}"
        for n, (raw, rust) in enumerate(zip(lines, rust_verdicts(shopflow, kind, path)), 1):
            schema = schema_verdict(validators, kind, raw)
            if rust[0] != "ok" or schema[0] != "ok":
                problems.append(f"{name}:{n}: rust {rust}, schema {schema}: {raw[:150]!r}")
    assert not problems, report(problems, "generated line(s) rejected")


def test_faulty_data_gets_the_same_verdict(shopflow, validators, tmp_path):
    run(shopflow, "generate", "--seed", 5, "--events", 20000, "--malformed", 0.05, "--out-dir", tmp_path)
    problems, rejected = [], 0
    for name, kind in GENERATED.items():
        path = tmp_path / name
        lines = read_lines(path)
        for n, (raw, rust) in enumerate(zip(lines, rust_verdicts(shopflow, kind, path)), 1):
            schema = schema_verdict(validators, kind, raw)
            rejected += rust[0] != "ok"
            where = f"{name}:{n}: rust {rust}, schema {schema}: {raw[:150]!r}"
            if len(raw) > MAX_MESSAGE_BYTES:
                if rust[0] != "too_large":
                    problems.append(f"{where} (over {MAX_MESSAGE_BYTES} bytes)")
            elif rust[0] in ("too_large", "invalid_json"):
                if rust[0] == "too_large" or schema[0] != "unparsable":
                    problems.append(f"{where} (Python parses it and it is not too large)")
            elif (rust[0] == "ok") != (schema[0] == "ok"):
                problems.append(where)
    assert rejected, "the generator injected no fault, so this test would prove nothing"
    assert not problems, report(problems, "line(s) where the validator and the schema disagree")
