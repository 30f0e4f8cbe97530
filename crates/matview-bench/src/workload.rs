//! A seeded generator of realistic shop orders (1–10 items each), for
//! benchmarks and load tests. Same seed, same orders.

use serde_json::{Value, json};

const PRODUCTS: [(&str, u32); 12] = [
    ("pencil", 120),
    ("notebook", 450),
    ("mug", 899),
    ("t-shirt", 1999),
    ("headphones", 4999),
    ("backpack", 5000),
    ("keyboard", 7450),
    ("monitor", 18900),
    ("chair", 24900),
    ("sticker", 99),
    ("lamp", 3250),
    ("book", 1450),
];
const COUNTRIES: [&str; 8] = ["DE", "AT", "CH", "FR", "IT", "US", "GB", "NL"];

/// xorshift64*: small, fast, deterministic; statistical quality is not the point.
#[derive(Debug, Clone)]
pub struct OrderGenerator {
    state: u64,
    next_order: u64,
    first_user: u64,
    users: u64,
}

impl OrderGenerator {
    pub fn new(seed: u64, users: u64) -> OrderGenerator {
        OrderGenerator::continuing(seed, 0, users, 0)
    }

    /// Orders numbered from `first_order`, of the users `u{first_user}` to
    /// `u{first_user + users - 1}`: more of a topic without repeating ids.
    pub fn continuing(seed: u64, first_user: u64, users: u64, first_order: u64) -> OrderGenerator {
        OrderGenerator {
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            next_order: first_order,
            first_user,
            users: users.max(1),
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// The next order as a JSON value.
    pub fn next_order(&mut self) -> Value {
        let order = self.next_order;
        self.next_order += 1;
        let user = self.first_user + self.below(self.users);
        let items: Vec<Value> = (0..1 + self.below(10))
            .map(|i| {
                let (name, cents) = PRODUCTS[self.below(PRODUCTS.len() as u64) as usize];
                json!({
                    "itemId": format!("o{order}-{i}"),
                    "name": name,
                    "price": f64::from(cents) / 100.0,
                    "quantity": 1 + self.below(3),
                })
            })
            .collect();
        json!({
            "orderId": format!("o{order}"),
            "userId": format!("u{user}"),
            "country": COUNTRIES[self.below(COUNTRIES.len() as u64) as usize],
            "placedAt": 1_767_225_600_000u64 + order * 1000,
            "items": items,
        })
    }

    /// The next order as the bytes a producer would send.
    pub fn next_event(&mut self) -> Vec<u8> {
        self.next_order().to_string().into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_orders_and_sizes_in_range() {
        let a: Vec<_> = {
            let mut g = OrderGenerator::new(7, 100);
            (0..50).map(|_| g.next_event()).collect()
        };
        let mut g = OrderGenerator::new(7, 100);
        for event in &a {
            assert_eq!(&g.next_event(), event);
        }
        for event in &a {
            let v: Value = serde_json::from_slice(event).expect("JSON");
            let n = v["items"].as_array().expect("items").len();
            assert!((1..=10).contains(&n), "{n} items");
        }
        assert_ne!(OrderGenerator::new(8, 100).next_event(), a[0]);
    }

    #[test]
    fn a_continuation_has_new_users_and_new_order_ids() {
        let mut more = OrderGenerator::continuing(7, 1000, 10, 500);
        for n in 0..100 {
            let order = more.next_order();
            assert_eq!(order["orderId"], format!("o{}", 500 + n));
            let user: u64 = order["userId"]
                .as_str()
                .and_then(|u| u[1..].parse().ok())
                .expect("user");
            assert!((1000..1010).contains(&user), "{user}");
        }
    }
}
