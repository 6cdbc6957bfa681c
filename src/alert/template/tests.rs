//! The template table: every shipped template rendered, jmanager's syntax, validation messages,
//! and the precedence of shipped < directory < inline.

use std::time::{Duration, SystemTime};

use super::*;
use crate::alert::context::{Alert, Facts};
use crate::alert::settings::{InlineTemplate, TemplateSettings};
use crate::events::Event;

fn at() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_311_547)
}

fn shipped() -> Templates {
    Templates::shipped().expect("the shipped templates load")
}

fn alert(event: Event) -> Alert {
    Alert::from_event(&event, &Facts::test(), at()).expect("mailed")
}

fn restarted(node: &str, reason: &str, detail: &str) -> Event {
    Event::NodeRestarted {
        node: node.into(),
        reason: reason.into(),
        detail: detail.into(),
        restart: true,
    }
}

fn inline(templates: &[(&str, &str, &str)]) -> TemplateSettings {
    let mut raw = TemplateSettings::default();
    for (name, subject, message) in templates {
        raw.inline.insert(
            (*name).to_string(),
            InlineTemplate {
                subject: (*subject).to_string(),
                message: (*message).to_string(),
            },
        );
    }
    raw
}

fn problems(raw: &TemplateSettings) -> Vec<String> {
    match Templates::load(raw) {
        Ok(_) => Vec::new(),
        Err(problems) => problems
            .into_iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect(),
    }
}

#[test]
fn every_shipped_template_renders_its_event() {
    let templates = shipped();
    let ts = "2026-11-22 01:39:07 UTC";
    let table: Vec<(Alert, String, &str)> = vec![
        (
            alert(restarted("node1", "crashed", "crashed (EXITED)")),
            format!("[nodekeeper] node1 crashed and was restarted ({ts})"),
            "Reason: crashed (EXITED)",
        ),
        (
            alert(restarted("node1", "hung", "hung (no answer for 2.0 s)")),
            format!("[nodekeeper] node1 hung and was restarted ({ts})"),
            "stopped answering",
        ),
        (
            alert(restarted(
                "node3",
                "stale_tip",
                "stale tip (no new block for 95 s)",
            )),
            format!("[nodekeeper] node3 stuck, restarted ({ts})"),
            "no new block for more than 1.5 minutes",
        ),
        (
            alert(restarted("node3", "lag", "lag (12 blocks behind 1000)")),
            format!("[nodekeeper] node3 lagging, restarted ({ts})"),
            "Reason: lag (12 blocks behind 1000)",
        ),
        (
            alert(restarted("node2", "bootstrap_timeout", "bootstrap timeout")),
            format!("[nodekeeper] node2 did not bootstrap, restarted again ({ts})"),
            "could not bootstrap in 10.8 minutes",
        ),
        (
            alert(restarted("node2", "schedule_refresh", "new epoch")),
            format!("[nodekeeper] node2 restarted to fetch the leader schedule ({ts})"),
            "new epoch's leader schedule",
        ),
        (
            alert(Event::NodeRestarted {
                node: "node2".into(),
                reason: "retry".into(),
                detail: "retry".into(),
                restart: false,
            }),
            format!("[nodekeeper] node2 started ({ts})"),
            "was started by nodekeeper",
        ),
        (
            alert(Event::FallbackConfigUsed {
                node: "node2".into(),
            }),
            format!("[nodekeeper] node2 started with its fallback config ({ts})"),
            "default (fallback) trusted peers",
        ),
        (
            alert(Event::AllNodesDown { nodes: 3 }),
            format!("[nodekeeper] all 3 nodes down, starting them ({ts})"),
            "starting all 3 of them",
        ),
        (
            alert(Event::NodeHeld {
                node: "node1".into(),
                reason: "restart storm: 4 restarts within 1800 s".into(),
            }),
            format!("[nodekeeper] node1 held: nodekeeper leaves it alone ({ts})"),
            "Reason: restart storm: 4 restarts within 1800 s",
        ),
        (
            alert(Event::NodeRecovered {
                node: "node1".into(),
            }),
            format!("[nodekeeper] node1 recovered ({ts})"),
            "in sync again",
        ),
        (
            Alert::leader_switched(
                "node2",
                Some("node1"),
                "node1 lags",
                42,
                &Facts::test(),
                at(),
            ),
            format!("[nodekeeper] leader is now node2 ({ts})"),
            "to node node2 (from node1) in epoch 42",
        ),
        (
            Alert::slots_assigned(
                "node1",
                42,
                &["42.17 at 2026-11-22 02:00:00 UTC".into(), "42.99".into()],
                &Facts::test(),
                at(),
            ),
            format!("[nodekeeper] 2 slots assigned in epoch 42 ({ts})"),
            "42.17 at 2026-11-22 02:00:00 UTC\n42.99\n",
        ),
        (
            alert(Event::SupervisorUnreachable {
                supervisor: "default".into(),
                error: "connection refused".into(),
            }),
            format!("[nodekeeper] supervisord default unreachable ({ts})"),
            "cannot reach supervisord default: connection refused",
        ),
        (
            alert(Event::SupervisorBack {
                supervisor: "default".into(),
                after: Duration::from_secs(125),
            }),
            format!("[nodekeeper] supervisord default reachable again ({ts})"),
            "again, after 2m 5s.",
        ),
        (
            alert(Event::ConfigReloadRejected {
                errors: "a.toml: x: bad\na.toml: y: worse".into(),
            }),
            format!("[nodekeeper] configuration change rejected ({ts})"),
            "Problems:\n\na.toml: x: bad\na.toml: y: worse\n",
        ),
        (
            alert(Event::KesExpiring {
                node: "bp1".into(),
                periods: 13,
                threshold: 14,
                time_left_secs: Some(13 * 129_600),
            }),
            format!("[nodekeeper] bp1: KES key expires in 13 periods (about 20 days) ({ts})"),
            "13 KES periods left on its operational certificate (about 20 days), fewer than the 14",
        ),
        (
            alert(Event::KesRenewed {
                node: "bp1".into(),
                periods: 62,
                time_left_secs: None,
            }),
            format!("[nodekeeper] bp1: KES key renewed, 62 periods left ({ts})"),
            "62 KES periods left on its operational certificate (time left unknown): the key was renewed",
        ),
        (
            alert(Event::BackupDone {
                node: "bp1".into(),
                archive: "/b/nodeos-bp1-4200-20261122T013907Z.tar.zst".into(),
                height: Some(4_200),
                bytes: 123_456_789,
                took: Duration::from_millis(4_200),
                scheduled: true,
            }),
            format!("[nodekeeper] bp1 backed up: 123 MB in 4s ({ts})"),
            "Archive: /b/nodeos-bp1-4200-20261122T013907Z.tar.zst\nHeight:  4200\nSize:    123 MB",
        ),
        (
            alert(Event::BackupFailed {
                node: "bp1".into(),
                error: "No space left on device (os error 28)".into(),
                scheduled: false,
            }),
            format!("[nodekeeper] bp1: backup failed ({ts})"),
            "could not archive the data of node bp1 (operator backup): No space left on device (os error 28)",
        ),
        (
            alert(Event::NodeRestored {
                node: "bp1".into(),
                archive: "/b/a.tar.zst".into(),
                reason: "corrupt database: database dirty flag set".into(),
                automatic: true,
            }),
            format!("[nodekeeper] bp1 restored from a backup (automatic) ({ts})"),
            "Archive: /b/a.tar.zst\nReason:  corrupt database: database dirty flag set",
        ),
        (
            alert(Event::RestoreFailed {
                node: "bp1".into(),
                error: "checksum mismatch".into(),
                automatic: false,
            }),
            format!("[nodekeeper] bp1: restore failed ({ts})"),
            "could not restore node bp1 from a backup (operator restore): checksum mismatch",
        ),
        (
            Alert::test("smtp.example.org:465", &Facts::test(), at()),
            format!("[nodekeeper] test mail from testhost ({ts})"),
            "sent through smtp.example.org:465",
        ),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (alert, subject, in_body) in table {
        seen.insert(alert.template);
        let rendered = templates.render(alert.template, &alert.values);
        assert_eq!(rendered.subject, subject, "{}", alert.template);
        assert!(
            rendered.body.contains(in_body),
            "{}: {in_body:?} not in\n{}",
            alert.template,
            rendered.body
        );
        assert!(rendered.body.ends_with('\n'));
        assert!(!rendered.body.contains("{{"), "{}", rendered.body);
        // Nothing was suppressed: no line about it.
        assert!(!rendered.body.contains("not mailed"), "{}", rendered.body);
        assert!(!rendered.body.contains("\n\n\n"), "{:?}", rendered.body);
    }
    assert_eq!(
        seen.len(),
        TemplateName::ALL.len(),
        "a template is missing from the table"
    );
}

#[test]
fn the_suppressed_count_is_shown_by_the_template_or_appended() {
    let templates = shipped();
    let mut crashed = alert(restarted("node1", "crashed", "crashed (FATAL)"));
    crashed.values.insert("suppressed", Value::from(4));
    let rendered = templates.render(crashed.template, &crashed.values);
    assert!(
        rendered.body.ends_with(
            "Time:   2026-11-22 01:39:07 UTC\n\n4 more alert(s) like this one for node1 were not \
             mailed in the last 15m.\n"
        ),
        "{:?}",
        rendered.body
    );
    // A template that does not say it (jmanager's, or slots_assigned) gets a line appended.
    let mut slots = Alert::slots_assigned("node1", 7, &[], &Facts::test(), at());
    slots.values.insert("suppressed", Value::from(2));
    let rendered = templates.render(slots.template, &slots.values);
    assert!(
        rendered
            .body
            .ends_with("\n\n(2 similar alert(s) in the last 15m were not mailed.)\n"),
        "{:?}",
        rendered.body
    );
}

#[test]
fn jmanager_templates_render_with_python_fields() {
    // jmanager's example config, as imported into `email.templates`.
    let raw = inline(&[
        (
            "stuck",
            "[POOL] Node stuck - restarting ({timestamp})",
            "[{timestamp}]:\nNode '{node_name}' has been stuck for more than {timeout} minutes. \
             Restarting node.",
        ),
        (
            "bootstrap_restart",
            "[POOL] Restarting node again ({timestamp})",
            "[{timestamp}]:\nCould not bootstrap node '{node_name}' in {timeout} minutes. \
             Restarting node again.",
        ),
        (
            "slots_assigned",
            "[POOL] Slots assigned ({timestamp})",
            "[{timestamp}]:\n\n{slots_count} slots assigned:\n{slots}",
        ),
    ]);
    let templates = Templates::load(&raw).expect("jmanager's templates load");
    let stuck = "[2026-11-22 01:39:07 UTC]:\nNode 'node_one' has been stuck for more than 1.5 \
                 minutes. Restarting node.\n";
    let table = [
        (
            alert(restarted("node_one", "stale_tip", "stale tip")),
            "[POOL] Node stuck - restarting (2026-11-22 01:39:07 UTC)",
            stuck,
            "template stuck",
        ),
        (
            alert(restarted("node_one", "lag", "lag")),
            "[POOL] Node stuck - restarting (2026-11-22 01:39:07 UTC)",
            stuck,
            "template stuck",
        ),
        (
            alert(restarted("node_two", "bootstrap_timeout", "bootstrap")),
            "[POOL] Restarting node again (2026-11-22 01:39:07 UTC)",
            "[2026-11-22 01:39:07 UTC]:\nCould not bootstrap node 'node_two' in 10.8 minutes. \
             Restarting node again.\n",
            "template bootstrap_restart",
        ),
        (
            Alert::slots_assigned(
                "node_one",
                3,
                &["3.1".into(), "3.9".into()],
                &Facts::test(),
                at(),
            ),
            "[POOL] Slots assigned (2026-11-22 01:39:07 UTC)",
            "[2026-11-22 01:39:07 UTC]:\n\n2 slots assigned:\n3.1\n3.9\n",
            "template slots_assigned",
        ),
    ];
    for (alert, subject, body, origin) in table {
        let rendered = templates.render(alert.template, &alert.values);
        assert_eq!(rendered.subject, subject);
        assert_eq!(rendered.body, body);
        assert_eq!(templates.origin(alert.template), origin);
    }
    // Templates jmanager had no key for stay the shipped ones.
    assert_eq!(
        templates.origin(TemplateName::RestartCrashed),
        "shipped template restart_crashed"
    );
}

#[test]
fn python_fields_table() {
    let allowed = ["a", "node_name"];
    let table: &[(&str, Result<&str, &str>)] = &[
        ("plain", Ok("plain")),
        ("{a}", Ok("A")),
        ("x{a}y{node_name}z", Ok("xAyNz")),
        ("{{literal}} {a}", Ok("{literal} A")),
        ("}} {{ {a}", Ok("} { A")),
        ("{a:>10}", Ok("A")),
        ("{a!r}", Ok("A")),
        ("{ a }", Ok("A")),
        (
            "{b}",
            Err("unknown placeholder {b}; placeholders here: {a}, {node_name}"),
        ),
        (
            "{node}",
            Err("unknown placeholder {node} (did you mean {node_name}?)"),
        ),
        ("{a.b}", Err("unknown placeholder {a.b}")),
        ("{", Err("unmatched `{` at character 1")),
        ("ab {a", Err("unmatched `{` at character 4")),
        ("}", Err("single `}` at character 1")),
        ("a}b", Err("single `}` at character 2")),
        ("{}", Err("empty field `{}` at character 1")),
        ("{0}", Err("unknown placeholder {0}")),
        ("{a{b}}", Err("nested `{` in the field at character 1")),
        ("{{literal}}", Err("unknown placeholder {{literal}}")),
        ("{a} {{{node_name}}}", Ok("A {N}")),
    ];
    let values: Values = [("a", Value::from("A")), ("node_name", Value::from("N"))]
        .into_iter()
        .collect();
    let templates = shipped();
    for (text, expected) in table {
        match (parse_part(text, &allowed), expected) {
            (Ok(Parsed::Python(segments, _)), Ok(output)) => {
                let rendered = templates
                    .render_part(&Part::Python(segments), &values)
                    .expect("renders");
                assert_eq!(&rendered, output, "{text:?}");
            }
            (Err(errors), Err(message)) => {
                assert_eq!(errors.len(), 1, "{text:?}: {errors:?}");
                assert!(errors[0].contains(message), "{text:?}: {errors:?}");
            }
            (Ok(Parsed::Handlebars(..)), _) => panic!("{text:?}: read as handlebars"),
            (Ok(_), Err(message)) => panic!("{text:?}: accepted, expected {message:?}"),
            (Err(errors), Ok(_)) => panic!("{text:?}: rejected: {errors:?}"),
        }
    }
}

#[test]
fn handlebars_validation_table() {
    let allowed = ["timestamp", "node_name", "suppressed"];
    let table: &[(&str, Result<(), &str>)] = &[
        ("{{node_name}} at {{timestamp}}", Ok(())),
        (
            "{{#if suppressed}}{{suppressed}} more{{else}}none{{/if}}",
            Ok(()),
        ),
        ("{{#unless suppressed}}x{{/unless}}", Ok(())),
        ("{{#if (eq node_name \"a\")}}a{{/if}}", Ok(())),
        ("{{! a comment }}{{node_name}}", Ok(())),
        ("\\{{literal}} {{node_name}}", Ok(())),
        ("{{{node_name}}}", Ok(())),
        (
            "{{node}}",
            Err(
                "unknown placeholder {{node}} (did you mean {{node_name}}?); placeholders here: \
                 {{timestamp}}, {{node_name}}, {{suppressed}}",
            ),
        ),
        (
            "{{node_name.first}} {{hieght}}",
            Err("unknown placeholder {{hieght}}"),
        ),
        (
            "{{#if height}}x{{/if}}",
            Err("unknown placeholder {{height}}"),
        ),
        (
            "{{#if suppressed}}{{bogus}}{{/if}}",
            Err("unknown placeholder {{bogus}}"),
        ),
        (
            "{{#if suppressed}}x{{else}}{{bogus}}{{/if}}",
            Err("unknown placeholder {{bogus}}"),
        ),
        ("{{upper node_name}}", Err("unknown helper `upper`")),
        (
            "{{> header}}",
            Err("partials and decorators are not supported"),
        ),
        (
            "{{#if node_name}}unclosed",
            Err("invalid handlebars syntax"),
        ),
        ("{{node_name", Err("invalid handlebars syntax at line 1")),
    ];
    for (text, expected) in table {
        match (parse_part(text, &allowed), expected) {
            (Ok(Parsed::Handlebars(..)), Ok(())) => {}
            (Err(errors), Err(message)) => {
                assert!(
                    errors.iter().any(|e| e.contains(message)),
                    "{text:?}: {errors:?}"
                );
                assert!(errors.iter().all(|e| !e.contains('\n')), "{errors:?}");
            }
            (Ok(Parsed::Python(..)), _) => panic!("{text:?}: read as Python"),
            (Ok(_), Err(message)) => panic!("{text:?}: accepted, expected {message:?}"),
            (Err(errors), Ok(())) => panic!("{text:?}: rejected: {errors:?}"),
        }
    }
}

#[test]
fn inline_problems_name_the_template_and_key() {
    let raw = inline(&[
        ("stuck", "Stuck {time}", "{node_name} {slots}"),
        (
            "restart_crashed",
            "{{node_name}} {{reason}}",
            "{{nodee_name}}",
        ),
        ("restart_crash", "x", "y"),
        ("leader", "x", "y"),
    ]);
    let expected_names = "restart_crashed, restart_hung, restart_stale_tip, restart_lag, \
                          restart_bootstrap_timeout, restart_schedule_refresh, restart_other, \
                          fallback_config_used, all_nodes_down, node_held, node_recovered, \
                          leader_switched, slots_assigned, supervisor_unreachable, \
                          supervisor_back, config_reload_rejected, kes_expiring, kes_renewed, \
                          backup_done, backup_failed, node_restored, restore_failed, test, stuck, \
                          bootstrap_restart";
    let stuck_placeholders = "{timestamp}, {host}, {suppressed}, {window}, {node_name}, \
                              {reason}, {detail}, {action}, {timeout}";
    assert_eq!(
        problems(&raw),
        [
            // jmanager's names first (`stuck`), each problem once although it maps to two.
            format!(
                "email.templates.stuck.subject: template stuck, subject: unknown placeholder \
                 {{time}} (did you mean {{timeout}}?); placeholders here: {stuck_placeholders}"
            ),
            format!(
                "email.templates.stuck.message: template stuck, body: unknown placeholder \
                 {{slots}}; placeholders here: {stuck_placeholders}"
            ),
            format!(
                "email.templates.leader: unknown template `leader` (did you mean \
                 `leader_switched`?); expected one of: {expected_names}"
            ),
            format!(
                "email.templates.restart_crash: unknown template `restart_crash` (did you mean \
                 `restart_crashed`?); expected one of: {expected_names}"
            ),
            "email.templates.restart_crashed.message: template restart_crashed, body: unknown \
             placeholder {{nodee_name}} (did you mean {{node_name}}?); placeholders here: \
             {{timestamp}}, {{host}}, {{suppressed}}, {{window}}, {{node_name}}, {{reason}}, \
             {{detail}}, {{action}}"
                .to_string(),
        ]
    );
}

#[test]
fn precedence_is_shipped_then_directory_then_inline_and_own_names_beat_jmanagers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).expect("write");
    };
    write(
        "restart_crashed.txt",
        "Subject: dir crashed {{node_name}}\n\ndir body\n",
    );
    write("restart_hung.txt", "Subject: dir hung\n\ndir hung body\n");
    write(
        "stuck.txt",
        "Subject: dir stuck {node_name}\n\n{timeout} min\n",
    );
    write(
        "restart_lag.txt",
        "subject: dir lag {{node_name}}\r\n\r\nlag body",
    );
    write("README.md", "not a template, ignored");
    write("restart_hung.txt~", "an editor's backup, ignored");
    let mut raw = inline(&[("restart_hung", "inline hung", "inline body")]);
    raw.dir = Some(dir.path().to_path_buf());
    let templates = Templates::load(&raw).expect("loads");
    let table = [
        (restarted("n", "crashed", ""), "dir crashed n", "dir body\n"),
        (restarted("n", "hung", ""), "inline hung", "inline body\n"),
        (restarted("n", "stale_tip", ""), "dir stuck n", "1.5 min\n"),
        (restarted("n", "lag", ""), "dir lag n", "lag body\n"),
    ];
    for (event, subject, body) in table {
        let alert = alert(event);
        let rendered = templates.render(alert.template, &alert.values);
        assert_eq!(
            (rendered.subject.as_str(), rendered.body.as_str()),
            (subject, body)
        );
    }
    let file = dir.path().join("restart_crashed.txt");
    assert_eq!(
        templates.origin(TemplateName::RestartCrashed),
        format!("{} (template restart_crashed)", file.display())
    );
    assert_eq!(
        templates.origin(TemplateName::RestartBootstrapTimeout),
        "shipped template restart_bootstrap_timeout"
    );
}

#[test]
fn directory_problems_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).expect("write");
    };
    write("node_recoverd.txt", "Subject: x\n\ny\n");
    write("node_held.txt", "no subject line\n");
    write(
        "restart_lag.txt",
        "Subject: {{node_name}} {{lag}}\n\nbody\n",
    );
    let mut raw = TemplateSettings {
        dir: Some(dir.path().to_path_buf()),
        ..TemplateSettings::default()
    };
    let found = problems(&raw);
    let path = |name: &str| dir.path().join(name).display().to_string();
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(
        found[0].starts_with(&format!(
            "email.templates_dir: {} (template node_held): expected `Subject: ...` on the first \
             line",
            path("node_held.txt")
        )),
        "{found:#?}"
    );
    assert!(
        found[1].starts_with(&format!(
            "email.templates_dir: {}: unknown template `node_recoverd` (did you mean \
             `node_recovered`?)",
            path("node_recoverd.txt")
        )),
        "{found:#?}"
    );
    assert!(
        found[2].starts_with(&format!(
            "email.templates_dir: {} (template restart_lag), subject: unknown placeholder \
             {{{{lag}}}}",
            path("restart_lag.txt")
        )),
        "{found:#?}"
    );
    raw.dir = Some(dir.path().join("missing"));
    let found = problems(&raw);
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("email.templates_dir: cannot read "),
        "{found:?}"
    );
}

#[test]
fn an_empty_subject_switches_a_mail_off() {
    let raw = inline(&[("node_recovered", "", "ignored")]);
    let templates = Templates::load(&raw).expect("loads");
    let recovered = alert(Event::NodeRecovered { node: "n".into() });
    assert!(
        templates
            .render(recovered.template, &recovered.values)
            .is_disabled()
    );
    let crashed = alert(restarted("n", "crashed", ""));
    assert!(
        !templates
            .render(crashed.template, &crashed.values)
            .is_disabled()
    );
}

#[test]
fn a_value_missing_at_render_time_still_yields_a_mail() {
    let templates = shipped();
    let mut crashed = alert(restarted("node1", "crashed", "crashed (FATAL)"));
    crashed.values.remove("action");
    let rendered = templates.render(crashed.template, &crashed.values);
    assert_eq!(rendered.subject, "[nodekeeper] restart_crashed: node1");
    assert!(
        rendered.body.contains("detail: crashed (FATAL)\n"),
        "{}",
        rendered.body
    );
    assert!(
        rendered.body.contains("could not be rendered"),
        "{}",
        rendered.body
    );
}

#[test]
fn subjects_are_one_line() {
    let raw = inline(&[("node_recovered", "{{node_name}}\n  back", "body")]);
    let templates = Templates::load(&raw).expect("loads");
    let recovered = alert(Event::NodeRecovered {
        node: "a\r\nBcc: x@example.org".into(),
    });
    let rendered = templates.render(recovered.template, &recovered.values);
    assert_eq!(rendered.subject, "a Bcc: x@example.org back");
}

#[test]
fn no_text_makes_the_parser_panic() {
    // A deterministic walk over brace-heavy texts: each parses or is rejected, none panics.
    let alphabet = ['{', '}', 'a', '#', '/', ':', '!', ' ', '\\', '>', 'é', '\n'];
    let allowed = ["a"];
    let values: Values = [("a", Value::from("A"))].into_iter().collect();
    let mut templates = shipped();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 12) as usize;
        let text: String = (0..len)
            .map(|i| alphabet[((seed >> (i * 4)) % alphabet.len() as u64) as usize])
            .collect();
        if let Ok(parsed) = parse_part(&text, &allowed) {
            let part = templates.register(TemplateName::Test, "subject", parsed);
            let _ = templates.render_part(&part, &values);
        }
    }
}

#[test]
fn the_file_format_is_a_subject_line_then_the_body() {
    assert_eq!(split_file("Subject: a\n\nb\n"), Some(("a", "b\n")));
    assert_eq!(split_file("SUBJECT:a\nb"), Some(("a", "b")));
    assert_eq!(split_file("\u{feff}Subject: a"), Some(("a", "")));
    assert_eq!(split_file("Subject: a\r\n\r\nb\r\n"), Some(("a", "b\r\n")));
    assert_eq!(split_file("Subj: a\n\nb"), None);
    assert_eq!(split_file(""), None);
    assert_eq!(split_file("é"), None);
}

#[test]
fn the_role_and_the_epoch_are_named_in_the_chains_words() {
    let templates = shipped();
    let ts = "2026-11-22 01:39:07 UTC";
    for (chain, subject, in_body) in [
        (
            crate::chain::ChainName::Nodeos,
            "[nodekeeper] producer is now bp2",
            "moved block production to node bp2 (from bp1) in round 42",
        ),
        (
            crate::chain::ChainName::Cardano,
            "[nodekeeper] forging node is now bp2",
            "moved the forging credentials to node bp2 (from bp1) in epoch 42",
        ),
    ] {
        let facts = Facts::test().for_chain(chain);
        let switched = Alert::leader_switched("bp2", Some("bp1"), "bp1 lags", 42, &facts, at());
        let rendered = templates.render(switched.template, &switched.values);
        assert_eq!(rendered.subject, format!("{subject} ({ts})"));
        assert!(rendered.body.contains(in_body), "{}", rendered.body);
        assert!(!rendered.body.contains("leader"), "{}", rendered.body);
    }
    let facts = Facts::test().for_chain(crate::chain::ChainName::Nodeos);
    let slots = Alert::slots_assigned("bp1", 42, &["42.12".into()], &facts, at());
    let rendered = templates.render(slots.template, &slots.values);
    assert_eq!(
        rendered.subject,
        format!("[nodekeeper] 1 blocks assigned in round 42 ({ts})")
    );
}
