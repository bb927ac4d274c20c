//! The data benchmark: scoring throughput, hard-gate throughput, dedup time and peak memory on
//! a large generated corpus in the app's collection format. `scripts/bench-data` runs it beside
//! the Python baseline (`scripts/bench/hard_gates.py`) and prints the comparison.
//!
//! ```text
//! cargo run --release -p tierforge-data --example bench_data -- [--n N] [--seed S]
//!     [--input FILE | --out FILE] [--generate-only] [--chunk LINES] [--chunk-mib M] [--threads T]
//!     [--only full,gates,dedup] [--digest]
//! ```
//!
//! Without `--input`, N samples (default 1,000,000) are generated deterministically with the
//! crate's own RNG into `--out` (default `.cache/bench/samples-N-sS.jsonl`, with a `.meta.json`
//! beside it), unless that file is already there: made-up words from a 4,000-word vocabulary
//! mixed with English function words, 1–10 features, descriptions plain or with `<p>`/`<ul><li>`
//! markup and the odd entity or non-ASCII character; about 25% of samples fail a length gate,
//! 4% carry a compliance problem, 1% are exact and 1% near duplicates of an earlier sample.
//!
//! The file is then streamed in chunks of whole lines of about `--chunk-mib` MiB (default 16),
//! read on a helper thread into recycled buffers, so memory stays bounded; the lines of a chunk
//! are found and numbered on all threads (`lines::line_blocks`, as `read::read_file` does).
//! `--chunk` is the number of lines generated at a time. The passes:
//!
//! 1. full rubric: bytes -> UTF-8 check -> `read::parse_record` -> `score::score_sample`, rayon
//!    over the lines of a chunk, all threads;
//! 2. hard gates alone (the Python baseline's work): bytes -> `parse_record` ->
//!    `Rubric::length_gates`, on 1 thread and on all threads;
//! 3. dedup: parse, then `text::normalise(dedup_text)` + `Fingerprint::of` in parallel, then
//!    `dedup_fingerprints` over all N with the pass-1 scores as ranks;
//! 4. peak RSS (VmHWM), overall and per pass (reset between passes where the kernel allows).
//!
//! A JSON object with every figure goes to stdout; progress goes to stderr. Each pass also
//! reports its CPU time, so that throughput per CPU-second can be compared on a busy machine.
//! With `--digest`, `report_digest` is a SHA-256 over everything reading and scoring produced
//! for every line (the sample, its full report or its problems), the length-gate verdicts and
//! the fingerprints: equal digests from two builds on the same file mean that an optimisation
//! changed no result.

use rayon::prelude::*;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tierforge_data::dedup::{dedup_fingerprints, dedup_text, DedupConfig, DupKind, Fingerprint};
use tierforge_data::lines::{line_blocks, BLOCK_BYTES};
use tierforge_data::read::parse_record;
use tierforge_data::rng::{mix64, Rng};
use tierforge_data::sample::{
    AppMetadata, AppOutput, AppRecord, Origin, ProductInput, QualityMetrics, UserContext,
    UserFeedback,
};
use tierforge_data::score::{score_sample, Scored};
use tierforge_data::text::{normalise, STOPWORDS};
use tierforge_data::{Lexicons, Problem, Rubric, Sample};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Args {
    n: usize,
    seed: u64,
    input: Option<PathBuf>,
    out: Option<PathBuf>,
    generate_only: bool,
    chunk: usize,
    chunk_mib: usize,
    threads: usize,
    digest: bool,
    only: Option<String>,
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        n: 1_000_000,
        seed: 42,
        input: None,
        out: None,
        generate_only: false,
        chunk: 25_000,
        chunk_mib: 16,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        digest: false,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--n" => a.n = val()?.replace(['_', ','], "").parse()?,
            "--seed" => a.seed = val()?.parse()?,
            "--input" => a.input = Some(val()?.into()),
            "--out" => a.out = Some(val()?.into()),
            "--chunk" => a.chunk = val()?.parse::<usize>()?.max(1),
            "--chunk-mib" => a.chunk_mib = val()?.parse::<usize>()?.max(1),
            "--threads" => a.threads = val()?.parse::<usize>()?.max(1),
            "--generate-only" => a.generate_only = true,
            "--digest" => a.digest = true,
            "--only" => a.only = Some(val()?),
            "-h" | "--help" => {
                eprintln!("usage: bench_data [--n N] [--seed S] [--input FILE | --out FILE] [--generate-only] [--chunk LINES] [--chunk-mib M] [--threads T] [--digest] [--only full,gates,dedup]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(a)
}

fn main() -> Res<()> {
    // Allocate as the `tierforge` binary does.
    tierforge_data::allocator::keep_freed_memory();
    let args = parse_args()?;
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()?;
    let (path, generated) = match &args.input {
        Some(p) => (p.clone(), None),
        None => {
            let p = args.out.clone().unwrap_or_else(|| {
                PathBuf::from(format!(
                    ".cache/bench/samples-{}-s{}.jsonl",
                    args.n, args.seed
                ))
            });
            let meta = meta_path(&p);
            if p.exists() && meta.exists() {
                eprintln!("bench_data: using the generated file {}", p.display());
                (p, Some(serde_json::from_slice(&std::fs::read(&meta)?)?))
            } else {
                let m = generate(&p, args.n, args.seed, args.chunk)?;
                (p, Some(m))
            }
        }
    };
    if args.generate_only {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "file": path, "generated": generated }))?
        );
        return Ok(());
    }
    let report = bench(&path, &args, generated)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Streaming the file in chunks of whole lines.

/// A chunk of whole lines: `bytes[..len]`, every line ended by `\n` but for the file's last.
/// Its buffer goes back to the reader once processed.
struct Chunk {
    bytes: Vec<u8>,
    len: usize,
}

/// Reads `path` on a helper thread in chunks of about `chunk_bytes` (whole lines) and hands `f`
/// each chunk's lines, numbered, in file order, while the next chunk is being read. Buffers are
/// allocated once and come back to the reader: fresh pages would have to be faulted in and
/// zeroed for every chunk (a fifth of the CPU time of the hard-gates pass when they were).
fn for_chunks(path: &Path, chunk_bytes: usize, mut f: impl FnMut(&[(usize, &[u8])])) -> Res<()> {
    let mut file = File::open(path)?;
    let (tx, rx) = sync_channel::<Chunk>(1);
    let (back_tx, back_rx) = channel::<Vec<u8>>();
    std::thread::scope(|s| -> Res<()> {
        let reader = s.spawn(move || -> std::io::Result<()> {
            // The tail of the last buffer: the start of a line that did not fit.
            let mut carry: Vec<u8> = Vec::new();
            loop {
                let mut buf = back_rx
                    .try_recv()
                    .unwrap_or_else(|_| vec![0; chunk_bytes.max(1)]);
                if carry.len() >= buf.len() {
                    buf.resize(carry.len() * 2, 0);
                }
                buf[..carry.len()].copy_from_slice(&carry);
                let mut len = carry.len();
                let mut eof = false;
                let cut = loop {
                    while len < buf.len() {
                        let got = file.read(&mut buf[len..])?;
                        if got == 0 {
                            eof = true;
                            break;
                        }
                        len += got;
                    }
                    if eof {
                        break len;
                    }
                    match memchr::memrchr(b'\n', &buf[..len]) {
                        Some(i) => break i + 1,
                        // One line longer than the buffer: grow it.
                        None => buf.resize(buf.len() * 2, 0),
                    }
                };
                carry.clear();
                carry.extend_from_slice(&buf[cut..len]);
                if cut == 0 {
                    return Ok(());
                }
                if tx
                    .send(Chunk {
                        bytes: buf,
                        len: cut,
                    })
                    .is_err()
                    || eof
                {
                    return Ok(());
                }
            }
        });
        let mut next_line = 1;
        for chunk in rx {
            let (blocks, n) = line_blocks(&chunk.bytes[..chunk.len], next_line, BLOCK_BYTES);
            next_line += n;
            let lines: Vec<(usize, &[u8])> =
                blocks.par_iter().flat_map_iter(|b| b.lines()).collect();
            f(&lines);
            drop(lines);
            let _ = back_tx.send(chunk.bytes);
        }
        reader.join().map_err(|_| "reader thread panicked")??;
        Ok(())
    })
}

/// Parses one line the way `read::read_bytes` does (UTF-8 check, then `parse_record`).
fn parse_line(file: &Arc<str>, line_no: usize, line: &[u8]) -> Result<Sample, Vec<Problem>> {
    let Ok(text) = std::str::from_utf8(line) else {
        return Err(Vec::new());
    };
    parse_record(
        text,
        Origin {
            file: file.clone(),
            line: line_no,
        },
        0,
    )
}

/// Everything reading and scoring one line produced, as JSON (for `--digest`).
fn digest_part(parsed: &Result<Sample, Vec<Problem>>, scored: Option<&Scored>) -> Vec<u8> {
    let v = match parsed {
        Ok(s) => json!({
            "id": s.id,
            "line": s.origin.line,
            "format": s.format,
            "input": s.input,
            "listing": s.listing,
            "listing_error": s.listing_error,
            "messages": s.messages,
            "app": s.app,
            "raw": s.raw,
            "scored": scored,
        }),
        Err(problems) => json!({ "problems": problems }),
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The benchmark passes.

fn bench(path: &Path, args: &Args, generated: Option<serde_json::Value>) -> Res<serde_json::Value> {
    let rubric = Rubric::default();
    let file: Arc<str> = Arc::from(path.display().to_string());
    let file_bytes = std::fs::metadata(path)?.len();
    let chunk = args.chunk_mib << 20;
    let run = |pass: &str| {
        args.only
            .as_deref()
            .is_none_or(|o| o.split(',').any(|p| p == pass))
    };
    let mut phases = serde_json::Map::new();
    let mut digest = Sha256::new();

    // Warm the page cache so that every pass reads the file the same way.
    let t = Instant::now();
    let mut n = 0usize;
    for_chunks(path, chunk, |c| n += c.len())?;
    let read_s = t.elapsed().as_secs_f64();
    eprintln!(
        "bench_data: {} ({:.0} MiB, {n} samples) read in {read_s:.2} s",
        path.display(),
        file_bytes as f64 / (1 << 20) as f64
    );
    phases.insert(
        "read_only".into(),
        json!({ "seconds": read_s, "peak_rss_mib": reset_hwm() }),
    );

    // 1. Full rubric.
    let mut scores: Vec<u8> = vec![0; n];
    let full = if run("full") {
        eprintln!("bench_data: full rubric, {} threads", args.threads);
        scores.clear();
        let (mut passed, mut rejects, mut total_score, mut hard_failed) =
            (0usize, 0usize, 0u64, 0usize);
        let mut digest_time = Duration::ZERO;
        let cpu = cpu_seconds();
        let t = Instant::now();
        for_chunks(path, chunk, |lines| {
            // What the summary needs of each sample: (score, passed, hard failed). The sample
            // and its report are freed on the thread that made them, in parallel.
            let scored: Vec<Option<(u8, bool, bool)>> = lines
                .par_iter()
                .map(|&(no, l)| {
                    parse_line(&file, no, l).ok().map(|s| {
                        let s = score_sample(&rubric, &s);
                        let hard = s.report.as_ref().is_some_and(|r| r.hard_failed);
                        (s.score(), s.passed(), hard)
                    })
                })
                .collect();
            // Digest outside the timed work: it parses and scores again, then serialises it all.
            let td = Instant::now();
            if args.digest {
                let parts: Vec<Vec<u8>> = lines
                    .par_iter()
                    .map(|&(no, l)| {
                        let parsed = parse_line(&file, no, l);
                        let scored = parsed.as_ref().ok().map(|s| score_sample(&rubric, s));
                        digest_part(&parsed, scored.as_ref())
                    })
                    .collect();
                for p in &parts {
                    digest.update(p);
                    digest.update(b"\n");
                }
            }
            digest_time += td.elapsed();
            for s in &scored {
                match s {
                    &Some((score, pass, hard)) => {
                        scores.push(score);
                        passed += pass as usize;
                        total_score += score as u64;
                        hard_failed += hard as usize;
                    }
                    None => {
                        scores.push(0);
                        rejects += 1;
                    }
                }
            }
        })?;
        let full_s = t.elapsed().saturating_sub(digest_time).as_secs_f64();
        let cpu_s = (cpu_seconds() - cpu).max(1e-9);
        let n = scores.len();
        let full_rate = n as f64 / full_s;
        eprintln!("bench_data:   {n} samples in {full_s:.2} s: {full_rate:.0} samples/s ({:.0} per CPU-second)", n as f64 / cpu_s);
        phases.insert("full_rubric".into(), json!({ "peak_rss_mib": reset_hwm() }));
        json!({
            "samples": n,
            "seconds": full_s,
            "samples_per_s": full_rate,
            "cpu_seconds": (!args.digest).then_some(cpu_s),
            "samples_per_cpu_s": (!args.digest).then(|| n as f64 / cpu_s),
            "threads": args.threads,
            "passed": passed,
            "pass_rate": passed as f64 / n.max(1) as f64,
            "mean_score": total_score as f64 / n.max(1) as f64,
            "hard_failed": hard_failed,
            "rejects": rejects,
            "target_samples_per_s": 300_000,
        })
    } else {
        serde_json::Value::Null
    };

    // 2. Hard gates alone, 1 thread and all threads.
    let gates = if run("gates") {
        let mut gates = serde_json::Map::new();
        let mut gate_passes = Vec::new();
        let mut gate_bits: Vec<bool> = Vec::with_capacity(n);
        for threads in [1, args.threads] {
            eprintln!("bench_data: hard gates, {threads} thread(s)");
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()?;
            let mut pass = 0usize;
            let mut count = 0usize;
            let keep_bits = gate_bits.is_empty();
            let cpu = cpu_seconds();
            let t = Instant::now();
            for_chunks(path, chunk, |lines| {
                let bits: Vec<bool> = pool.install(|| {
                    lines
                        .par_iter()
                        .map(|&(no, l)| {
                            parse_line(&file, no, l)
                                .ok()
                                .and_then(|s| s.listing.map(|l| rubric.length_gates(&l)))
                                .unwrap_or(false)
                        })
                        .collect()
                });
                count += bits.len();
                pass += bits.iter().filter(|&&b| b).count();
                if keep_bits {
                    gate_bits.extend(bits);
                }
            })?;
            let s = t.elapsed().as_secs_f64();
            let cpu_s = (cpu_seconds() - cpu).max(1e-9);
            eprintln!(
                "bench_data:   {count} samples in {s:.2} s: {:.0} samples/s ({:.0} per CPU-second), {pass} pass",
                count as f64 / s,
                count as f64 / cpu_s
            );
            gate_passes.push(pass);
            gates.insert(
                format!("threads_{threads}"),
                json!({
                    "threads": threads,
                    "seconds": s,
                    "samples_per_s": count as f64 / s,
                    "cpu_seconds": cpu_s,
                    "samples_per_cpu_s": count as f64 / cpu_s,
                }),
            );
        }
        gates.insert("samples".into(), json!(n));
        gates.insert("passed".into(), json!(gate_passes[0]));
        gates.insert(
            "passes_agree".into(),
            json!(gate_passes.iter().all(|&p| p == gate_passes[0])),
        );
        if args.digest {
            for b in &gate_bits {
                digest.update([*b as u8]);
            }
        }
        phases.insert("hard_gates".into(), json!({ "peak_rss_mib": reset_hwm() }));
        serde_json::Value::Object(gates)
    } else {
        serde_json::Value::Null
    };

    // 3. Dedup over all N: fingerprints streamed, clustering on the whole set.
    let dedup = if run("dedup") {
        eprintln!("bench_data: dedup");
        let mut fps: Vec<Fingerprint> = Vec::with_capacity(n);
        let mut ids: Vec<String> = Vec::with_capacity(n);
        let (mut parse_t, mut fp_t) = (Duration::ZERO, Duration::ZERO);
        let cfg = DedupConfig::default();
        let t = Instant::now();
        for_chunks(path, chunk, |lines| {
            let tp = Instant::now();
            let samples: Vec<Option<Sample>> = lines
                .par_iter()
                .map(|&(no, l)| parse_line(&file, no, l).ok())
                .collect();
            parse_t += tp.elapsed();
            let tf = Instant::now();
            let chunk_fps: Vec<Fingerprint> = samples
                .par_iter()
                .map(|s| match s {
                    Some(s) => Fingerprint::of(&normalise(&dedup_text(s)), cfg.shingle_words),
                    None => Fingerprint::of("", cfg.shingle_words),
                })
                .collect();
            fp_t += tf.elapsed();
            fps.extend(chunk_fps);
            ids.extend(samples.into_iter().enumerate().map(|(i, s)| match s {
                Some(s) => s.id,
                None => format!("reject:{}", lines[i].0),
            }));
        })?;
        let stream_s = t.elapsed().as_secs_f64();
        let rank: Vec<f64> = scores.iter().map(|&s| s as f64).collect();
        let tc = Instant::now();
        let out = dedup_fingerprints(&fps, &rank, &ids, cfg);
        let cluster_s = tc.elapsed().as_secs_f64();
        if args.digest {
            for f in &fps {
                digest.update(f.exact.0.to_le_bytes());
                for v in &f.signature {
                    digest.update(v.to_le_bytes());
                }
            }
        }
        let dedup_s = fp_t.as_secs_f64() + cluster_s;
        eprintln!(
            "bench_data:   normalise+fingerprint {:.2} s, clustering {cluster_s:.2} s, parse {:.2} s; {} clusters",
            fp_t.as_secs_f64(),
            parse_t.as_secs_f64(),
            out.clusters.len()
        );
        let near_clusters = out
            .clusters
            .iter()
            .filter(|c| matches!(c.kind, DupKind::Near))
            .count();
        let v = json!({
            "samples": fps.len(),
            "seconds": dedup_s,
            "normalise_fingerprint_seconds": fp_t.as_secs_f64(),
            "cluster_seconds": cluster_s,
            "parse_seconds": parse_t.as_secs_f64(),
            "seconds_with_parse_and_io": stream_s + cluster_s,
            "clusters": out.clusters.len(),
            "exact_clusters": out.clusters.len() - near_clusters,
            "near_clusters": near_clusters,
            "exact_dropped": out.exact_dropped,
            "near_dropped": out.near_dropped,
            "kept": out.keep.len(),
            "target_seconds": 30,
        });
        drop((fps, ids, rank, out));
        phases.insert("dedup".into(), json!({ "peak_rss_mib": reset_hwm() }));
        v
    } else {
        serde_json::Value::Null
    };

    let peak = phases
        .values()
        .filter_map(|p| p["peak_rss_mib"].as_f64())
        .fold(0.0, f64::max);
    Ok(json!({
        "file": path,
        "file_bytes": file_bytes,
        "samples": n,
        "chunk_bytes": chunk,
        "threads": args.threads,
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "load_average": std::fs::read_to_string("/proc/loadavg").ok().map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")),
        "full_rubric": full,
        "hard_gates": gates,
        "dedup": dedup,
        "peak_rss_mib": peak,
        "phases": phases,
        "generated": generated,
        "report_digest": args.digest.then(|| format!("{:x}", digest.finalize())),
    }))
}

/// User + system CPU time of this process so far, in seconds.
fn cpu_seconds() -> f64 {
    // Fields 14 and 15 of /proc/self/stat, after the command name in parentheses.
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        .unwrap_or(0.0);
    ticks / 100.0
}

/// Peak resident memory (VmHWM) in MiB since the last reset, then resets the peak (where the
/// kernel allows it) so the next pass is measured on its own.
fn reset_hwm() -> f64 {
    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0);
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    hwm / 1024.0
}

// ---------------------------------------------------------------------------------------------
// The generator.

fn meta_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".meta.json");
    PathBuf::from(s)
}

const NOUNS: &[&str] = &[
    "Lamp",
    "Kettle",
    "Backpack",
    "Headphones",
    "Blender",
    "Toaster",
    "Jacket",
    "Boots",
    "Tent",
    "Drill",
    "Router",
    "Speaker",
    "Keyboard",
    "Mouse",
    "Monitor",
    "Blanket",
    "Pillow",
    "Mattress",
    "Skillet",
    "Cookware",
    "Charger",
    "Cable",
    "Stroller",
    "Helmet",
    "Bicycle",
    "Treadmill",
    "Vacuum",
    "Humidifier",
    "Heater",
    "Fan",
    "Watch",
    "Wallet",
    "Sunglasses",
    "Umbrella",
    "Notebook",
    "Organizer",
    "Shelf",
    "Desk",
    "Chair",
    "Rug",
    "Curtains",
    "Towels",
    "Sheets",
    "Grill",
    "Cooler",
    "Flashlight",
    "Camera",
    "Tripod",
    "Printer",
    "Scanner",
    "Bulbs",
    "Wipers",
    "Mixer",
    "Juicer",
    "Purifier",
    "Dehumidifier",
    "Thermostat",
    "Doorbell",
    "Faucet",
    "Showerhead",
];
const CATEGORIES: &[&str] = &[
    "Electronics > Audio",
    "Electronics > Computer Accessories",
    "Home & Garden > Lamps",
    "Home & Garden > Bedding",
    "Kitchen > Small Appliances",
    "Kitchen > Cookware",
    "Sports & Outdoors > Camping",
    "Sports & Outdoors > Cycling",
    "Clothing > Outerwear",
    "Tools > Power Tools",
    "Automotive > LED Bulbs",
    "Baby > Strollers",
    "Office > Organization",
    "Health > Air Quality",
];
const COLOURS: &[&str] = &[
    "Black",
    "White",
    "Gray",
    "Navy Blue",
    "Forest Green",
    "Walnut Brown",
    "Red",
    "Silver",
    "Charcoal",
    "Sand Beige",
    "Slate",
    "Ivory",
];
const TONES: &[&str] = &["professional", "friendly", "technical", "casual"];
const MODELS: &[&str] = &["gpt-4o-mini", "mistral-small", "llama-3.1-8b", "qwen2.5-7b"];
const UNITS: &[&str] = &[
    "mAh", "W", "lm", "mm", "oz", "Pack", "Piece", "ft", "inch", "RPM",
];
/// Compliance problems planted in ~4% of samples (they fail the compliance gate, not the length
/// gates).
const PLANTED_PROBLEMS: &[&str] = &[
    "an amazing choice",
    "with free shipping",
    "visit www.shopnorth.com today",
    "the best value",
    "clinically proven comfort",
    "call 555-123-4567",
];
const SYLLABLE_ONSETS: &[&str] = &[
    "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br",
    "cr", "dr", "fl", "gr", "pl", "st", "tr", "sh", "ch", "th", "qu", "sl",
];
const SYLLABLE_VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ea", "ou", "io"];
const SYLLABLE_CODAS: &[&str] = &["", "", "n", "r", "l", "s", "t", "m", "nd", "rk", "x"];

/// Words that must not come out of the syllable generator: lexicon phrases and stopwords (via
/// the rubric's own lists), street words (the address pattern), domain parts (the URL pattern),
/// unit words after numbers.
fn banned(w: &str, lex: &Lexicons) -> bool {
    const STREET: &[&str] = &[
        "street", "ave", "avenue", "road", "blvd", "lane", "drive", "suite", "www", "http", "com",
        "net", "org", "info", "biz", "shop", "store", "usd", "eur", "gbp",
    ];
    STREET.contains(&w)
        || STOPWORDS.contains(&w)
        || lex
            .phrase_lexicons()
            .iter()
            .any(|l| l.entries.iter().any(|e| e.phrase == w))
}

/// A vocabulary of `n` distinct pronounceable made-up words, deterministic for `seed`.
fn vocabulary(n: usize, seed: u64) -> Vec<String> {
    let lex = Lexicons::builtin();
    let mut r = Rng::new(seed ^ 0x005E_ED0F_7E57);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let syl = match r.below(100) {
            0..=49 => 1,
            50..=91 => 2,
            _ => 3,
        };
        let mut w = String::new();
        for _ in 0..syl {
            w.push_str(SYLLABLE_ONSETS[r.below(SYLLABLE_ONSETS.len())]);
            w.push_str(SYLLABLE_VOWELS[r.below(SYLLABLE_VOWELS.len())]);
            w.push_str(SYLLABLE_CODAS[r.below(SYLLABLE_CODAS.len())]);
        }
        if (3..=11).contains(&w.len()) && !banned(&w, &lex) && seen.insert(w.clone()) {
            out.push(w);
        }
    }
    out
}

fn cap(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// How a sample fails the length gates (about 25% of samples fail one).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum GateFault {
    None,
    TitleShort,
    TitleLong,
    FewFeatures,
    ManyFeatures,
    LongFeature,
    EmptyFeature,
    ShortDescription,
}

const FAULTS: &[GateFault] = &[
    GateFault::TitleShort,
    GateFault::TitleLong,
    GateFault::FewFeatures,
    GateFault::ManyFeatures,
    GateFault::LongFeature,
    GateFault::EmptyFeature,
    GateFault::ShortDescription,
];

/// What a line of the generated file is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Plant {
    Fresh,
    /// Same listing as an earlier sample (new id and timestamp).
    Exact(usize),
    /// An earlier sample's listing with 1–3 description words changed.
    Near(usize),
}

struct Gen {
    seed: u64,
    vocab: Vec<String>,
}

impl Gen {
    fn rng(&self, i: usize, salt: u64) -> Rng {
        Rng::new(mix64(self.seed ^ mix64(i as u64 ^ salt.rotate_left(32))))
    }

    fn word(&self, r: &mut Rng) -> &str {
        &self.vocab[r.below(self.vocab.len())]
    }

    fn plant(&self, i: usize) -> Plant {
        if i < 10 {
            return Plant::Fresh;
        }
        let mut r = self.rng(i, 1);
        let roll = r.below(1000);
        if roll >= 20 {
            return Plant::Fresh;
        }
        // An earlier sample that is itself fresh, up to 50,000 lines back.
        let mut j = i - 1 - r.below(i.min(50_000));
        while self.plant(j) != Plant::Fresh {
            j -= 1;
        }
        if roll < 10 {
            Plant::Exact(j)
        } else {
            Plant::Near(j)
        }
    }

    fn fault(&self, i: usize) -> GateFault {
        let mut r = self.rng(i, 2);
        if r.below(100) < 25 {
            FAULTS[r.below(FAULTS.len())]
        } else {
            GateFault::None
        }
    }

    /// A sentence of `n` words: made-up content words mixed with English function words.
    /// A sentence of `n` words: made-up content words mixed with English function words and
    /// the odd number ("12", "40-hour", "3000K", "5.3").
    fn sentence(&self, r: &mut Rng, n: usize, out: &mut String) {
        for k in 0..n {
            if k > 0 {
                out.push(' ');
            }
            let roll = r.below(100);
            if k > 0 && roll < 2 {
                match r.below(4) {
                    0 => out.push_str(&(2 + r.below(300)).to_string()),
                    1 => out.push_str(&format!("{}-hour", 2 + r.below(60))),
                    2 => out.push_str(&format!("{}K", 27 + r.below(40))),
                    _ => out.push_str(&format!("{}.{}", 1 + r.below(9), r.below(10))),
                }
                continue;
            }
            let w: &str = if roll < 32 {
                STOPWORDS[r.below(STOPWORDS.len())]
            } else {
                self.word(r)
            };
            if k == 0 {
                out.push_str(&cap(w));
            } else {
                out.push_str(w);
                if k + 1 < n && r.below(100) < 6 {
                    out.push(',');
                }
            }
        }
        out.push('.');
    }

    /// A description of `words` counted words (a few more when an extra phrase is planted),
    /// plain or with `<p>` paragraphs and a `<ul><li>` list; about 1 in 10 holds an entity or a
    /// non-ASCII character.
    fn description(&self, r: &mut Rng, words: usize) -> String {
        let style = r.below(10); // 0-2 plain, 3-7 paragraphs, 8-9 paragraphs and a list
        let extra = r.below(100); // which description gets an entity or non-ASCII text
        let mut out = String::with_capacity(words * 7);
        let mut left = words;
        let mut para = 0;
        while left > 0 {
            let in_list = style >= 8 && para == 1;
            if style >= 3 {
                out.push_str(if in_list { "<ul>" } else { "<p>" });
            } else if para > 0 {
                out.push(' ');
            }
            let mut para_words = (30 + r.below(50)).min(left);
            if left - para_words < 4 {
                para_words = left;
            }
            let mut done = 0;
            while done < para_words {
                let mut n = (5 + r.below(12)).min(para_words - done);
                if para_words - done - n < 3 {
                    n = para_words - done;
                }
                if in_list {
                    out.push_str("<li>");
                } else if done > 0 {
                    out.push(' ');
                }
                self.sentence(r, n, &mut out);
                if done == 0 && para == 1 {
                    match extra {
                        // Entities and characters that are not words themselves.
                        0..=2 => out.push_str(" Salt &amp; pepper."),
                        3..=4 => out.push_str("&nbsp;&#8211; it&rsquo;s"),
                        5..=6 => out.push_str(" It’s bright – and warm."),
                        7 => out.push_str(" Caf&eacute; <b>r&#233;sum&#xE9;</b>"),
                        8 => out.push_str(" Rated 4 °C to 40 °C."),
                        _ => {}
                    }
                }
                if in_list {
                    out.push_str("</li>");
                }
                done += n;
            }
            if style >= 3 {
                out.push_str(if in_list { "</ul>" } else { "</p>" });
            }
            left -= para_words.min(left);
            para += 1;
        }
        out
    }

    fn feature(&self, r: &mut Rng, min: usize, max: usize) -> String {
        let mut f = cap(self.word(r));
        let target = min + r.below(max - min + 1);
        while f.len() < target {
            let w: String = match r.below(10) {
                0 => format!("{}", 2 + r.below(500)),
                1..=3 => STOPWORDS[r.below(STOPWORDS.len())].to_owned(),
                _ => self.word(r).to_owned(),
            };
            if f.len() + 1 + w.len() > max {
                if f.len() >= min {
                    break;
                }
                // Pad with a short number to reach the minimum.
                f.push_str(" 2");
                continue;
            }
            f.push(' ');
            f.push_str(&w);
        }
        f
    }

    fn fresh(&self, i: usize) -> AppRecord {
        let mut r = self.rng(i, 3);
        let fault = self.fault(i);
        let brand = cap(self.word(&mut r));
        let noun = NOUNS[r.below(NOUNS.len())];
        let model_words: Vec<String> = (0..1 + r.below(2))
            .map(|_| cap(self.word(&mut r)))
            .collect();
        let product_name = format!("{brand} {} {noun}", model_words.join(" "));
        let colour = COLOURS[r.below(COLOURS.len())];
        let (lo, hi) = match fault {
            GateFault::TitleShort => (25, 49),
            GateFault::TitleLong => (101, 140),
            _ => (50, 100),
        };
        let target = lo + r.below(hi - lo + 1);
        let qty = format!("{} {}", 2 + r.below(900), UNITS[r.below(UNITS.len())]);
        let mut title = if lo < 50 {
            format!("{brand} {noun} {qty}")
        } else {
            format!("{product_name} {qty} - {colour}")
        };
        while title.len() < target {
            let w = cap(self.word(&mut r));
            if title.len() + 1 + w.len() > hi {
                if title.len() >= lo {
                    break;
                }
                title.push_str(" X2");
                continue;
            }
            title.push(' ');
            title.push_str(&w);
        }
        while title.len() > hi {
            // A short-title fault whose base is already too long: cut at a word boundary.
            match title.rfind(' ') {
                Some(p) => title.truncate(p),
                None => title.truncate(hi),
            }
        }
        let n_features = match fault {
            GateFault::FewFeatures => 1 + r.below(2),
            GateFault::ManyFeatures => 11 + r.below(3),
            _ => 3 + r.below(6),
        };
        let mut features: Vec<String> = (0..n_features)
            .map(|_| self.feature(&mut r, 18, 60))
            .collect();
        match fault {
            GateFault::LongFeature => {
                let k = r.below(n_features);
                features[k] = self.feature(&mut r, 85, 130);
            }
            GateFault::EmptyFeature => {
                let k = r.below(n_features);
                features[k] = if r.below(2) == 0 {
                    String::new()
                } else {
                    "   ".into()
                };
            }
            _ => {}
        }
        let words = match fault {
            GateFault::ShortDescription => 30 + r.below(110),
            _ => 150 + r.below(110),
        };
        let mut description = self.description(&mut r, words);
        if r.below(100) < 4 {
            let p = PLANTED_PROBLEMS[r.below(PLANTED_PROBLEMS.len())];
            description = description.replacen(". ", &format!(" {p}. "), 1);
        }
        let input_features: Vec<String> = (0..3 + r.below(5))
            .map(|_| format!("{} {}", self.word(&mut r), self.word(&mut r)))
            .collect();
        let app_score = 60 + r.below(41);
        let title_length = title.chars().count() as f64;
        AppRecord {
            id: Some(format!("b-{:07}", i + 1)),
            timestamp: Some(timestamp(i)),
            input: ProductInput {
                product_name,
                features: input_features,
                category: CATEGORIES[r.below(CATEGORIES.len())].into(),
                user_context: UserContext {
                    model_used: Some(MODELS[r.below(MODELS.len())].into()),
                    language: Some("en".into()),
                    tone: Some(TONES[r.below(TONES.len())].into()),
                },
            },
            output: AppOutput {
                metadata: Some(AppMetadata {
                    word_count: Some(words as f64),
                    character_count: Some(description.len() as f64),
                    seo_score: Some((50 + r.below(51)) as f64),
                    walmart_compliance: Some(app_score as f64),
                }),
                title,
                features_formatted: features,
                description,
            },
            quality_metrics: Some(QualityMetrics {
                title_length: Some(title_length),
                features_count: Some(n_features as f64),
                description_words: Some(words as f64),
                overall_score: Some(app_score as f64),
            }),
            feedback: (r.below(100) < 30).then(|| UserFeedback {
                rating: 1 + r.below(5) as u8,
                comment: (r.below(2) == 0).then(|| "Saved a lot of editing time.".into()),
            }),
            augmented: None,
        }
    }

    fn record(&self, i: usize) -> (AppRecord, Plant) {
        let plant = self.plant(i);
        let rec = match plant {
            Plant::Fresh => self.fresh(i),
            Plant::Exact(j) => {
                let mut rec = self.fresh(j);
                rec.id = Some(format!("b-{:07}", i + 1));
                rec.timestamp = Some(timestamp(i));
                rec
            }
            Plant::Near(j) => {
                let mut rec = self.fresh(j);
                rec.id = Some(format!("b-{:07}", i + 1));
                rec.timestamp = Some(timestamp(i));
                let mut r = self.rng(i, 4);
                // Change 1–3 words inside the text (never inside a tag or an entity).
                let d = &rec.output.description;
                let spans: Vec<(usize, usize)> = word_spans(d);
                let mut d = d.clone();
                let mut picks: Vec<usize> = (0..1 + r.below(3))
                    .map(|_| r.below(spans.len().max(1)))
                    .collect();
                picks.sort_unstable();
                picks.dedup();
                for &k in picks.iter().rev() {
                    if let Some(&(s, e)) = spans.get(k) {
                        d.replace_range(s..e, self.word(&mut r));
                    }
                }
                rec.output.description = d;
                rec
            }
        };
        (rec, plant)
    }
}

/// Byte spans of lowercase ASCII words outside tags and entities.
fn word_spans(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut in_tag) = (0, false);
    while i < b.len() {
        match b[i] {
            b'<' => in_tag = true,
            b'>' => in_tag = false,
            b'a'..=b'z' if !in_tag && (i == 0 || b[i - 1] == b' ') => {
                let start = i;
                while i < b.len() && b[i].is_ascii_lowercase() {
                    i += 1;
                }
                if i == b.len() || matches!(b[i], b' ' | b'.' | b',') {
                    out.push((start, i));
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// JSON with the separators of Python's `json.dumps` (`", "` and `": "`), like the lines of
/// `data/samples.jsonl`.
fn to_python_style_json(rec: &AppRecord) -> String {
    struct PythonStyle;
    impl serde_json::ser::Formatter for PythonStyle {
        fn begin_array_value<W: ?Sized + Write>(
            &mut self,
            w: &mut W,
            first: bool,
        ) -> std::io::Result<()> {
            if first {
                Ok(())
            } else {
                w.write_all(b", ")
            }
        }
        fn begin_object_key<W: ?Sized + Write>(
            &mut self,
            w: &mut W,
            first: bool,
        ) -> std::io::Result<()> {
            if first {
                Ok(())
            } else {
                w.write_all(b", ")
            }
        }
        fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
            w.write_all(b": ")
        }
    }
    let mut out = Vec::with_capacity(4096);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonStyle);
    serde::Serialize::serialize(rec, &mut ser).expect("an AppRecord always serialises");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

fn timestamp(i: usize) -> String {
    let secs = 1_788_220_800u64 + i as u64 * 37; // from 2026-09-01, one every 37 s
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn generate(path: &Path, n: usize, seed: u64, chunk: usize) -> Res<serde_json::Value> {
    eprintln!("bench_data: generating {n} samples into {}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let t = Instant::now();
    let g = Gen {
        seed,
        vocab: vocabulary(4000, seed),
    };
    let tmp = path.with_extension("jsonl.tmp");
    let mut w = BufWriter::with_capacity(8 << 20, File::create(&tmp)?);
    let (mut exact, mut near, mut faults, mut bytes) = (0usize, 0usize, 0usize, 0u64);
    let mut start = 0;
    while start < n {
        let end = (start + chunk).min(n);
        let lines: Vec<(String, Plant, GateFault)> = (start..end)
            .into_par_iter()
            .map(|i| {
                let (rec, plant) = g.record(i);
                let fault = match plant {
                    Plant::Fresh => g.fault(i),
                    Plant::Exact(j) | Plant::Near(j) => g.fault(j),
                };
                (to_python_style_json(&rec), plant, fault)
            })
            .collect();
        for (line, plant, fault) in &lines {
            w.write_all(line.as_bytes())?;
            w.write_all(b"\n")?;
            bytes += line.len() as u64 + 1;
            match plant {
                Plant::Exact(_) => exact += 1,
                Plant::Near(_) => near += 1,
                Plant::Fresh => {}
            }
            faults += (*fault != GateFault::None) as usize;
        }
        start = end;
    }
    w.flush()?;
    drop(w);
    std::fs::rename(&tmp, path)?;
    let meta = json!({
        "samples": n,
        "seed": seed,
        "bytes": bytes,
        "vocabulary": g.vocab.len(),
        "planted_exact_duplicates": exact,
        "planted_near_duplicates": near,
        "planned_length_gate_failures": faults,
        "seconds": t.elapsed().as_secs_f64(),
    });
    std::fs::write(meta_path(path), serde_json::to_vec_pretty(&meta)?)?;
    eprintln!(
        "bench_data: generated {:.0} MiB in {:.1} s",
        bytes as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64()
    );
    Ok(meta)
}
