//! A projector whose data directory fills up: it holds its position (no
//! batch is half written), keeps serving reads, says why in `/readyz`,
//! `/v1/stats` and metrics, and continues by itself once there is space,
//! ending with the exact view. The data directory is a small tmpfs mounted
//! by the test (which therefore runs as root, as the test environment does).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use matview::workload::OrderGenerator;
use serde_json::Value;

use crate::support::projector::{Projector, metric, produce_orders, reference, shop_view_yaml};
use crate::support::{TestEnv, kafka, unique_name};

/// A tmpfs mounted for the test; unmounted when dropped (even on panic).
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(dir).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("cannot run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs and needs root (CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk {
            dir: dir.to_path_buf(),
        }
    }

    fn grow(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .output()
            .expect("cannot run mount");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: the projector may still hold the store open.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

async fn applied(projector: &Projector) -> i64 {
    let (_, positions) = projector.get("/v1/positions").await.expect("positions");
    positions["partitions"]
        .as_array()
        .map(|ps| ps.iter().map(|p| p["applied"].as_i64().unwrap_or(0)).sum())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_full_disk_holds_the_position_keeps_reads_and_resumes_when_freed() {
    let env = TestEnv::with_kafka();
    let topic = kafka::create_topic(env, "orders", 2).await;
    let dead_letter = kafka::create_topic(env, "orders-dlq", 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let view_file = dir.path().join("view.yaml");
    let yaml = shop_view_yaml(env, &unique_name("diskfull"), &topic, &dead_letter, 1);
    std::fs::write(&view_file, yaml).expect("write view");
    let data = dir.path().join("data");
    // 24 MiB, of which the projector may use what leaves 16 MiB free.
    let disk = SmallDisk::mount(&data, "24m");
    let mut generator = OrderGenerator::new(81, 200);
    let orders: Vec<Value> = (0..20_000).map(|_| generator.next_order()).collect();
    let (first, rest) = orders.split_at(1_000);
    produce_orders(env, &topic, first).await;
    let mut projector =
        Projector::start_with(&view_file, 0, &data, dir.path(), &["--min-free-mib", "16"]);
    // Ready first; then the disk fills with what follows.
    projector
        .wait_readyz("caught up", Duration::from_secs(120), |body| {
            body.get("store").is_none()
        })
        .await;
    produce_orders(env, &topic, rest).await;

    projector
        .wait_readyz("the full disk", Duration::from_secs(120), |body| {
            body["store"]["writable"] == false && body["store"]["error"].is_string()
        })
        .await;
    let (_, stats) = projector.get("/v1/stats").await.expect("stats");
    assert!(stats["storeError"].is_string(), "{stats}");
    assert_eq!(
        metric(&projector.metrics().await, "matview_store_writable"),
        0.0
    );
    // Holding: the applied position stays put, and what is applied is served.
    let held = applied(&projector).await;
    assert!(held < orders.len() as i64, "the disk filled before the end");
    let user = orders[0]["userId"].as_str().expect("user").to_string();
    let (status, _) = projector
        .get(&format!("/v1/rows/{user}"))
        .await
        .expect("reachable");
    assert_eq!(status, 200);
    let since = Instant::now();
    while since.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            applied(&projector).await,
            held,
            "no batch written while held"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    disk.grow("256m");
    projector
        .wait_applied(orders.len() as i64, Duration::from_secs(120))
        .await;
    projector
        .wait_readyz(
            "the disk writable again",
            Duration::from_secs(120),
            |body| body.get("store").is_none(),
        )
        .await;
    assert_eq!(
        metric(&projector.metrics().await, "matview_store_writable"),
        1.0
    );
    let expected = reference(&orders);
    assert_eq!(projector.rows(expected.keys()).await, expected);
    assert!(projector.is_running(), "no restart:\n{}", projector.logs());
    println!("disk full: held at {held} of {} events", orders.len());
}
