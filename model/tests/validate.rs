//! The validator, one rejection reason at a time, plus the shared corpus of
//! malformed records in `tests/corpus/malformed.jsonl` (also checked against
//! the JSON Schemas by `tests/schemas/test_schema_agreement.py`).

use shopflow_model::validate::{MAX_MESSAGE_BYTES, Record, validate};
use shopflow_model::{EventKind, Reason};

const CLICK: &str = r#"{"event_id":"e1","user_id":"u1","session_id":"s1","product_id":"p1","ts":"2026-11-24T10:00:00.123Z","page":"/product/p1","referrer":""}"#;
const PURCHASE: &str = r#"{"event_id":"e2","user_id":"u1","session_id":"s1","items":[{"product_id":"p1","quantity":2,"unit_price":19.99}],"total_amount":44.97,"currency":"EUR","ts":"2026-11-24T10:00:00Z"}"#;

fn reject(kind: EventKind, text: &str) -> (Reason, String) {
    match validate(kind, text.as_bytes()) {
        Ok(r) => panic!("accepted {text}: {r:?}"),
        Err(e) => {
            assert!(!e.message.is_empty(), "a rejection must explain itself");
            (e.reason, e.field)
        }
    }
}

#[test]
fn valid_messages_parse_to_exact_values() {
    let Ok(Record::Event(shopflow_model::Event::Purchase(p))) =
        validate(EventKind::Purchase, PURCHASE.as_bytes())
    else {
        panic!("purchase should validate")
    };
    assert_eq!(p.items[0].unit_price.units(), 1999);
    assert_eq!(p.total_amount.to_string(), "44.97");
    assert_eq!(p.ts.to_string(), "2026-11-24T10:00:00.000Z");
    assert!(validate(EventKind::Click, CLICK.as_bytes()).is_ok());
}

#[test]
fn too_large_is_checked_before_parsing() {
    let pad = "x".repeat(MAX_MESSAGE_BYTES);
    let big = format!("{},\"pad\":\"{pad}\"}}", &CLICK[..CLICK.len() - 1]);
    assert_eq!(
        reject(EventKind::Click, &big),
        (Reason::TooLarge, "$".into())
    );
    let broken_and_big = "{".repeat(MAX_MESSAGE_BYTES + 1);
    assert_eq!(
        reject(EventKind::Click, &broken_and_big).0,
        Reason::TooLarge
    );
}

#[test]
fn invalid_json_covers_syntax_utf8_and_duplicate_keys() {
    assert_eq!(
        reject(EventKind::Click, &CLICK[..40]).0,
        Reason::InvalidJson
    );
    assert_eq!(reject(EventKind::Click, "").0, Reason::InvalidJson);
    let dup = CLICK.replacen("\"page\"", "\"ts\":\"2026-11-24T10:00:00Z\",\"page\"", 1);
    assert_eq!(reject(EventKind::Click, &dup).0, Reason::InvalidJson);
    let mut bytes = CLICK.as_bytes().to_vec();
    bytes[20] = 0xff;
    let err = validate(EventKind::Click, &bytes).unwrap_err();
    assert_eq!(err.reason, Reason::InvalidJson);
}

#[test]
fn missing_field_names_the_field() {
    let no_ts = CLICK.replace(r#""ts":"2026-11-24T10:00:00.123Z","#, "");
    assert_eq!(
        reject(EventKind::Click, &no_ts),
        (Reason::MissingField, "ts".into())
    );
    let no_price = PURCHASE.replace(r#","unit_price":19.99"#, "");
    assert_eq!(
        reject(EventKind::Purchase, &no_price),
        (Reason::MissingField, "items[0].unit_price".into())
    );
}

#[test]
fn wrong_type_includes_null_and_root() {
    let null_ref = CLICK.replace(r#""referrer":"""#, r#""referrer":null"#);
    assert_eq!(
        reject(EventKind::Click, &null_ref),
        (Reason::WrongType, "referrer".into())
    );
    let string_money = PURCHASE.replace("44.97", "\"44.97\"");
    assert_eq!(
        reject(EventKind::Purchase, &string_money),
        (Reason::WrongType, "total_amount".into())
    );
    let float_qty = PURCHASE.replace("\"quantity\":2", "\"quantity\":2.0");
    assert_eq!(
        reject(EventKind::Purchase, &float_qty),
        (Reason::WrongType, "items[0].quantity".into())
    );
    assert_eq!(
        reject(EventKind::Click, "[1,2]"),
        (Reason::WrongType, "$".into())
    );
}

#[test]
fn invalid_value_covers_ranges_and_formats() {
    let cases = [
        (
            EventKind::Click,
            CLICK.replace("\"e1\"", "\"\""),
            "event_id",
        ),
        (EventKind::Click, CLICK.replace(".123Z", ".123"), "ts"),
        (EventKind::Click, CLICK.replace("/product/p1", ""), "page"),
        (
            EventKind::Purchase,
            PURCHASE.replace("\"quantity\":2", "\"quantity\":0"),
            "items[0].quantity",
        ),
        (
            EventKind::Purchase,
            PURCHASE.replace("\"quantity\":2", "\"quantity\":1001"),
            "items[0].quantity",
        ),
        (
            EventKind::Purchase,
            PURCHASE.replace("19.99", "19.999"),
            "items[0].unit_price",
        ),
        (
            EventKind::Purchase,
            PURCHASE.replace("44.97", "-1"),
            "total_amount",
        ),
        (
            EventKind::Purchase,
            PURCHASE.replace(
                r#"[{"product_id":"p1","quantity":2,"unit_price":19.99}]"#,
                "[]",
            ),
            "items",
        ),
    ];
    for (kind, text, field) in cases {
        assert_eq!(
            reject(kind, &text),
            (Reason::InvalidValue, field.to_string()),
            "{text}"
        );
    }
    let long_id = CLICK.replace("\"u1\"", &format!("\"{}\"", "u".repeat(129)));
    assert_eq!(
        reject(EventKind::Click, &long_id),
        (Reason::InvalidValue, "user_id".into())
    );
}

#[test]
fn unknown_currency_is_its_own_reason() {
    for code in ["XYZ", "usd", "BTC"] {
        let text = PURCHASE.replace("\"EUR\"", &format!("\"{code}\""));
        assert_eq!(
            reject(EventKind::Purchase, &text),
            (Reason::UnknownCurrency, "currency".into())
        );
    }
    let fx_usd = r#"{"date":"2026-11-24","base":"USD","currency":"USD","rate":1}"#;
    assert_eq!(
        reject(EventKind::Fx, fx_usd),
        (Reason::InvalidValue, "currency".into())
    );
}

#[test]
fn the_first_broken_rule_in_contract_order_wins() {
    let two_faults = PURCHASE
        .replace("\"EUR\"", "\"XYZ\"")
        .replace("\"u1\"", "5");
    assert_eq!(
        reject(EventKind::Purchase, &two_faults),
        (Reason::WrongType, "user_id".into())
    );
}

#[test]
fn corpus_verdicts_match_expectations() {
    // Read at run time: a test binary reused from another checkout (a shared
    // target dir) must not look for the corpus in that checkout.
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let path = format!("{dir}/../tests/corpus/malformed.jsonl");
    let corpus = std::fs::read_to_string(&path).expect("corpus file");
    let mut failures = Vec::new();
    let mut checked = 0;
    for entry in corpus.lines().filter(|l| !l.trim().is_empty()) {
        let e: serde_json::Value = serde_json::from_str(entry).expect("corpus lines are JSON");
        let kind = EventKind::from_name(e["kind"].as_str().unwrap()).expect("known kind");
        let (line, expect) = (e["line"].as_str().unwrap(), e["expect"].as_str().unwrap());
        let got = match validate(kind, line.as_bytes()) {
            Ok(_) => ("ok".to_string(), String::new()),
            Err(err) => (err.reason.code().to_string(), err.field),
        };
        let want_field = e["field"].as_str().unwrap_or_default();
        if got.0 != expect || (expect != "ok" && expect != "invalid_json" && got.1 != want_field) {
            failures.push(format!(
                "{kind} {line}: expected {expect} at {want_field}, got {got:?}"
            ));
        }
        checked += 1;
    }
    assert!(checked >= 60, "corpus too small: {checked}");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
