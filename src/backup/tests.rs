//! The engine end to end on temporary directories: round trips (fixed and seeded random trees),
//! refusals (corrupted, truncated, undecodable, unsafe entries), interrupted backups, retention.

use std::fs;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::archive::create_inner;
use super::*;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_052_347 + secs)
}

fn base(node: &str, created_at: SystemTime) -> ManifestBase {
    ManifestBase {
        chain: "nodeos".to_owned(),
        node: node.to_owned(),
        height: Some(1234),
        head: Some("00000abc".to_owned()),
        version: Some("v5.0.0".to_owned()),
        created_at,
    }
}

fn no_progress() -> impl FnMut(Progress) {
    |_| {}
}

/// Every entry under `root`: relative path, kind, content or link target, permission bits.
fn snapshot(root: &Path) -> Vec<(PathBuf, &'static str, Vec<u8>, u32)> {
    let mut out = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative_dir) = pending.pop() {
        let mut names: Vec<_> = fs::read_dir(root.join(&relative_dir))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            let relative = relative_dir.join(name);
            let full = root.join(&relative);
            let meta = fs::symlink_metadata(&full).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&full).unwrap();
                out.push((
                    relative,
                    "link",
                    target.into_os_string().into_encoded_bytes(),
                    0,
                ));
            } else if meta.is_dir() {
                out.push((relative.clone(), "dir", Vec::new(), mode));
                pending.push(relative);
            } else {
                out.push((relative, "file", fs::read(&full).unwrap(), mode));
            }
        }
    }
    out.sort();
    out
}

/// A node's data directory with nested directories, an empty file, an empty directory, symlinks
/// (inside, and out to a directory that must not be archived) and a long name.
fn sample_tree(root: &Path, outside: &Path) {
    fs::create_dir_all(root.join("blocks/reversible")).unwrap();
    fs::create_dir_all(root.join("state/empty-dir")).unwrap();
    fs::write(root.join("blocks/blocks.log"), pseudo_random(7, 300_000)).unwrap();
    fs::write(root.join("blocks/blocks.index"), vec![7u8; 10_000]).unwrap();
    fs::write(root.join("blocks/reversible/fork_db.dat"), b"fork").unwrap();
    fs::write(root.join("state/empty"), b"").unwrap();
    fs::write(root.join("state/shared_memory.bin"), b"memory").unwrap();
    fs::set_permissions(
        root.join("state/shared_memory.bin"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let long = "n".repeat(150);
    fs::write(root.join("state").join(&long), b"a long name").unwrap();
    fs::write(root.join("état ünïcode"), b"utf-8 names").unwrap();
    symlink("blocks/blocks.log", root.join("latest")).unwrap();
    fs::create_dir_all(outside).unwrap();
    fs::write(outside.join("secret"), b"not part of the backup").unwrap();
    symlink(outside, root.join("out")).unwrap();
}

fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = SplitMix(seed);
    (0..len).map(|_| (rng.next() % 16) as u8 + b'a').collect()
}

/// A tiny seeded generator (SplitMix64), for repeatable random trees.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The only files left in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn round_trip_restores_byte_identical_and_keeps_the_old_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let target = dir.path().join("backups");
    fs::create_dir(&target).unwrap();
    sample_tree(&data, &dir.path().join("elsewhere"));
    let before = snapshot(&data);

    let mut reports = Vec::new();
    let manifest = create(&data, &target, &base("bp1", at(0)), &mut |p| {
        reports.push(p)
    })
    .unwrap();
    assert_eq!(manifest.archive, "nodeos-bp1-1234-20261119T013907Z.tar.zst");
    assert_eq!(manifest.format, "tar+zstd");
    assert_eq!(manifest.files, before.len() as u64);
    assert_eq!(manifest.created_at, "2026-11-19T01:39:07Z");
    let last = reports.last().expect("a final report");
    assert!(last.done && last.files == manifest.files, "{last:?}");
    assert_eq!(last.bytes, 300_000 + 10_000 + 4 + 6 + 11 + 11);
    // The manifest on disk is the one returned.
    let on_disk = Manifest::read(&target.join("nodeos-bp1-1234-20261119T013907Z.manifest.json"));
    assert_eq!(on_disk.unwrap(), manifest);

    let listing = list(&target).unwrap();
    assert_eq!(listing.good.len(), 1);
    assert!(listing.incomplete.is_empty(), "{:?}", listing.incomplete);
    let entry = &listing.good[0];
    assert_eq!(entry.manifest, manifest);

    // The node wrote on after the backup; the restore brings the backup's state back.
    fs::write(data.join("blocks/blocks.log"), b"newer and broken").unwrap();
    fs::write(data.join("dirty"), b"flag").unwrap();
    let changed = snapshot(&data);
    let restored = restore(&entry.archive, &manifest, &data, at(60), &mut no_progress()).unwrap();
    assert_eq!(snapshot(&data), before);
    let old = restored.old.expect("the old directory is kept");
    assert_eq!(old, dir.path().join("data.old-20261119T014007Z"));
    assert_eq!(snapshot(&old), changed);
    // The symlink out was stored as a symlink: nothing of the other directory came along.
    assert!(
        fs::symlink_metadata(data.join("out"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        names_in(dir.path()),
        ["backups", "data", "data.old-20261119T014007Z", "elsewhere"]
    );
    remove_old(&old).unwrap();
    assert!(!old.exists());
}

#[test]
fn restore_into_a_missing_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let target = dir.path().join("backups");
    fs::create_dir(&target).unwrap();
    sample_tree(&data, &dir.path().join("elsewhere"));
    let before = snapshot(&data);
    let manifest = create(&data, &target, &base("bp1", at(0)), &mut no_progress()).unwrap();
    let fresh = dir.path().join("fresh");
    let restored = restore(
        &target.join(&manifest.archive),
        &manifest,
        &fresh,
        at(1),
        &mut no_progress(),
    )
    .unwrap();
    assert_eq!(restored.old, None);
    assert_eq!(snapshot(&fresh), before);
}

/// Makes an archive of a small tree; the target, the data directory and the manifest.
fn one_backup(dir: &Path) -> (PathBuf, PathBuf, Manifest) {
    let data = dir.join("data");
    let target = dir.join("backups");
    fs::create_dir(&target).unwrap();
    sample_tree(&data, &dir.join("elsewhere"));
    let manifest = create(&data, &target, &base("bp1", at(0)), &mut no_progress()).unwrap();
    (data, target, manifest)
}

/// Restoring must fail without touching the data directory or leaving a staging directory.
#[track_caller]
fn refused(dir: &Path, archive: &Path, manifest: &Manifest) -> BackupError {
    let data = dir.join("data");
    let before = snapshot(&data);
    let error = restore(archive, manifest, &data, at(60), &mut no_progress()).unwrap_err();
    assert_eq!(snapshot(&data), before);
    assert_eq!(names_in(dir), ["backups", "data", "elsewhere"]);
    error
}

#[test]
fn a_corrupted_archive_is_refused_before_the_data_directory_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let (_, target, manifest) = one_backup(dir.path());
    let archive = target.join(&manifest.archive);
    let mut bytes = fs::read(&archive).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&archive, &bytes).unwrap();
    let error = refused(dir.path(), &archive, &manifest);
    let BackupError::Corrupt {
        path,
        expected,
        actual,
    } = &error
    else {
        panic!("{error}");
    };
    assert_eq!(path, &archive);
    assert_eq!(expected, &manifest.sha256[..12]);
    assert_ne!(actual, expected);
    let message = error.to_string();
    assert!(
        message.contains(&manifest.archive) && message.contains(expected.as_str()),
        "{message}"
    );
}

#[test]
fn a_truncated_archive_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, target, manifest) = one_backup(dir.path());
    let archive = target.join(&manifest.archive);
    let file = fs::OpenOptions::new().write(true).open(&archive).unwrap();
    file.set_len(manifest.bytes / 2).unwrap();
    let error = refused(dir.path(), &archive, &manifest);
    assert!(
        matches!(error, BackupError::SizeMismatch { expected, actual, .. }
            if expected == manifest.bytes && actual == manifest.bytes / 2),
        "{error}"
    );
    // Not listed as good either.
    let listing = list(&target).unwrap();
    assert!(listing.good.is_empty());
    assert_eq!(listing.incomplete.len(), 2, "{:?}", listing.incomplete);
}

/// A manifest that matches whatever bytes `archive` holds (as a forged or buggy one would).
fn matching_manifest(archive: &Path, like: &Manifest) -> Manifest {
    use sha2::Digest as _;
    let bytes = fs::read(archive).unwrap();
    Manifest {
        sha256: hex(&sha2::Sha256::digest(&bytes)),
        bytes: bytes.len() as u64,
        ..like.clone()
    }
}

#[test]
fn an_undecodable_archive_is_refused_and_its_staging_directory_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (_, target, manifest) = one_backup(dir.path());
    let archive = target.join(&manifest.archive);
    // A zstd stream cut in the middle, with a manifest that agrees with it.
    let bytes = fs::read(&archive).unwrap();
    fs::write(&archive, &bytes[..bytes.len() / 2]).unwrap();
    let error = refused(
        dir.path(),
        &archive,
        &matching_manifest(&archive, &manifest),
    );
    assert!(matches!(error, BackupError::Extract { .. }), "{error}");
    // Plain garbage.
    fs::write(&archive, b"garbage, not zstd").unwrap();
    let error = refused(
        dir.path(),
        &archive,
        &matching_manifest(&archive, &manifest),
    );
    assert!(matches!(error, BackupError::Extract { .. }), "{error}");
}

/// A tar stream of one file whose raw header path is `path` (the builder would refuse it).
fn raw_tar(path: &str) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
    header.set_size(4);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend_from_slice(b"evil");
    bytes.resize(512 * 2, 0);
    bytes.resize(bytes.len() + 1024, 0);
    bytes
}

#[test]
fn entries_with_an_absolute_path_or_dotdot_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, target, manifest) = one_backup(dir.path());
    let archive = target.join(&manifest.archive);
    for (path, reason) in [
        ("../evil", "a path with '..'"),
        ("a/../../evil", "a path with '..'"),
        ("/tmp/evil", "an absolute path"),
    ] {
        let compressed = zstd::encode_all(&raw_tar(path)[..], 3).unwrap();
        fs::write(&archive, compressed).unwrap();
        let error = refused(
            dir.path(),
            &archive,
            &matching_manifest(&archive, &manifest),
        );
        assert!(
            matches!(&error, BackupError::UnsafeEntry { entry, reason: r, .. }
                if entry == path && *r == reason),
            "{path}: {error}"
        );
        assert!(!dir.path().join("evil").exists());
    }
}

#[test]
fn leftovers_of_interrupted_backups_are_listed_as_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let (_, target, manifest) = one_backup(dir.path());
    // A crash while the archive was written, one before its rename, an archive whose manifest is
    // garbage, another whose manifest names a different archive, and a stray file.
    fs::write(
        target.join(".nodeos-bp1-5-20261119T020000Z.tar.zst.partial"),
        b"half",
    )
    .unwrap();
    fs::write(
        target.join(".nodeos-bp1-5-20261119T020000Z.manifest.json.partial"),
        b"{",
    )
    .unwrap();
    fs::write(
        target.join("nodeos-bp1-6-20261119T030000Z.manifest.json"),
        b"{}",
    )
    .unwrap();
    fs::write(target.join("nodeos-bp1-6-20261119T030000Z.tar.zst"), b"x").unwrap();
    let mut wrong = manifest.clone();
    wrong.archive = "../../etc/passwd.tar.zst".to_owned();
    fs::write(
        target.join("nodeos-bp1-7-20261119T040000Z.manifest.json"),
        serde_json::to_vec(&wrong).unwrap(),
    )
    .unwrap();
    fs::write(target.join("README"), b"not an archive").unwrap();
    let listing = list(&target).unwrap();
    assert_eq!(listing.good.len(), 1);
    assert_eq!(listing.good[0].manifest, manifest);
    let incomplete: Vec<String> = listing
        .incomplete
        .iter()
        .map(|i| i.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        incomplete,
        [
            ".nodeos-bp1-5-20261119T020000Z.manifest.json.partial",
            ".nodeos-bp1-5-20261119T020000Z.tar.zst.partial",
            "nodeos-bp1-6-20261119T030000Z.manifest.json",
            "nodeos-bp1-7-20261119T040000Z.manifest.json",
            "nodeos-bp1-6-20261119T030000Z.tar.zst",
        ]
    );
    assert!(
        listing.incomplete[2]
            .reason
            .contains("cannot read manifest"),
        "{:?}",
        listing.incomplete[2]
    );
}

#[test]
fn prune_keeps_the_newest_and_never_the_only_good_archive() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let target = dir.path().join("backups");
    fs::create_dir(&target).unwrap();
    sample_tree(&data, &dir.path().join("elsewhere"));
    let mut archives = Vec::new();
    for minute in 0..3 {
        let manifest = create(
            &data,
            &target,
            &base("bp1", at(60 * minute)),
            &mut no_progress(),
        )
        .unwrap();
        archives.push(target.join(manifest.archive));
    }
    create(&data, &target, &base("bp2", at(0)), &mut no_progress()).unwrap();
    let listing = list(&target).unwrap();
    let newest_first: Vec<_> = listing.of_node("bp1").map(|e| e.archive.clone()).collect();
    assert_eq!(
        newest_first,
        [
            archives[2].clone(),
            archives[1].clone(),
            archives[0].clone()
        ]
    );
    assert_eq!(listing.of_chain("nodeos").count(), 4);

    assert_eq!(prune(&target, "bp1", 2).unwrap(), [archives[0].clone()]);
    assert!(!archives[0].exists());
    assert_eq!(prune(&target, "bp1", 0).unwrap(), [archives[1].clone()]);
    assert_eq!(prune(&target, "bp1", 0).unwrap(), Vec::<PathBuf>::new());
    let listing = list(&target).unwrap();
    assert!(
        listing.incomplete.is_empty(),
        "manifests go with their archives"
    );
    assert_eq!(listing.good.len(), 2, "bp1's newest and bp2's only one");
    assert_eq!(names_in(&target).len(), 4);
}

#[test]
fn a_full_disk_at_any_point_leaves_nothing_that_looks_complete() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let target = dir.path().join("backups");
    fs::create_dir(&target).unwrap();
    sample_tree(&data, &dir.path().join("elsewhere"));
    let whole = create(&data, &target, &base("bp1", at(0)), &mut no_progress())
        .unwrap()
        .bytes;
    fs::remove_dir_all(&target).unwrap();
    fs::create_dir(&target).unwrap();
    for limit in [0, 1, 100, whole / 2, whole - 1] {
        for workers in [0, 1] {
            let options = ArchiveOptions { level: 3, workers };
            let error = create_inner(
                &data,
                &target,
                &base("bp1", at(0)),
                options,
                Some(limit),
                &mut no_progress(),
            )
            .unwrap_err();
            assert!(
                matches!(&error, BackupError::DiskFull { path, .. } if path.ends_with(".nodeos-bp1-1234-20261119T013907Z.tar.zst.partial")),
                "{limit}: {error}"
            );
            assert!(error.to_string().contains("no space left"), "{error}");
            assert_eq!(names_in(&target), Vec::<String>::new(), "{limit}");
        }
    }
    // A target that holds exactly the archive's bytes suffices.
    create_inner(
        &data,
        &target,
        &base("bp1", at(0)),
        ArchiveOptions::default(),
        Some(whole),
        &mut no_progress(),
    )
    .unwrap();
}

#[test]
fn refusals_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (data, target, _) = one_backup(dir.path());
    let error = create(&data, &target, &base("bp1", at(0)), &mut no_progress()).unwrap_err();
    assert!(matches!(error, BackupError::Exists { .. }), "{error}");
    let error = create(
        &dir.path().join("missing"),
        &target,
        &base("bp1", at(9)),
        &mut no_progress(),
    );
    assert!(matches!(error, Err(BackupError::NotADirectory { .. })));
    let error = create(&data, &target, &base("../bp1", at(9)), &mut no_progress());
    assert!(matches!(error, Err(BackupError::InvalidName { .. })));
    assert_eq!(names_in(&target).len(), 2);
}

/// A random tree: up to 4 levels, files of 0..64 KiB (some compressible, some not), empty
/// directories, symlinks, modes.
fn random_tree(rng: &mut SplitMix, root: &Path, depth: u32) {
    fs::create_dir_all(root).unwrap();
    for i in 0..rng.below(6) {
        let name = format!("e{i}-{}", rng.below(1000));
        let path = root.join(&name);
        match rng.below(10) {
            0..=5 => {
                let len = match rng.below(4) {
                    0 => 0,
                    1 => rng.below(600) as usize,
                    _ => rng.below(64 * 1024) as usize,
                };
                let bytes: Vec<u8> = if rng.below(2) == 0 {
                    (0..len).map(|_| rng.next() as u8).collect()
                } else {
                    pseudo_random(rng.next(), len)
                };
                fs::write(&path, bytes).unwrap();
                let mode = [0o644, 0o600, 0o755, 0o400][rng.below(4) as usize];
                fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            }
            6..=8 if depth < 4 => random_tree(rng, &path, depth + 1),
            6..=8 => fs::create_dir(&path).unwrap(),
            _ => symlink(format!("target-{}", rng.below(5)), &path).unwrap(),
        }
    }
}

#[test]
fn random_trees_round_trip() {
    for seed in 0..50 {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let target = dir.path().join("backups");
        fs::create_dir(&target).unwrap();
        let mut rng = SplitMix(seed);
        random_tree(&mut rng, &data, 0);
        let before = snapshot(&data);
        let options = ArchiveOptions {
            level: 3,
            workers: (seed % 2) as u32,
        };
        let manifest = create_with(
            &data,
            &target,
            &base("n", at(0)),
            options,
            &mut no_progress(),
        )
        .unwrap();
        assert_eq!(manifest.files, before.len() as u64, "seed {seed}");
        fs::remove_dir_all(&data).unwrap();
        let archive = target.join(&manifest.archive);
        restore(&archive, &manifest, &data, at(1), &mut no_progress()).unwrap();
        assert_eq!(snapshot(&data), before, "seed {seed}");
    }
}
