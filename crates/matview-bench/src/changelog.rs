//! The benchmark's workload for table envelopes: a changelog of orders
//! keyed by order id, where 20 % of the messages update a live order (new
//! items, possibly another user), 5 % delete one (a tombstone, or Debezium's
//! `d` and its tombstone) and the rest insert new orders.

use serde_json::{Value, json};

use crate::workload::OrderGenerator;
use matview_crd::Envelope;

/// Percent of messages that update a live order, and that delete one.
const UPDATE_PERCENT: u64 = 20;
const DELETE_PERCENT: u64 = 5;

/// One message to produce: key and value (`None`: a tombstone).
pub struct Message {
    pub key: String,
    pub value: Option<String>,
}

/// Makes the messages of a changelog, one logical change at a time.
pub struct Changelog {
    envelope: Envelope,
    orders: OrderGenerator,
    /// Order ids that are live (inserted and not deleted).
    live: Vec<String>,
    dice: u64,
    sequence: u64,
}

impl Changelog {
    pub fn new(envelope: Envelope, seed: u64, users: u64) -> Changelog {
        Changelog {
            envelope,
            orders: OrderGenerator::new(seed, users),
            live: Vec::new(),
            dice: seed | 1,
            sequence: 0,
        }
    }

    fn roll(&mut self, below: u64) -> u64 {
        self.dice ^= self.dice << 13;
        self.dice ^= self.dice >> 7;
        self.dice ^= self.dice << 17;
        self.dice % below
    }

    /// The next change's messages (two for a Debezium delete), and the
    /// order it wrote (none for a delete).
    pub fn next_change(&mut self) -> (Vec<Message>, Option<Value>) {
        self.sequence += 1;
        let roll = self.roll(100);
        if self.envelope == Envelope::Append
            || self.live.is_empty()
            || roll >= UPDATE_PERCENT + DELETE_PERCENT
        {
            let order = self.orders.next_order();
            let id = order["orderId"].as_str().unwrap_or_default().to_string();
            self.live.push(id.clone());
            return (vec![self.message(id, "c", Some(&order))], Some(order));
        }
        let at = self.roll(self.live.len() as u64) as usize;
        if roll < DELETE_PERCENT {
            let id = self.live.swap_remove(at);
            let mut out = vec![self.message(id.clone(), "d", None)];
            if self.envelope == Envelope::Debezium {
                out.push(Message {
                    key: id,
                    value: None,
                });
            }
            return (out, None);
        }
        let id = self.live[at].clone();
        let mut order = self.orders.next_order();
        order["orderId"] = json!(id);
        (vec![self.message(id, "u", Some(&order))], Some(order))
    }

    fn message(&self, key: String, op: &str, order: Option<&Value>) -> Message {
        let value = match self.envelope {
            Envelope::Append | Envelope::Upsert => order.map(Value::to_string),
            Envelope::Debezium => Some(
                json!({
                    "before": null,
                    "after": order,
                    "source": {"connector": "postgresql", "db": "shop", "schema": "public",
                               "table": "orders", "lsn": self.sequence},
                    "op": op,
                    "ts_ms": 1_700_000_000_000u64 + self.sequence,
                })
                .to_string(),
            ),
        };
        Message { key, value }
    }
}
