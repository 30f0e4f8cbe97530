//! The one reference generator of orders for the tests: seeded shop orders
//! (the same generator `matview dev` and the benchmarks use), named by field
//! so a call cannot swap the number of users and the number of orders.

use serde_json::Value;

/// Which orders: `count` orders by `users` users, from `seed`.
#[derive(Debug, Clone, Copy)]
pub struct Orders {
    pub seed: u64,
    pub users: u64,
    pub count: usize,
}

/// The orders, as JSON events.
pub fn orders(which: Orders) -> Vec<Value> {
    let mut generator = matview::workload::OrderGenerator::new(which.seed, which.users);
    (0..which.count).map(|_| generator.next_order()).collect()
}

/// The orders as Kafka records keyed by order id (the topic is then not
/// keyed by the row key).
pub fn order_events(orders: &[Value]) -> Vec<(String, Vec<u8>)> {
    orders
        .iter()
        .map(|o| {
            (
                o["orderId"].as_str().unwrap_or_default().to_string(),
                o.to_string().into_bytes(),
            )
        })
        .collect()
}
