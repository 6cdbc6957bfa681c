use super::*;
use crate::pooltool::fixtures::{
    BASE_KEYS, POOL, TIP_HASH, USER, fake_block, full_tip_query, identity, keys, logs, owned, pairs,
};

#[test]
fn decodes_the_header_at_jmanagers_offsets() {
    let block = fake_block(762, 176, 4242, [0xab; 32], [0xcd; 32]);
    let header = decode_header(&block).unwrap();
    assert_eq!(
        header,
        TipHeader {
            epoch: 176,
            slot: 4242,
            parent: "ab".repeat(32),
            pool_id: "cd".repeat(32),
        }
    );
    // The same fields read the way jmanager reads jcli's hex dump.
    let dump = hex(&block);
    assert_eq!(
        u32::from_str_radix(&dump[16..24], 16).unwrap(),
        header.epoch
    );
    assert_eq!(u32::from_str_radix(&dump[24..32], 16).unwrap(), header.slot);
    assert_eq!(dump[104..168], header.parent);
    assert_eq!(dump[168..232], header.pool_id);
    // A prefix is enough; shorter is not; a header without a leader id is refused.
    assert_eq!(decode_header(&block[..HEADER_PREFIX_LEN]), Some(header));
    assert_eq!(decode_header(&block[..HEADER_PREFIX_LEN - 1]), None);
    assert_eq!(decode_header(&[]), None);
    assert_eq!(decode_header(&fake_block(82, 0, 0, [0; 32], [0; 32])), None);
    assert!(decode_header(&fake_block(114, 1, 2, [0; 32], [0; 32])).is_some());
}

#[test]
fn decodes_the_simulators_blocks() {
    // What nodekeeper-sim makes with `ChainParams::try_new(1_700_000_000, 2, 60, 7, 3, None)`
    // (its chain tests decode the same blocks with this decoder): the first bytes of block 500
    // (date 8.20, parent block 499's hash, the pool id) and the whole block0.
    let bytes = |hex: &str| -> Vec<u8> {
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).unwrap();
        (0..hex.len()).step_by(2).map(byte).collect()
    };
    let header = decode_header(&bytes(concat!(
        "02b60002000000000000000800000014000001f4eec395f9586942eba792c813964d3461b5c297fb0256",
        "df6403a0e18e847c7faed1377c11c1f18a425224d97453cd5162b0e680bd68420901afdb1985373e2ce1",
        "97b4860a586d7d9bac87fb5d8f84d617c518840ee92dc7aaa5a4e5937cdb63ef",
    )))
    .unwrap();
    assert_eq!((u64::from(header.epoch), u64::from(header.slot)), (8, 20));
    let parent = "d1377c11c1f18a425224d97453cd5162b0e680bd68420901afdb1985373e2ce1";
    assert_eq!(header.parent, parent);
    let pool = "97b4860a586d7d9bac87fb5d8f84d617c518840ee92dc7aaa5a4e5937cdb63ef";
    assert_eq!(header.pool_id, pool);
    // block0 carries no leader id.
    let block0 = concat!(
        "00520000000000000000000000000000000000000ae7e7ce0903612c50efcca915a911a39fea06a4b7e5",
        "86b52bfc160246d758590000000000000000000000000000000000000000000000000000000000000000",
    );
    assert_eq!(decode_header(&bytes(block0)), None);
}

#[test]
fn genesis_prefix_is_seven_characters() {
    let mut id = identity();
    assert_eq!(id.genesis_prefix(), "8e4d2a3");
    id.genesis_hash = " 8e4d\n".into();
    assert_eq!(id.genesis_prefix(), "8e4d");
    id.genesis_hash = "ééééééééé".into();
    assert_eq!(id.genesis_prefix(), "ééééééé");
}

#[test]
fn builds_the_tip_query() {
    let base = Url::parse("https://api.pooltool.io/v0/sharemytip").unwrap();
    let mut report = TipReport {
        height: 405_672,
        hash: TIP_HASH.into(),
        version: "jormungandr 0.9.0-rc1+abc".into(),
        header: Some(TipHeader {
            epoch: 176,
            slot: 4242,
            parent: "ab".repeat(32),
            pool_id: "cd".repeat(32),
        }),
    };
    let url = tip_request_url(&base, &identity(), &report);
    assert_eq!(pairs(&url), full_tip_query("jormungandr 0.9.0-rc1+abc"));
    assert!(
        url.as_str()
            .ends_with("&jormver=jormungandr%200.9.0-rc1%2Babc&platform=nodekeeper"),
        "{url}"
    );
    assert_eq!(url.path(), "/v0/sharemytip");
    // Without the header: the core only. A query already in the base is kept.
    report.header = None;
    let base = Url::parse("http://127.0.0.1:9/sharemytip?key=v+w").unwrap();
    let url = tip_request_url(&base, &identity(), &report);
    assert_eq!(
        pairs(&url),
        owned(&[
            ("key", "v w"),
            ("poolid", POOL),
            ("userid", USER),
            ("genesispref", "8e4d2a3"),
            ("mytip", "405672"),
            ("lasthash", TIP_HASH),
        ])
    );
}

#[test]
fn slot_list_is_the_exact_epoch_sorted() {
    let text = slots_json(&logs(), 5);
    assert_eq!(
        text,
        concat!(
            r#"[{"scheduled_at_date":"5.7","scheduled_at_time":"1970-01-12T15:10:14+00:00"},"#,
            r#"{"scheduled_at_date":"5.30","scheduled_at_time":"1970-01-12T15:11:00+00:00"},"#,
            r#"{"scheduled_at_date":"5.400","scheduled_at_time":"1970-01-12T15:23:20+00:00"}]"#
        )
    );
    assert_eq!(count_slots(&text), Some(3));
    assert_eq!(slots_json(&logs(), 6), "[]");
    assert_eq!(count_slots("[]"), Some(0));
    assert_eq!(count_slots("{}"), None);
    assert_eq!(count_slots("garbage"), None);
    // The same list in another order gives the same text (and hash).
    let mut reversed = logs();
    reversed.reverse();
    assert_eq!(slots_json(&reversed, 5), text);
}

#[test]
fn builds_the_slots_body_per_mode() {
    let body = slots_body(&identity(), 176, 3, &Commitment::None);
    assert_eq!(keys(&body), BASE_KEYS);
    assert_eq!(
        body,
        json!({"currentepoch": "176", "poolid": POOL, "genesispref": "8e4d2a3",
               "userid": USER, "assigned_slots": "3"})
    );
    let body = slots_body(
        &identity(),
        176,
        0,
        &Commitment::Hash {
            this_epoch_hash: "f00".into(),
            last_epoch_slots: "[]".into(),
        },
    );
    assert_eq!(keys(&body)[..5], BASE_KEYS);
    assert_eq!(keys(&body)[5..], ["this_epoch_hash", "last_epoch_slots"]);
    assert_eq!(body["assigned_slots"], "0");
    assert_eq!(body["this_epoch_hash"], "f00");
    assert_eq!(body["last_epoch_slots"], "[]");
    let body = slots_body(
        &identity(),
        176,
        2,
        &Commitment::Gpg {
            previous_epoch_key: String::new(),
            encrypted_slots: "-----BEGIN PGP MESSAGE-----\n…".into(),
        },
    );
    assert_eq!(keys(&body)[5..], ["previous_epoch_key", "encrypted_slots"]);
    assert_eq!(body["previous_epoch_key"], "");
    assert!(body.as_object().unwrap().values().all(Value::is_string));
}

#[test]
fn judges_answers() {
    let rejected = |s: &str| Err(ReportError::Rejected(s.into()));
    let cases: Vec<(u16, &str, Result<(), ReportError>)> = vec![
        (200, r#"{"success":true,"confidence":true}"#, Ok(())),
        (201, r#"{"success":true}"#, Ok(())),
        (
            500,
            r#"{"success":true}"#,
            Err(ExchangeError::Status(500).into()),
        ),
        (404, "", Err(ExchangeError::Status(404).into())),
        (
            200,
            r#"{"success":false,"message":{"error":"We were unable to parse"}}"#,
            rejected("\"We were unable to parse\""),
        ),
        (
            200,
            r#"{"success":false,"error":"bad user"}"#,
            rejected("\"bad user\""),
        ),
        (
            200,
            r#"{"success":false,"error":null}"#,
            rejected("no \"success\": true in the answer"),
        ),
        (
            200,
            r#"{"success":"true"}"#,
            rejected("no \"success\": true in the answer"),
        ),
        (
            200,
            r#"{"success":false,"error":{"code":3}}"#,
            rejected("\"{\\\"code\\\":3}\""),
        ),
        (200, "<html>", rejected("not JSON: \"<html>\"")),
    ];
    for (status, body, expected) in cases {
        assert_eq!(
            check_answer(status, body.as_bytes()),
            expected,
            "{status} {body}"
        );
    }
    let long = format!(r#"{{"success":false,"error":"{}"}}"#, "x".repeat(10_000));
    let error = check_answer(200, long.as_bytes()).unwrap_err();
    assert!(error.to_string().len() < 300);
}
