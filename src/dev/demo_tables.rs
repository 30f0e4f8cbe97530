//! The demo changelog of a table, shaped like the shipped examples: for
//! `upsert`, customers keyed by id (examples/customers-by-tier.yaml); for
//! `debezium`, Debezium events of table public.orders
//! (examples/orders-from-postgres.yaml). About a fifth of the messages
//! update a known entity and one in twenty deletes one.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::crd::Envelope;

const COUNTRIES: [&str; 4] = ["DE", "FR", "US", "JP"];
const NAMES: [&str; 6] = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken"];

/// Key and value (`None`: a tombstone) of one message.
pub type Message = (String, Option<String>);

pub struct TableDemo {
    envelope: Envelope,
    run: u64,
    dice: u64,
    next_id: u64,
    /// Live entities by key, with their current row.
    live: BTreeMap<String, Value>,
}

impl TableDemo {
    pub fn new(envelope: Envelope, run: u64) -> TableDemo {
        TableDemo {
            envelope,
            run,
            dice: run | 1,
            next_id: 0,
            live: BTreeMap::new(),
        }
    }

    fn roll(&mut self, below: u64) -> u64 {
        self.dice ^= self.dice << 13;
        self.dice ^= self.dice >> 7;
        self.dice ^= self.dice << 17;
        self.dice % below
    }

    /// An amount as text with two decimals (Debezium's string decimals).
    fn amount(&mut self) -> String {
        let cents = match self.roll(3) {
            0 => self.roll(500),
            1 => 500 + self.roll(4500),
            _ => 5000 + self.roll(200_000),
        };
        format!("{}.{:02}", cents / 100, cents % 100)
    }

    /// A new entity's row (customer or order).
    fn new_row(&mut self, key: &str) -> Value {
        match self.envelope {
            Envelope::Debezium => json!({
                "id": key,
                "customer_id": format!("c-{}", self.roll(20)),
                "status": "placed",
                "total": self.amount(),
            }),
            _ => json!({
                "customerId": key,
                "name": NAMES[self.roll(NAMES.len() as u64) as usize],
                "country": COUNTRIES[self.roll(COUNTRIES.len() as u64) as usize],
                "lifetimeValue": self.amount(),
            }),
        }
    }

    /// The same entity changed: a new amount, or (one in three) it moves.
    fn changed(&mut self, mut row: Value) -> Value {
        let moves = self.roll(3) == 0;
        match self.envelope {
            Envelope::Debezium if moves => row["status"] = json!("shipped"),
            Envelope::Debezium => row["total"] = json!(self.amount()),
            _ if moves => {
                row["country"] = json!(COUNTRIES[self.roll(COUNTRIES.len() as u64) as usize])
            }
            _ => row["lifetimeValue"] = json!(self.amount()),
        }
        row
    }

    /// The next change's messages (a Debezium delete is two).
    pub fn next_messages(&mut self) -> Vec<Message> {
        let roll = self.roll(100);
        let at = self.roll(self.live.len().max(1) as u64) as usize;
        let known = self.live.keys().nth(at).cloned();
        match known {
            Some(key) if roll < 5 => {
                let before = self.live.remove(&key);
                self.render(key, before, None)
            }
            Some(key) if roll < 25 => {
                let before = self.live.get(&key).cloned();
                let after = before.clone().map(|b| self.changed(b));
                if let Some(after) = &after {
                    self.live.insert(key.clone(), after.clone());
                }
                self.render(key, before, after)
            }
            _ => {
                self.next_id += 1;
                let prefix = if self.envelope == Envelope::Debezium {
                    "o"
                } else {
                    "c"
                };
                let key = format!("{prefix}-{:x}-{}", self.run, self.next_id);
                let row = self.new_row(&key);
                self.live.insert(key.clone(), row.clone());
                self.render(key, None, Some(row))
            }
        }
    }

    fn render(&self, key: String, before: Option<Value>, after: Option<Value>) -> Vec<Message> {
        if self.envelope != Envelope::Debezium {
            return vec![(key, after.map(|a| a.to_string()))];
        }
        let op = match (&before, &after) {
            (None, _) => "c",
            (Some(_), Some(_)) => "u",
            (Some(_), None) => "d",
        };
        let event = json!({
            "before": before, "after": after, "op": op,
            "source": {"connector": "postgresql", "name": "shop", "db": "shop",
                       "schema": "public", "table": "orders"},
            "ts_ms": self.next_id,
        });
        let message_key = json!({"id": key}).to_string();
        let mut out = vec![(message_key.clone(), Some(event.to_string()))];
        if op == "d" {
            out.push((message_key, None));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{MessageChange, Position, compile};

    fn example(name: &str) -> crate::engine::CompiledView {
        let path = format!("{}/examples/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(path).expect("example");
        let view: crate::crd::MaterializedView = serde_yaml_ng::from_str(&text).expect("parses");
        compile(&view.spec).expect("compiles")
    }

    /// Every demo message applies to the example of its envelope (none is a
    /// dead letter), and the demo both updates and deletes.
    #[test]
    fn the_demo_changelogs_fit_their_examples() {
        for (envelope, name) in [
            (Envelope::Upsert, "customers-by-tier"),
            (Envelope::Debezium, "orders-from-postgres"),
        ] {
            let view = example(name);
            let mut demo = TableDemo::new(envelope, 7);
            let (mut replaced, mut deleted) = (0, 0);
            for offset in 0..2000 {
                for (key, value) in demo.next_messages() {
                    let at = Position {
                        partition: 0,
                        offset,
                    };
                    let change = view
                        .shape_message(
                            Some(key.as_bytes()),
                            value.as_deref().map(str::as_bytes),
                            at,
                        )
                        .unwrap_or_else(|e| panic!("{name}: {e} for {value:?}"));
                    match change {
                        MessageChange::Replace { records, .. } if records.is_empty() => {
                            deleted += 1
                        }
                        MessageChange::Replace { .. } => replaced += 1,
                        _ => {}
                    }
                }
            }
            assert!(
                deleted > 50 && replaced > 1500,
                "{name}: {deleted} deletes, {replaced} states"
            );
        }
    }
}
