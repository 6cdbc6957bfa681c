//! The template merge: its rules, key order, no sharing with its inputs, type conflicts, the
//! fallback variant and back, dotted paths.

use serde_json::json;

use super::*;

#[track_caller]
fn check_merge(template: Value, overrides: Value, expected: Value) {
    let template_before = template.clone();
    let overrides_before = overrides.clone();
    let merged = merge(&template, &overrides);
    assert_eq!(merged, expected, "merge({template}, {overrides})");
    assert_eq!(template, template_before, "template mutated");
    assert_eq!(overrides, overrides_before, "overrides mutated");
}

#[test]
fn merge_rules() {
    let cases = [
        // Objects merge recursively.
        (
            json!({"rest": {"listen": "127.0.0.1:3100"}, "storage": "/s"}),
            json!({"rest": {"listen": "127.0.0.1:3101"}}),
            json!({"rest": {"listen": "127.0.0.1:3101"}, "storage": "/s"}),
        ),
        (
            json!({"a": {"b": {"c": 1, "d": 2}}}),
            json!({"a": {"b": {"d": 3}}}),
            json!({"a": {"b": {"c": 1, "d": 3}}}),
        ),
        // Scalars overwrite, whatever their type.
        (json!({"a": 1}), json!({"a": 2.5}), json!({"a": 2.5})),
        (json!({"a": "x"}), json!({"a": true}), json!({"a": true})),
        // null overwrites (and stays).
        (
            json!({"a": {"b": 1}, "c": 2}),
            json!({"a": null}),
            json!({"a": null, "c": 2}),
        ),
        // Lists replace whole: a shorter list drops the template's extras...
        (
            json!({"peers": [{"id": "t1"}, {"id": "t2"}]}),
            json!({"peers": [{"id": "o1"}]}),
            json!({"peers": [{"id": "o1"}]}),
        ),
        // ...scalar elements are overwritten...
        (
            json!({"l": [1, 2, 3]}),
            json!({"l": [9]}),
            json!({"l": [9]}),
        ),
        // ...a longer list is taken as is, and an empty list empties.
        (
            json!({"l": [1]}),
            json!({"l": [7, 8, 9]}),
            json!({"l": [7, 8, 9]}),
        ),
        (json!({"l": [1, 2]}), json!({"l": []}), json!({"l": []})),
        // Elements of a replacing list are not merged with the template's elements.
        (
            json!({"l": [{"a": 1, "b": 2}]}),
            json!({"l": [{"a": 5}]}),
            json!({"l": [{"a": 5}]}),
        ),
        // A key missing from the template is added, nested ones too.
        (
            json!({"a": 1}),
            json!({"b": {"c": [1]}}),
            json!({"a": 1, "b": {"c": [1]}}),
        ),
        (
            json!({"a": {}}),
            json!({"a": {"x": 1}}),
            json!({"a": {"x": 1}}),
        ),
        // An empty override changes nothing.
        (
            json!({"a": [1], "b": {"c": 2}}),
            json!({}),
            json!({"a": [1], "b": {"c": 2}}),
        ),
        // A change of type replaces (type_conflicts reports it).
        (json!({"a": {"b": 1}}), json!({"a": [1]}), json!({"a": [1]})),
        (
            json!({"a": [1]}),
            json!({"a": {"b": 1}}),
            json!({"a": {"b": 1}}),
        ),
        // A non-object root replaces.
        (json!({"a": 1}), json!([1]), json!([1])),
        (json!({"a": 1}), json!(null), json!(null)),
    ];
    for (template, overrides, expected) in cases {
        check_merge(template, overrides, expected);
    }
}

#[test]
fn merge_result_shares_nothing_with_its_inputs() {
    let template = json!({"p2p": {"trusted_peers": [{"id": "t"}]}, "log": [{"level": "info"}]});
    let overrides = json!({"extra": {"k": [1]}});
    let mut merged = merge(&template, &overrides);
    merged["p2p"]["trusted_peers"][0]["id"] = json!("changed");
    merged["log"][0]["level"] = json!("debug");
    merged["extra"]["k"][0] = json!(2);
    assert_eq!(template["p2p"]["trusted_peers"][0]["id"], "t");
    assert_eq!(template["log"][0]["level"], "info");
    assert_eq!(overrides["extra"]["k"][0], 1);
}

#[test]
fn merge_keeps_template_key_order_then_new_keys() {
    let template = json!({"log": [], "p2p": {}, "rest": {}});
    let overrides = json!({"zzz": 1, "rest": {"listen": "x"}, "aaa": 2});
    let merged = merge(&template, &overrides);
    let keys: Vec<&str> = merged
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut probe = Map::new();
    probe.insert("b".to_string(), Value::Null);
    probe.insert("a".to_string(), Value::Null);
    if probe.keys().next().map(String::as_str) == Some("b") {
        // serde_json with preserve_order.
        assert_eq!(keys, ["log", "p2p", "rest", "zzz", "aaa"]);
    } else {
        assert_eq!(keys, ["aaa", "log", "p2p", "rest", "zzz"]);
    }
}

fn conflict(path: &str, template_kind: &'static str, override_kind: &'static str) -> TypeConflict {
    TypeConflict {
        path: path.to_string(),
        template_kind,
        override_kind,
    }
}

#[test]
fn type_conflicts_rules() {
    let template = json!({
        "log": [{"format": "plain", "level": "info", "output": "stderr"}],
        "p2p": {
            "trusted_peers": [{"address": "/ip4/1.2.3.4/tcp/3000", "id": "ab"}],
            "max_connections": 768,
            "topics_of_interest": {"blocks": "high"},
        },
        "rest": {"listen": "127.0.0.1:3100"},
        "mixed": [1, "a"],
        "empty": [],
        "unset": null,
        "flag": true,
    });
    let cases: Vec<(Value, Vec<TypeConflict>)> = vec![
        // Same types, keys the template lacks, null, int vs float: no conflict.
        (json!({"rest": {"listen": "0.0.0.0:1"}}), vec![]),
        (json!({"p2p": {"max_connections": 1.5}}), vec![]),
        (json!({"p2p": {"new_key": [1]}, "new": "x"}), vec![]),
        (json!({"p2p": null, "rest": {"listen": null}}), vec![]),
        (json!({"unset": {"a": 1}}), vec![]),
        (json!({"empty": [1, "a", {}]}), vec![]),
        (json!({"flag": false}), vec![]),
        // Scalar vs scalar of another kind.
        (
            json!({"p2p": {"max_connections": "768"}}),
            vec![conflict("p2p.max_connections", "number", "string")],
        ),
        (
            json!({"flag": 1}),
            vec![conflict("flag", "boolean", "number")],
        ),
        // Containers vs anything else.
        (
            json!({"p2p": {"trusted_peers": {"address": "x"}}}),
            vec![conflict("p2p.trusted_peers", "array", "object")],
        ),
        (
            json!({"p2p": {"trusted_peers": "x"}}),
            vec![conflict("p2p.trusted_peers", "array", "string")],
        ),
        (
            json!({"rest": ["x"]}),
            vec![conflict("rest", "object", "array")],
        ),
        // Inside lists: element by element, with [i] in the path.
        (
            json!({"log": [{"level": 3}]}),
            vec![conflict("log[0].level", "string", "number")],
        ),
        (
            json!({"log": ["stderr"]}),
            vec![conflict("log[0]", "object", "string")],
        ),
        // Past the template's end, elements are checked against its first element...
        (
            json!({"p2p": {"trusted_peers": [
                {"address": "a", "id": "b"},
                {"address": "a", "id": "b"},
                {"address": 7, "id": "b"},
            ]}}),
            vec![conflict("p2p.trusted_peers[2].address", "string", "number")],
        ),
        // ...unless the template's elements are of several kinds.
        (json!({"mixed": [2, "b", true]}), vec![]),
        (
            json!({"mixed": ["a"]}),
            vec![conflict("mixed[0]", "number", "string")],
        ),
        // Several conflicts, in document order.
        (
            json!({"rest": 1, "flag": "yes"}),
            vec![
                conflict("rest", "object", "number"),
                conflict("flag", "boolean", "string"),
            ],
        ),
        // The root.
        (json!([1]), vec![conflict("", "object", "array")]),
    ];
    for (overrides, expected) in cases {
        let mut got = type_conflicts(&template, &overrides);
        let mut expected = expected;
        // Without preserve_order, overrides iterate in sorted key order.
        got.sort_by(|a, b| a.path.cmp(&b.path));
        expected.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(got, expected, "overrides {overrides}");
    }
}

#[test]
fn with_trusted_peers_replaces_only_the_peers() {
    let peers = [json!({"address": "/ip4/9.9.9.9/tcp/3000", "id": "dd"})];
    let cases = [
        (
            json!({"p2p": {"trusted_peers": [{"id": "a"}, {"id": "b"}], "max_connections": 5}, "rest": {}}),
            json!({"p2p": {"trusted_peers": [peers[0].clone()], "max_connections": 5}, "rest": {}}),
        ),
        // p2p missing, or not an object: created.
        (
            json!({"rest": {}}),
            json!({"rest": {}, "p2p": {"trusted_peers": [peers[0].clone()]}}),
        ),
        (
            json!({"p2p": null}),
            json!({"p2p": {"trusted_peers": [peers[0].clone()]}}),
        ),
        (
            json!(null),
            json!({"p2p": {"trusted_peers": [peers[0].clone()]}}),
        ),
    ];
    for (config, expected) in cases {
        let before = config.clone();
        assert_eq!(with_trusted_peers(&config, &peers), expected, "{config}");
        assert_eq!(config, before, "config mutated");
    }
    assert_eq!(
        with_trusted_peers(&json!({"p2p": {"trusted_peers": [1]}}), &[]),
        json!({"p2p": {"trusted_peers": []}})
    );
}

/// jmanager aliased its template and mutated it on a fallback switch, so its "normal" config
/// kept the default peers afterwards. Normal → fallback → normal must give the first normal.
#[test]
fn switching_to_fallback_and_back_restores_the_normal_config() {
    let template = json!({
        "p2p": {
            "trusted_peers": [{"address": "/ip4/1.1.1.1/tcp/3000", "id": "t1"}],
            "listen_address": "/ip4/0.0.0.0/tcp/3000",
        },
        "rest": {"listen": "127.0.0.1:3100"},
    });
    let overrides = json!({
        "p2p": {"trusted_peers": [{"address": "/ip4/2.2.2.2/tcp/3000", "id": "o1"}]},
        "rest": {"listen": "127.0.0.1:3101"},
    });
    let default_peers = [json!({"address": "/ip4/3.3.3.3/tcp/3000", "id": "d1"})];
    let (template_before, overrides_before) = (template.clone(), overrides.clone());

    let normal = merge(&template, &overrides);
    let fallback = with_trusted_peers(&normal, &default_peers);
    let normal_again = merge(&template, &overrides);

    assert_eq!(
        get_path(&fallback, "p2p.trusted_peers"),
        Some(&json!(default_peers))
    );
    assert_eq!(
        get_path(&normal, "p2p.trusted_peers[0].id"),
        Some(&json!("o1"))
    );
    assert_eq!(normal_again, normal);
    assert_eq!(template, template_before);
    assert_eq!(overrides, overrides_before);
    // The fallback differs from the normal config only in the peers.
    assert_eq!(
        with_trusted_peers(
            &fallback,
            normal["p2p"]["trusted_peers"].as_array().unwrap()
        ),
        normal
    );
}

#[test]
fn get_path_rules() {
    let value = json!({
        "rest": {"listen": "127.0.0.1:3100"},
        "log": [{"level": "info"}, {"level": "debug"}],
        "matrix": [[1, 2], [3]],
        "dotted.key": 1,
    });
    let cases: [(&str, Option<Value>); 15] = [
        ("rest.listen", Some(json!("127.0.0.1:3100"))),
        ("rest", Some(json!({"listen": "127.0.0.1:3100"}))),
        ("log[1].level", Some(json!("debug"))),
        ("log[0]", Some(json!({"level": "info"}))),
        ("matrix[0][1]", Some(json!(2))),
        ("", Some(value.clone())),
        ("rest.port", None),
        ("nope", None),
        ("rest.listen.deeper", None),
        ("log[2]", None),
        ("log[x]", None),
        ("log[0", None),
        ("rest..listen", None),
        ("[0]", None),
        ("log.level", None),
    ];
    for (path, expected) in cases {
        assert_eq!(get_path(&value, path), expected.as_ref(), "{path:?}");
    }
}

#[test]
fn kinds() {
    let cases = [
        (json!({}), "object"),
        (json!([]), "array"),
        (json!(""), "string"),
        (json!(1), "number"),
        (json!(-1.5), "number"),
        (json!(false), "boolean"),
        (json!(null), "null"),
    ];
    for (value, expected) in cases {
        assert_eq!(kind(&value), expected, "{value}");
    }
}
