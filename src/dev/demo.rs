//! The demo source: data for the first view at a steady rate, so the view
//! (and the page) moves by itself — seeded shop orders for an `append`
//! view, and for a table (`upsert`, `debezium`) a changelog shaped like the
//! shipped example of that envelope, with updates and deletes.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::demo_tables::TableDemo;
use crate::crd::Envelope;
use crate::workload::OrderGenerator;

pub struct DemoOrders {
    producer: Option<FutureProducer>,
    topic: String,
    rate: u64,
    envelope: Envelope,
}

/// Ids unique to this run, so a restarted demo adds orders instead of
/// replacing the earlier ones.
fn relabel(mut order: Value, run: u64) -> Value {
    let id = format!("{run:x}-{}", order["orderId"].as_str().unwrap_or_default());
    if let Some(items) = order["items"].as_array_mut() {
        for item in items {
            let item_id = format!("{run:x}-{}", item["itemId"].as_str().unwrap_or_default());
            item["itemId"] = Value::String(item_id);
        }
    }
    order["orderId"] = Value::String(id);
    order
}

impl DemoOrders {
    pub fn new(servers: &str, topic: &str, rate: u64, envelope: Envelope) -> DemoOrders {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", servers)
            .set("linger.ms", "5")
            .create()
            .map_err(|e| warn!(error = %e, "demo orders are off: cannot create a producer"))
            .ok();
        DemoOrders {
            producer,
            topic: topic.into(),
            rate,
            envelope,
        }
    }

    pub async fn run(self, cancel: CancellationToken) {
        let Some(producer) = self.producer else {
            return;
        };
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut generator = OrderGenerator::new(run, 50);
        let mut table = TableDemo::new(self.envelope, run);
        let mut every = tokio::time::interval(Duration::from_micros(1_000_000 / self.rate.max(1)));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = every.tick() => {}
            }
            let messages = match self.envelope {
                Envelope::Append => {
                    let order = relabel(generator.next_order(), run);
                    let key = order["orderId"].as_str().unwrap_or_default().to_string();
                    vec![(key, Some(order.to_string()))]
                }
                Envelope::Upsert | Envelope::Debezium => table.next_messages(),
            };
            for (key, value) in messages {
                let mut record = FutureRecord::<String, String>::to(&self.topic).key(&key);
                if let Some(value) = &value {
                    record = record.payload(value);
                }
                if let Err((e, _)) = producer.send(record, Duration::from_secs(5)).await {
                    warn!(error = %e, "demo message not sent");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_ids_are_unique_per_run() {
        let order = OrderGenerator::new(1, 5).next_order();
        let a = relabel(order.clone(), 10);
        let b = relabel(order, 11);
        assert_ne!(a["orderId"], b["orderId"]);
        assert_ne!(a["items"][0]["itemId"], b["items"][0]["itemId"]);
    }
}
