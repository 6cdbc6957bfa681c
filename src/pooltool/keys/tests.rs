use base64::Engine as _;

use super::*;
use crate::pooltool::fixtures::{logs, mode_of};
use crate::pooltool::wire::slots_json;

#[test]
fn key_files_are_written_once_and_private() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("a/pooltool-keys");
    // Hash mode creates the directory, the list and the hash.
    let (count, prepared) =
        prepare(SlotsVerification::Hash, &keys, 5, slots_json(&logs(), 5)).unwrap();
    assert_eq!(count, 3);
    assert_eq!(mode_of(&keys), 0o700);
    let list = std::fs::read_to_string(key_file(&keys, "leader_slots", 5)).unwrap();
    assert_eq!(list, slots_json(&logs(), 5));
    let hash = std::fs::read_to_string(key_file(&keys, "hash", 5)).unwrap();
    assert_eq!(hash, sha256_hex(list.as_bytes()));
    for kind in ["leader_slots", "hash"] {
        assert_eq!(mode_of(&key_file(&keys, kind, 5)), 0o600, "{kind}");
    }
    let Prepared::Hash {
        this_epoch_hash,
        last_epoch_slots,
    } = prepared
    else {
        panic!("not hash");
    };
    assert_eq!(
        (this_epoch_hash, last_epoch_slots),
        (hash.clone(), String::new())
    );
    // A second run (a restarted daemon) commits to the same list, whatever the node says now.
    let (count, prepared) = prepare(SlotsVerification::Hash, &keys, 5, "[]".into()).unwrap();
    assert_eq!(count, 3);
    assert!(matches!(prepared, Prepared::Hash { this_epoch_hash, .. } if this_epoch_hash == hash));
    // The next epoch reveals this one's list.
    let (count, prepared) = prepare(SlotsVerification::Hash, &keys, 6, "[]".into()).unwrap();
    assert_eq!(count, 0);
    assert!(
        matches!(prepared, Prepared::Hash { last_epoch_slots, .. } if last_epoch_slots == list)
    );
    // Gpg mode: a fresh base64 passphrase of 32 bytes, kept; the previous one revealed.
    let (_, first) = prepare(SlotsVerification::Gpg, &keys, 6, "[]".into()).unwrap();
    let (_, again) = prepare(SlotsVerification::Gpg, &keys, 6, "[]".into()).unwrap();
    let (_, next) = prepare(SlotsVerification::Gpg, &keys, 7, "[]".into()).unwrap();
    let (
        Prepared::Gpg {
            passphrase: p1,
            slots,
            ..
        },
        Prepared::Gpg { passphrase: p2, .. },
        Prepared::Gpg {
            passphrase: p3,
            previous_epoch_key,
            ..
        },
    ) = (first, again, next)
    else {
        panic!("not gpg");
    };
    assert_eq!(p1, p2);
    assert_ne!(p1, p3);
    assert_eq!(previous_epoch_key, p1);
    assert_eq!(slots, "[]");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&p1)
        .unwrap();
    assert_eq!(raw.len(), 32);
    assert_eq!(mode_of(&key_file(&keys, "passphrase", 6)), 0o600);
    // No verification: no files at all.
    let none = dir.path().join("none");
    let (count, _) = prepare(SlotsVerification::None, &none, 5, slots_json(&logs(), 5)).unwrap();
    assert_eq!(count, 3);
    assert!(!none.exists());
    // A broken list file is an error, not a silent new commitment.
    std::fs::write(key_file(&keys, "leader_slots", 9), "not json").unwrap();
    assert!(matches!(
        prepare(SlotsVerification::Hash, &keys, 9, "[]".into()),
        Err(ReportError::KeyFiles(_))
    ));
    // No temporary files are left behind.
    let stray: Vec<_> = std::fs::read_dir(&keys)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn a_key_created_meanwhile_by_another_writer_is_the_one_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_file(dir.path(), "passphrase", 3);
    // The other writer creates the file while this one makes its own text.
    let kept = key_once(&path, || {
        std::fs::write(&path, "theirs\n")?;
        Ok("mine".to_string())
    })
    .unwrap();
    assert_eq!(kept, "theirs");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "theirs\n");
    // Once there, it is read, never made again.
    let again = key_once(&path, || panic!("made twice")).unwrap();
    assert_eq!(again, "theirs");
}
