//! Kafka's rules for what a view names in Kafka: topic names (and the
//! dead-letter topic beside the source) and bootstrap addresses. Checked at
//! compile time so a view Kafka would refuse never gets a workload.

/// Kafka's limit on topic name length.
pub const MAX_TOPIC_NAME: usize = 249;

/// What is wrong with a topic name by Kafka's rules, if anything.
pub fn topic_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a topic name cannot be empty".into());
    }
    if name == "." || name == ".." {
        return Some(format!("{name:?} is not a topic name Kafka accepts"));
    }
    if name.len() > MAX_TOPIC_NAME {
        return Some(format!(
            "is {} characters; Kafka allows at most {MAX_TOPIC_NAME}",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "contains {bad:?}; Kafka topic names use only a-z A-Z 0-9 . _ -"
        ));
    }
    None
}

/// Kafka treats `.` and `_` alike when it compares topic names (their
/// metric names would collide), and refuses the second one.
pub fn topics_collide(a: &str, b: &str) -> bool {
    a.replace('.', "_") == b.replace('.', "_")
}

/// What is wrong with a comma-separated `host:port` list, if anything.
pub fn bootstrap_problem(servers: &str) -> Option<String> {
    for entry in servers.split(',') {
        let entry = entry.trim();
        let Some((host, port)) = entry.rsplit_once(':') else {
            return Some(format!("{entry:?} is not host:port"));
        };
        let host_ok = !host.is_empty()
            && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')));
        if !host_ok {
            return Some(format!(
                "{entry:?} has no valid host (IPv6 addresses go in brackets: [::1]:9092)"
            ));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => {
                return Some(format!("{entry:?} has port {port:?}; a port is 1 to 65535"));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka() {
        assert_eq!(topic_name_problem("shop.orders_v2-x"), None);
        for bad in ["", ".", "..", "a b", "ö", &"x".repeat(250)] {
            assert!(topic_name_problem(bad).is_some(), "{bad:?}");
        }
        assert!(topics_collide("shop.orders", "shop_orders"));
        assert!(!topics_collide("shop.orders", "shop-orders"));
    }

    #[test]
    fn bootstrap_entries_are_host_and_port() {
        for good in [
            "kafka:9092",
            "a:1,b:65535",
            "[::1]:9092",
            "10.0.0.1:9092, k2:9093",
        ] {
            assert_eq!(bootstrap_problem(good), None, "{good}");
        }
        for bad in [
            "kafka",
            "kafka:0",
            "kafka:70000",
            ":9092",
            "::1:9092",
            "k:92x",
            "a:1,",
        ] {
            assert!(bootstrap_problem(bad).is_some(), "{bad}");
        }
    }
}
