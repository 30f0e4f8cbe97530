//! The store comparison: the projector's exact workload (the shop view on
//! seeded orders: every item a record upserted by id, a row's totals moved
//! by each batch, offsets in the same atomic, fsynced commit per batch) on
//! matview's store (redb), fjall and RocksDB, with a reader reading random
//! rows all along. No broker: the store's own cost.
//!
//!     make bench-stores                     # 2,000,000 orders, redb and fjall
//!     make bench-stores BENCH_STORE_FEATURES=fjall,rocksdb   # and RocksDB
//!     cargo run --release --manifest-path bench/stores/Cargo.toml \
//!       --features fjall -- --orders 200000

mod candidates;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candidates::{Candidate, Error};
use clap::Parser;
use matview::engine::{CompiledView, Position, Record};
use matview::projector::store::RowShape;
use matview::workload::OrderGenerator;
use serde::{Deserialize, Serialize};

// matview's allocator (its main.rs): the stores are compared as it runs them.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(about = "Compare embedded stores on the projector's workload")]
struct Args {
    /// redb, fjall, rocksdb, or all (each in a process of its own).
    #[arg(long, default_value = "all")]
    store: String,
    /// Orders (1-10 items each).
    #[arg(long, default_value_t = 2_000_000)]
    orders: usize,
    /// Distinct users (rows).
    #[arg(long, default_value_t = 100_000)]
    users: u64,
    /// Orders per batch (one commit each), as the projector's default.
    #[arg(long, default_value_t = 20_000)]
    batch: usize,
    /// Block or page cache of every store, in MiB.
    #[arg(long, default_value_t = 256)]
    cache_mib: usize,
    /// Where the stores are made (and deleted afterwards).
    #[arg(long, default_value = "target/bench-stores")]
    work_dir: PathBuf,
    /// Print one store's figures as JSON (what `all` reads from each run).
    #[arg(long)]
    json: bool,
}

/// What one store did.
#[derive(Debug, Serialize, Deserialize)]
struct Figures {
    store: String,
    items: u64,
    commit_seconds: f64,
    /// Items per second of commit time, over the first and last tenth of batches.
    first_tenth: f64,
    last_tenth: f64,
    bytes_written_per_item: f64,
    store_mib: f64,
    peak_rss_mib: f64,
    reads: usize,
    read_p50_ms: f64,
    read_p99_ms: f64,
}

fn shop_view() -> Result<CompiledView, Error> {
    let text = include_str!("../../../examples/items-by-price.yaml");
    let view: matview::crd::MaterializedView = serde_yaml_ng::from_str(text)?;
    Ok(matview::engine::compile(&view.spec).map_err(|e| format!("{e:?}"))?)
}

fn proc_field(file: &str, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/self/{file}")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn open(
    store: &str,
    dir: &Path,
    shape: RowShape,
    cache: usize,
) -> Result<Arc<dyn Candidate>, Error> {
    Ok(match store {
        "redb" => Arc::new(candidates::Redb::open(dir, shape, cache)?),
        #[cfg(feature = "fjall")]
        "fjall" => Arc::new(candidates::OnKv {
            kv: candidates::lsm::Fjall::open(dir, cache)?,
            shape,
        }),
        #[cfg(feature = "rocksdb")]
        "rocksdb" => Arc::new(candidates::OnKv {
            kv: candidates::rocks::Rocks::open(dir, cache)?,
            shape,
        }),
        other => return Err(format!("{other} is not built in (features: fjall, rocksdb)").into()),
    })
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn run_one(args: &Args) -> Result<Figures, Error> {
    let view = shop_view()?;
    let dir = args
        .work_dir
        .join(format!("{}-{}", args.store, std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let store = open(&args.store, &dir, RowShape::of(&view), args.cache_mib << 20)?;

    // A reader all along, on random users.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, stop, users) = (store.clone(), stop.clone(), args.users);
        std::thread::spawn(move || -> Result<Vec<f64>, Error> {
            let (mut latencies, mut seed) = (Vec::new(), 0x2545_f491_4f6c_dd1du64);
            while !stop.load(Ordering::Relaxed) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let key = format!("u{}", seed % users);
                let asked = Instant::now();
                store.read_row(&key)?;
                latencies.push(asked.elapsed().as_secs_f64() * 1000.0);
            }
            Ok(latencies)
        })
    };

    let written_before = proc_field("io", "write_bytes:").unwrap_or(0);
    let mut generator = OrderGenerator::new(42, args.users);
    let (mut items, mut commit_seconds, mut rates) = (0u64, 0.0, Vec::new());
    let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
    let mut produced = 0usize;
    while produced < args.orders {
        let n = args.batch.min(args.orders - produced);
        let mut records: Vec<Record> = Vec::new();
        for i in produced..produced + n {
            let (partition, offset) = ((i % 4) as i32, (i / 4) as i64);
            let event = generator.next_event();
            records.extend(
                view.shape(&event, Position { partition, offset })
                    .unwrap_or_default(),
            );
            offsets.insert(partition, offset + 1);
        }
        produced += n;
        let batch_items = records.len() as u64;
        let started = Instant::now();
        store.apply(records, &offsets)?;
        let seconds = started.elapsed().as_secs_f64();
        commit_seconds += seconds;
        items += batch_items;
        rates.push((batch_items, seconds));
        if rates.len() % 10 == 0 {
            eprintln!("  {}: {produced} / {} orders", args.store, args.orders);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut latencies = reader.join().map_err(|_| "the reader panicked")??;
    latencies.sort_by(f64::total_cmp);
    let written = proc_field("io", "write_bytes:").unwrap_or(0) - written_before;
    let tenth = (rates.len() / 10).max(1);
    let rate = |part: &[(u64, f64)]| {
        part.iter().map(|r| r.0).sum::<u64>() as f64 / part.iter().map(|r| r.1).sum::<f64>()
    };
    let figures = Figures {
        store: args.store.clone(),
        items,
        commit_seconds,
        first_tenth: rate(&rates[..tenth]),
        last_tenth: rate(&rates[rates.len() - tenth..]),
        bytes_written_per_item: written as f64 / items.max(1) as f64,
        store_mib: dir_bytes(&dir) as f64 / (1 << 20) as f64,
        peak_rss_mib: proc_field("status", "VmHWM:").unwrap_or(0) as f64 / 1024.0,
        reads: latencies.len(),
        read_p50_ms: quantile(&latencies, 0.5),
        read_p99_ms: quantile(&latencies, 0.99),
    };
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(figures)
}

fn main() -> Result<(), Error> {
    let args = Args::parse();
    if args.store != "all" {
        let figures = run_one(&args)?;
        if args.json {
            println!("{}", serde_json::to_string(&figures)?);
        } else {
            println!("{figures:#?}");
        }
        return Ok(());
    }
    let mut stores = vec!["redb"];
    if cfg!(feature = "fjall") {
        stores.push("fjall");
    }
    if cfg!(feature = "rocksdb") {
        stores.push("rocksdb");
    }
    let mut all = Vec::new();
    for store in stores {
        eprintln!("{store}…");
        let out = Command::new(std::env::current_exe()?)
            .args([
                "--store",
                store,
                "--json",
                "--orders",
                &args.orders.to_string(),
            ])
            .args([
                "--users",
                &args.users.to_string(),
                "--batch",
                &args.batch.to_string(),
            ])
            .args(["--cache-mib", &args.cache_mib.to_string(), "--work-dir"])
            .arg(&args.work_dir)
            .output()?;
        if !out.status.success() {
            return Err(format!("{store}: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        all.push(serde_json::from_slice::<Figures>(&out.stdout)?);
    }
    println!(
        "{} orders, {} users, batches of {}, {} MiB cache each",
        args.orders, args.users, args.batch, args.cache_mib
    );
    println!(
        "{:<9}{:>10}{:>12}{:>14}{:>13}{:>11}{:>10}{:>10}{:>11}",
        "store",
        "items",
        "items/s",
        "first→last",
        "bytes/item",
        "store MiB",
        "RSS MiB",
        "reads",
        "read p99"
    );
    for f in &all {
        println!(
            "{:<9}{:>10}{:>12.0}{:>14}{:>13.0}{:>11.0}{:>10.0}{:>10}{:>9.2}ms",
            f.store,
            f.items,
            f.items as f64 / f.commit_seconds,
            format!(
                "{:.0}k→{:.0}k",
                f.first_tenth / 1000.0,
                f.last_tenth / 1000.0
            ),
            f.bytes_written_per_item,
            f.store_mib,
            f.peak_rss_mib,
            f.reads,
            f.read_p99_ms
        );
    }
    Ok(())
}
