//! The demo source: data for the first view at a steady rate, so the view
//! (and the page) moves by itself — seeded shop orders for an `append`
//! view (in JSON, or Avro or Protobuf framed under a schema registered as a
//! producer's serializer would), and for a table (`upsert`, `debezium`) a
//! changelog shaped like the shipped example of that envelope, with
//! updates and deletes.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::demo_tables::TableDemo;
use crate::bench::encoded_orders::{BenchFormat, OrderEncoder};
use crate::crd::{Envelope, EventFormat};
use crate::workload::OrderGenerator;

/// Where and how the demo writes: the first view's source.
pub struct DemoSource {
    pub topic: String,
    pub envelope: Envelope,
    pub format: EventFormat,
    /// The registry of an Avro or Protobuf view.
    pub registry: Option<String>,
}

pub struct DemoOrders {
    producer: Option<FutureProducer>,
    source: DemoSource,
    rate: u64,
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
    pub fn new(servers: &str, source: DemoSource, rate: u64) -> DemoOrders {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", servers)
            .set("linger.ms", "5")
            .create()
            .map_err(|e| warn!(error = %e, "demo orders are off: cannot create a producer"))
            .ok();
        DemoOrders {
            producer,
            source,
            rate,
        }
    }

    /// The encoder of an Avro or Protobuf source, its schema registered
    /// under `<topic>-value` (retried until the registry answers: the
    /// built-in one starts with the gateway). `Ok(None)`: JSON.
    async fn encoder(&self, cancel: &CancellationToken) -> Result<Option<OrderEncoder>, String> {
        let format = match (self.source.format, self.source.envelope) {
            (EventFormat::Json, _) => return Ok(None),
            (_, Envelope::Upsert | Envelope::Debezium) => {
                return Err("the demo writes tables in JSON only".into());
            }
            (EventFormat::Avro, Envelope::Append) => BenchFormat::Avro,
            (EventFormat::Protobuf, Envelope::Append) => BenchFormat::Protobuf,
        };
        let registry = self
            .source
            .registry
            .as_deref()
            .ok_or("no schema registry")?;
        let subject = format!("{}-value", self.source.topic);
        loop {
            match OrderEncoder::register(format, registry, &subject).await {
                Ok(encoder) => return Ok(Some(encoder)),
                Err(e) => warn!(error = %e, "demo orders wait for the schema registry"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return Err("stopped".into()),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    pub async fn run(self, cancel: CancellationToken) {
        let Some(producer) = &self.producer else {
            return;
        };
        let encoder = match self.encoder(&cancel).await {
            Ok(encoder) => encoder,
            Err(why) => {
                warn!(why, "demo orders are off");
                return;
            }
        };
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut generator = OrderGenerator::new(run, 50);
        let mut table = TableDemo::new(self.source.envelope, run);
        let mut every = tokio::time::interval(Duration::from_micros(1_000_000 / self.rate.max(1)));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = every.tick() => {}
            }
            let messages: Vec<(String, Option<Vec<u8>>)> = match self.source.envelope {
                Envelope::Append => {
                    let order = relabel(generator.next_order(), run);
                    let key = order["orderId"].as_str().unwrap_or_default().to_string();
                    let value = match &encoder {
                        None => order.to_string().into_bytes(),
                        Some(encoder) => match encoder.encode(&order) {
                            Ok(framed) => framed,
                            Err(e) => {
                                warn!(error = %e, "demo order not encoded");
                                continue;
                            }
                        },
                    };
                    vec![(key, Some(value))]
                }
                Envelope::Upsert | Envelope::Debezium => table
                    .next_messages()
                    .into_iter()
                    .map(|(key, value)| (key, value.map(String::into_bytes)))
                    .collect(),
            };
            for (key, value) in messages {
                let mut record = FutureRecord::<String, Vec<u8>>::to(&self.source.topic).key(&key);
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
