//! A seeded changelog of orders keyed by order id, as a table's topic
//! carries it: inserts, updates that move items between groups, drop items
//! or move the order to another user, deletes, re-inserts after a delete and
//! re-deliveries. Rendered as upsert messages or as Debezium change events
//! (shapes from Debezium's documentation), and folded into the expected view
//! without the engine: the last state of each key, nothing else.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::projector::{Reference, reference};

/// An order's state: its user and its items' prices in cents.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderState {
    pub user: String,
    pub prices: Vec<i64>,
}

/// One message of the changelog: the key, and the new state (`None`: deleted).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub key: String,
    pub state: Option<OrderState>,
    /// The state before (for Debezium's `before` and its ops).
    pub before: Option<OrderState>,
    /// A copy of the message before it (a producer retry).
    pub redelivery: bool,
}

/// A small deterministic generator (xorshift), independent of the code under test.
struct Dice(u64);

impl Dice {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }

    /// A price in cents, from each of the three groups about equally.
    fn price(&mut self) -> i64 {
        match self.next(3) {
            0 => 1 + self.next(499) as i64,
            1 => 500 + self.next(4501) as i64,
            _ => 5001 + self.next(20000) as i64,
        }
    }
}

/// `count` changes over `keys` orders and `users` users.
pub fn changelog(seed: u64, keys: u64, users: u64, count: usize) -> Vec<Change> {
    let mut dice = Dice(seed | 1);
    let mut states: BTreeMap<String, OrderState> = BTreeMap::new();
    let mut out: Vec<Change> = Vec::with_capacity(count);
    while out.len() < count {
        if let Some(last) = out.last().filter(|_| dice.next(20) == 0) {
            out.push(Change {
                redelivery: true,
                ..last.clone()
            });
            continue;
        }
        let key = format!("o-{}", dice.next(keys));
        let before = states.get(&key).cloned();
        let state = match &before {
            // Insert, or re-insert after a delete.
            None => Some(OrderState {
                user: format!("u-{}", dice.next(users)),
                prices: (0..1 + dice.next(3)).map(|_| dice.price()).collect(),
            }),
            Some(_) if dice.next(6) == 0 => None,
            Some(old) => {
                let mut new = old.clone();
                match dice.next(4) {
                    // An item changes price: it may move group.
                    0 if !new.prices.is_empty() => {
                        let i = dice.next(new.prices.len() as u64) as usize;
                        new.prices[i] = dice.price();
                    }
                    // An item is dropped (possibly the last one).
                    1 => {
                        new.prices.pop();
                    }
                    // The order moves to another user: its items move row.
                    2 => new.user = format!("u-{}", dice.next(users)),
                    _ => new.prices.push(dice.price()),
                }
                Some(new)
            }
        };
        match &state {
            Some(s) => states.insert(key.clone(), s.clone()),
            None => states.remove(&key),
        };
        out.push(Change {
            key,
            state,
            before,
            redelivery: false,
        });
    }
    out
}

/// An order document of `key` in `state` (item `j` is `<key>-<j>`).
pub fn order(key: &str, state: &OrderState) -> Value {
    let items: Vec<Value> = state
        .prices
        .iter()
        .enumerate()
        .map(|(j, cents)| {
            json!({"itemId": format!("{key}-{j}"), "name": "thing",
                   "price": format!("{}.{:02}", cents / 100, cents % 100).parse::<f64>().expect("a price")})
        })
        .collect();
    json!({"orderId": key, "userId": state.user, "items": items})
}

/// The expected view: each key's last state as an order, folded by group.
pub fn expected(changes: &[Change]) -> Reference {
    let mut last: BTreeMap<&str, Option<&OrderState>> = BTreeMap::new();
    for change in changes {
        last.insert(&change.key, change.state.as_ref());
    }
    let orders: Vec<Value> = last
        .iter()
        .filter_map(|(key, state)| state.map(|s| order(key, s)))
        .collect();
    reference(&orders)
}

/// Every user the changelog ever named (rows that may exist, or must not).
pub fn users(changes: &[Change]) -> Vec<String> {
    let mut all: Vec<String> = changes
        .iter()
        .flat_map(|c| [&c.state, &c.before])
        .flatten()
        .map(|s| s.user.clone())
        .collect();
    all.sort();
    all.dedup();
    all
}

/// Upsert messages: key, and the order (`None`: a tombstone).
pub fn upsert_messages(changes: &[Change]) -> Vec<(String, Option<Vec<u8>>)> {
    changes
        .iter()
        .map(|c| {
            let value = c
                .state
                .as_ref()
                .map(|s| order(&c.key, s).to_string().into_bytes());
            (c.key.clone(), value)
        })
        .collect()
}

/// A table row image of an order, as Debezium writes PostgreSQL's columns
/// (`decimal.handling.mode=string`): one row per order, its total as text.
/// The view reads the order as one record of price `total`.
fn row_image(key: &str, state: &OrderState) -> Value {
    let cents: i64 = state.prices.iter().sum();
    json!({"id": key, "customer_id": state.user, "status": "placed",
           "total": format!("{}.{:02}", cents / 100, cents % 100)})
}

/// The expected view of the Debezium renderer (each order one record).
pub fn expected_rows(changes: &[Change]) -> Reference {
    let single: Vec<Change> = changes
        .iter()
        .map(|c| {
            let one = |s: &OrderState| OrderState {
                user: s.user.clone(),
                prices: vec![s.prices.iter().sum()],
            };
            Change {
                key: c.key.clone(),
                state: c.state.as_ref().map(one),
                before: c.before.as_ref().map(one),
                redelivery: c.redelivery,
            }
        })
        .collect();
    expected(&single)
}

/// Debezium messages: the key (`{"id": …}`) and the change event; a delete
/// is followed by its tombstone. With `schemas`, both are wrapped in the
/// JSON converter's `schema`/`payload` envelope.
pub fn debezium_messages(changes: &[Change], schemas: bool) -> Vec<(String, Option<Vec<u8>>)> {
    let wrap = |payload: Value, name: &str| {
        if schemas {
            json!({"schema": {"type": "struct", "optional": false, "name": name,
                              "fields": [{"type": "string", "optional": false, "field": "id"}]},
                   "payload": payload})
        } else {
            payload
        }
    };
    let mut out = Vec::new();
    for (n, c) in changes.iter().enumerate() {
        let key = wrap(json!({"id": c.key}), "shop.public.orders.Key").to_string();
        let op = match (&c.before, &c.state) {
            (None, Some(_)) if n < changes.len() / 10 => "r",
            (None, Some(_)) => "c",
            (Some(_), Some(_)) => "u",
            (_, None) => "d",
        };
        let image =
            |s: &Option<OrderState>| s.as_ref().map_or(Value::Null, |s| row_image(&c.key, s));
        let event = json!({
            "before": image(&c.before),
            "after": image(&c.state),
            "source": {"version": "2.7.0.Final", "connector": "postgresql", "name": "shop",
                       "ts_ms": 1_700_000_000_000i64 + n as i64, "snapshot": op == "r",
                       "db": "shop", "schema": "public", "table": "orders",
                       "txId": 700 + n, "lsn": 33_000_000 + n},
            "op": op,
            "ts_ms": 1_700_000_000_100i64 + n as i64,
            "transaction": null
        });
        let value = wrap(event, "shop.public.orders.Envelope").to_string();
        out.push((key.clone(), Some(value.into_bytes())));
        if op == "d" && !c.redelivery {
            out.push((key, None));
        }
    }
    out
}
