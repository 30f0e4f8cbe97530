//! `matview bench big-row`: one user with many records (100,000 by
//! default) among ordinary traffic. Once the projector holds that row, other
//! users' orders are produced as fast as the broker takes them while the big
//! row is read in a loop; the report gives the read latency percentiles and
//! the projector's rate meanwhile. `--projector-bin` runs another build's
//! projector under the same harness, to compare stores.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::Producer;
use serde_json::Value;

use super::{
    BenchError, bulk_producer, create_topics, delete_topics, io_err, kafka_err, send_order,
    view_yaml_listing,
};
use crate::workload::OrderGenerator;
use matview_api::ProjectorClient;
use matview_api::projector::ReadQuery;

const HOT_USER: &str = "u-hot";

#[derive(Debug, Clone, clap::Args)]
pub struct BigRowConfig {
    /// Kafka bootstrap servers.
    #[arg(long, env = "MATVIEW_KAFKA_BOOTSTRAP")]
    pub bootstrap_servers: String,
    /// Records (ordered items) of the big row.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub records: u64,
    /// Orders of other users produced while the big row is read.
    #[arg(long, default_value_t = 400_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=1_000_000_000))]
    pub background: usize,
    /// Distinct other users.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub users: u64,
    /// Items the view serves per group (aggregate.items.limit).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub items_limit: u32,
    /// Directory for the view file and the projector's store.
    #[arg(long, default_value = "target/bench")]
    pub work_dir: PathBuf,
    /// The matview binary that runs the projector (default: this one).
    #[arg(long, value_name = "FILE")]
    pub projector_bin: Option<PathBuf>,
}

/// Pure: the `q` quantile (0..=1) of sorted values.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

pub fn run(config: BigRowConfig) -> Result<String, BenchError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(io_err)?;
    let topic = format!("bench-big-row-{}", std::process::id());
    let dead_letters = format!("{topic}.dlq");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &config.bootstrap_servers)
        .create()
        .map_err(kafka_err)?;
    runtime.block_on(create_topics(&admin, &[(&topic, 4), (&dead_letters, 1)]))?;
    let result = runtime.block_on(measure(&config, &topic));
    runtime.block_on(delete_topics(&admin, &[&topic, &dead_letters]));
    result
}

/// Produces orders of the big row's user until it has `records` items;
/// returns how many orders that took.
fn produce_big_row(config: &BigRowConfig, topic: &str) -> Result<i64, BenchError> {
    let producer = bulk_producer(&config.bootstrap_servers)?;
    let mut generator = OrderGenerator::new(7, config.users);
    let (mut orders, mut items) = (0i64, 0u64);
    eprintln!("producing {} records of {HOT_USER}…", config.records);
    while items < config.records {
        let mut order = generator.next_order();
        order["userId"] = Value::from(HOT_USER);
        items += order["items"].as_array().map_or(0, |a| a.len() as u64);
        send_order(&producer, topic, &order)?;
        orders += 1;
    }
    producer
        .flush(Duration::from_secs(120))
        .map_err(kafka_err)?;
    Ok(orders)
}

/// Produces `background` other users' orders on a thread of its own;
/// the thread returns their items.
fn produce_background(
    config: &BigRowConfig,
    topic: &str,
) -> std::thread::JoinHandle<Result<u64, BenchError>> {
    let (servers, topic, users, background) = (
        config.bootstrap_servers.clone(),
        topic.to_string(),
        config.users,
        config.background,
    );
    std::thread::spawn(move || {
        let producer = bulk_producer(&servers)?;
        let mut generator = OrderGenerator::new(8, users);
        let mut items = 0u64;
        for _ in 0..background {
            let order = generator.next_order();
            items += order["items"].as_array().map_or(0, |a| a.len() as u64);
            send_order(&producer, &topic, &order)?;
        }
        producer
            .flush(Duration::from_secs(300))
            .map_err(kafka_err)?;
        Ok(items)
    })
}

async fn measure(config: &BigRowConfig, topic: &str) -> Result<String, BenchError> {
    let hot_orders = produce_big_row(config, topic)?;
    std::fs::create_dir_all(&config.work_dir).map_err(io_err)?;
    let view = config.work_dir.join("big-row-view.yaml");
    let yaml = view_yaml_listing(&config.bootstrap_servers, topic, 1, config.items_limit);
    std::fs::write(&view, yaml).map_err(io_err)?;
    let data = config
        .work_dir
        .join(format!("big-row-data-{}", std::process::id()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(io_err)?
        .port();
    let bin = match &config.projector_bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe().map_err(io_err)?,
    };
    let mut child = super::spawn_projector_of(&bin, &view, 0, &data, port)?;
    let base = format!("http://127.0.0.1:{port}");
    let client = ProjectorClient::new(Duration::from_secs(30));
    let applied = || async {
        client
            .positions(&base)
            .await
            .map(|p| p.partitions.iter().map(|p| p.applied).sum::<i64>())
            .unwrap_or(0)
    };
    eprintln!("projecting the big row…");
    while applied().await < hot_orders {
        if let Some(status) = child.try_wait().map_err(io_err)? {
            return Err(BenchError::Projector(format!("exited early with {status}")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    eprintln!(
        "reading it while {} other orders are produced and projected…",
        config.background
    );
    let background = config.background;
    let writer = produce_background(config, topic);
    let started = Instant::now();
    let total = hot_orders + background as i64;
    let mut latencies = Vec::new();
    let served_records = loop {
        let asked = Instant::now();
        let answer = client
            .row(&base, HOT_USER, &ReadQuery::default())
            .await
            .map_err(|e| BenchError::Projector(e.to_string()))?;
        latencies.push(asked.elapsed().as_secs_f64() * 1000.0);
        if applied().await >= total {
            break answer.body.map_or(0u64, |row| {
                row.groups.values().map(|g| g.count.unwrap_or(0)).sum()
            });
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    let background_items = writer
        .join()
        .map_err(|_| BenchError::Projector("the producer thread panicked".into()))??;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&data);
    latencies.sort_by(f64::total_cmp);
    Ok(format!(
        "big row           {served_records} records ({HOT_USER}), at most {} items per group served\n\
         reads             {} while {background} orders ({background_items} items) were projected in {elapsed:.1} s ({:.0} items/s)\n\
         read latency      p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
        config.items_limit,
        latencies.len(),
        background_items as f64 / elapsed,
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0.0),
    ))
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_of_sorted_values() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.5), 51.0);
        assert_eq!(quantile(&values, 0.99), 99.0);
        assert_eq!(quantile(&values, 1.0), 100.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
