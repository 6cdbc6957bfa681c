//! Archive throughput: `nodekeeper::backup::create` (zstd on one worker thread, the default, and on
//! the calling thread) against `tar -C D -cf - . | zstd -3 -q -o O` on the same generated data
//! directory, 3 runs each (alternating), MB/s of data read and the ratio to tar|zstd. Goal:
//! nodekeeper >= 0.8x of tar|zstd. Run through `scripts/bench.sh backup` (which installs zstd), or
//! `cargo bench --bench backup -- --data DIR [--gb 1] [--runs 3]`.
//!
//! The data directory is generated once (seeded: a few large block-log-like files, half of the
//! bytes, and many small files) and kept; `DIR.out/` holds the archives, removed after each run.

// A benchmark measures real elapsed time.
#![allow(clippy::disallowed_types)]

use std::fs;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use nodekeeper::backup::{ArchiveOptions, ManifestBase, create_with};

const GOAL: f64 = 0.8;

/// SplitMix64: seeded, repeatable data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Block-log-like bytes: per record a height, a time, a 32-byte random id (incompressible) and a
/// body of words drawn from a small vocabulary (compressible), as a chain's blocks log is.
fn write_blocks(path: &Path, bytes: u64, rng: &mut Rng) {
    const WORDS: [&str; 16] = [
        "transfer",
        "eosio.token",
        "producer",
        "vote",
        "0.0001 EOS",
        "memo",
        "account",
        "action",
        "authorization",
        "active",
        "owner",
        "delegatebw",
        "undelegatebw",
        "buyram",
        "claim",
        "permission",
    ];
    let mut out = BufWriter::with_capacity(1 << 20, fs::File::create(path).unwrap());
    let mut written = 0u64;
    let mut height = 0u64;
    while written < bytes {
        height += 1;
        let mut record = Vec::with_capacity(512);
        record.extend_from_slice(&height.to_le_bytes());
        record.extend_from_slice(&(1_600_000_000u64 + height / 2).to_le_bytes());
        for _ in 0..4 {
            record.extend_from_slice(&rng.next().to_le_bytes());
        }
        let n_words = 20 + rng.next() % 40;
        for _ in 0..n_words {
            let r = rng.next();
            record.extend_from_slice(WORDS[(r % 16) as usize].as_bytes());
            record.extend_from_slice(&(r >> 40).to_le_bytes()[..2]);
        }
        out.write_all(&record).unwrap();
        written += record.len() as u64;
    }
    out.flush().unwrap();
}

fn generate(dir: &Path, total: u64) {
    let tmp = dir.with_extension("generating");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(tmp.join("blocks")).unwrap();
    let mut rng = Rng(16);
    // Half the bytes in 3 large files, the other half in small files of 4..60 KiB, 100 per dir.
    for i in 0..3 {
        write_blocks(
            &tmp.join(format!("blocks/blocks-{i}.log")),
            total / 6,
            &mut rng,
        );
    }
    let mut small = 0u64;
    let mut n = 0u64;
    while small < total / 2 {
        let sub = tmp.join(format!("state/{:03}", n / 100));
        if n.is_multiple_of(100) {
            fs::create_dir_all(&sub).unwrap();
        }
        let len = 4096 + rng.next() % (56 * 1024);
        write_blocks(&sub.join(format!("{n}.dat")), len, &mut rng);
        small += len;
        n += 1;
    }
    fs::rename(&tmp, dir).unwrap();
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in fs::read_dir(d).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

fn time_nodekeeper(data: &Path, out: &Path, workers: u32) -> (Duration, u64) {
    let _ = fs::remove_dir_all(out);
    fs::create_dir_all(out).unwrap();
    let base = ManifestBase {
        chain: "nodeos".into(),
        node: "bench".into(),
        height: None,
        head: None,
        version: None,
        created_at: SystemTime::UNIX_EPOCH,
    };
    let options = ArchiveOptions { level: 3, workers };
    let start = Instant::now();
    let manifest = create_with(data, out, &base, options, &mut |_| {}).unwrap();
    let elapsed = start.elapsed();
    fs::remove_dir_all(out).unwrap();
    (elapsed, manifest.bytes)
}

fn time_tar_zstd(data: &Path, out: &Path) -> (Duration, u64) {
    let _ = fs::remove_dir_all(out);
    fs::create_dir_all(out).unwrap();
    let archive = out.join("tar.tar.zst");
    let script = format!(
        "tar -C '{}' -cf - . | zstd -3 -q -o '{}'",
        data.display(),
        archive.display()
    );
    let start = Instant::now();
    let status = Command::new("sh").arg("-c").arg(&script).status().unwrap();
    let elapsed = start.elapsed();
    assert!(status.success(), "{script}: {status}");
    let bytes = fs::metadata(&archive).unwrap().len();
    fs::remove_dir_all(out).unwrap();
    (elapsed, bytes)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let mut data: Option<PathBuf> = None;
    let mut gb = 1.0f64;
    let mut runs = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--data" => data = args.next().map(PathBuf::from),
            "--gb" => {
                gb = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--gb NUMBER")
            }
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            // cargo bench passes --bench.
            _ => {}
        }
    }
    let data = data.unwrap_or_else(|| PathBuf::from("target/bench-data/backup"));
    let total = (gb * 1e9) as u64;
    if !data.is_dir() {
        println!("generating {} ({gb} GB, once)", data.display());
        fs::create_dir_all(data.parent().unwrap()).unwrap();
        generate(&data, total);
    }
    let size = dir_bytes(&data);
    let out = data.with_extension("out");
    // One read of everything first, so that every measured run finds it in the page cache.
    let _ = time_tar_zstd(&data, &out);

    let mut samples: [Vec<Duration>; 3] = Default::default();
    let mut sizes = [0u64; 3];
    for run in 0..runs {
        let (t, b) = time_nodekeeper(&data, &out, 1);
        samples[0].push(t);
        sizes[0] = b;
        let (t, b) = time_nodekeeper(&data, &out, 0);
        samples[1].push(t);
        sizes[1] = b;
        let (t, b) = time_tar_zstd(&data, &out);
        samples[2].push(t);
        sizes[2] = b;
        println!(
            "run {}: nodekeeper (1 worker) {:.2} s, nodekeeper (no worker) {:.2} s, tar|zstd {:.2} s",
            run + 1,
            samples[0][run].as_secs_f64(),
            samples[1][run].as_secs_f64(),
            samples[2][run].as_secs_f64()
        );
    }
    let mb = size as f64 / 1e6;
    let rate = |i: usize| mb / median(samples[i].clone()).as_secs_f64();
    println!("data: {mb:.0} MB in {}", data.display());
    for (i, label) in [
        "nodekeeper, 1 worker (default)",
        "nodekeeper, no worker",
        "tar | zstd -3",
    ]
    .iter()
    .enumerate()
    {
        println!(
            "{label:<32} {:>7.1} MB/s (median of {runs}), archive {:.0} MB ({:.2}x smaller)",
            rate(i),
            sizes[i] as f64 / 1e6,
            size as f64 / sizes[i] as f64
        );
    }
    let ratio = rate(0) / rate(2);
    println!(
        "ratio nodekeeper / tar|zstd: {ratio:.2} (no worker: {:.2}); goal nodekeeper >= {GOAL}x of tar|zstd: {}",
        rate(1) / rate(2),
        if ratio >= GOAL { "met" } else { "not met" }
    );
}
