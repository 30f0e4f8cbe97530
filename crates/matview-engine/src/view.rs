//! What a query returns for a row: per group, the count, the sums and the
//! bounded list of items. Views of the same key from different shards merge
//! (counts and sums add, item lists unite and are cut to the limit again).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::compile::CompiledView;
use super::decimal::Decimal;
use super::json::{JsonKind, RawJson};
use super::row::Row;
use super::sum::Sum;
use matview_crd::Keep;

/// One row as served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RowView {
    pub key: String,
    pub groups: BTreeMap<String, GroupView>,
}

/// One kept record: its `id` and fields, values as the event carried them.
pub type Item = BTreeMap<String, RawJson>;

/// One group of a row as served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GroupView {
    /// Records of the row in this group (with `aggregate.count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Exact decimal sums by field (with `aggregate.sum`), written as JSON
    /// numbers with every digit (read them with a decimal type to stay
    /// exact). A sum is never cut or dropped: it may exceed the range of
    /// one value (±1.7e28) and still has every digit.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", with = "sum_map")]
    #[schemars(with = "BTreeMap<String, f64>")]
    pub sum: BTreeMap<String, Sum>,
    /// The kept records, each with its `id` and fields (with `aggregate.items`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<Item>>,
    /// True when more records exist than the items listed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl CompiledView {
    /// The served form of a row.
    pub fn view(&self, key: &str, row: &Row) -> RowView {
        self.into_view(key, row.clone())
    }

    /// The served form of a row, moving its records' values into the items
    /// instead of copying them (the projector's read path: one read, one row).
    pub fn into_view(&self, key: &str, row: Row) -> RowView {
        let mut items_by_group: Vec<Vec<Item>> = vec![Vec::new(); self.groups.len()];
        if self.aggregate.items.is_some() {
            for (id, record) in row.records {
                let Some(items) = record
                    .group
                    .and_then(|g| items_by_group.get_mut(usize::from(g)))
                else {
                    continue;
                };
                let mut item = Item::new();
                item.insert("id".into(), RawJson::string(&id));
                for (field, value) in self.fields.iter().zip(record.fields) {
                    item.insert(field.name.clone(), value);
                }
                items.push(item);
            }
        }
        let mut groups = BTreeMap::new();
        for ((g, name), items) in self.groups.iter().enumerate().zip(items_by_group) {
            let totals = row.totals.get(g).cloned().unwrap_or_default();
            let sum = self
                .aggregate
                .sums
                .iter()
                .enumerate()
                .map(|(i, &fi)| {
                    let total = totals.sums.get(i).copied().unwrap_or(Sum::ZERO);
                    (self.fields[fi].name.clone(), total)
                })
                .collect();
            let mut group = GroupView {
                count: self.aggregate.count.then_some(totals.count),
                sum,
                items: self.aggregate.items.as_ref().map(|_| items),
                truncated: false,
            };
            self.bound_items(&mut group, totals.count);
            groups.insert(name.clone(), group);
        }
        RowView {
            key: key.to_string(),
            groups,
        }
    }

    /// Sorts a group's items by the view's order and cuts them to the limit.
    fn bound_items(&self, group: &mut GroupView, total: u64) {
        let (Some(spec), Some(items)) = (&self.aggregate.items, group.items.as_mut()) else {
            return;
        };
        let order_field = spec
            .order_by
            .map(|i| self.fields[i].name.as_str())
            .unwrap_or("id");
        // Each item's order value is parsed once, not once per comparison.
        let mut keyed: Vec<(OrderKey, Item)> = std::mem::take(items)
            .into_iter()
            .map(|item| (OrderKey::of(&item, order_field), item))
            .collect();
        keyed.sort_by(|(ka, a), (kb, b)| {
            let ord = ka
                .compare(a.get(order_field), kb, b.get(order_field))
                .then_with(|| compare_values(a.get("id"), b.get("id")));
            match spec.keep {
                Keep::Lowest => ord,
                Keep::Highest => ord.reverse(),
            }
        });
        keyed.truncate(spec.limit);
        *items = keyed.into_iter().map(|(_, item)| item).collect();
        group.truncated = (items.len() as u64) < total;
    }

    /// Merges views of the same key from shards that hold disjoint records.
    pub fn merge_views(&self, mut a: RowView, b: RowView) -> RowView {
        for (name, other) in b.groups {
            match a.groups.get_mut(&name) {
                None => {
                    a.groups.insert(name, other);
                }
                Some(mine) => {
                    let total = mine.count.unwrap_or(0) + other.count.unwrap_or(0);
                    mine.count = match (mine.count, other.count) {
                        (None, None) => None,
                        _ => Some(total),
                    };
                    for (field, value) in other.sum {
                        let entry = mine.sum.entry(field).or_insert(Sum::ZERO);
                        *entry = entry.merge(value);
                    }
                    let truncated = mine.truncated || other.truncated;
                    if let (Some(items), Some(more)) = (mine.items.as_mut(), other.items) {
                        items.extend(more);
                    }
                    self.bound_items(mine, total);
                    mine.truncated |= truncated;
                }
            }
        }
        a
    }
}

/// An item's order value, parsed once when it is an exact number.
pub(crate) struct OrderKey(Option<Decimal>);

impl OrderKey {
    fn of(item: &Item, field: &str) -> OrderKey {
        OrderKey::of_value(item.get(field))
    }

    pub(crate) fn of_value(value: Option<&RawJson>) -> OrderKey {
        OrderKey(value.and_then(RawJson::as_decimal).and_then(Result::ok))
    }

    /// The same order as [`compare_values`], from the parsed numbers when
    /// both are numbers.
    pub(crate) fn compare(
        &self,
        a: Option<&RawJson>,
        other: &OrderKey,
        b: Option<&RawJson>,
    ) -> Ordering {
        match (&self.0, &other.0) {
            (Some(x), Some(y)) => x.cmp(y),
            _ => compare_values(a, b),
        }
    }
}

/// Orders JSON values: absent < null < booleans < numbers < strings < others;
/// numbers by exact value, strings by bytes.
pub fn compare_values(a: Option<&RawJson>, b: Option<&RawJson>) -> Ordering {
    fn rank(v: Option<&RawJson>) -> u8 {
        match v.map(RawJson::kind) {
            None => 0,
            Some(JsonKind::Null) => 1,
            Some(JsonKind::Bool) => 2,
            Some(JsonKind::Number) => 3,
            Some(JsonKind::String) => 4,
            Some(_) => 5,
        }
    }
    let (Some(x), Some(y)) = (a, b) else {
        return rank(a).cmp(&rank(b));
    };
    match (x.kind(), y.kind()) {
        (JsonKind::Number, JsonKind::Number) => {
            match (x.as_decimal(), y.as_decimal()) {
                (Some(Ok(x)), Some(Ok(y))) => x.cmp(&y),
                // Stored numbers are exact decimals; text order keeps it total.
                _ => x.text().cmp(y.text()),
            }
        }
        (JsonKind::String, JsonKind::String) => x.as_string().cmp(&y.as_string()),
        (JsonKind::Bool, JsonKind::Bool) => x.as_bool().cmp(&y.as_bool()),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Sums serialize as JSON numbers written from the sum's digits, and are
/// read back from the number's text: exact both ways.
mod sum_map {
    use std::collections::BTreeMap;

    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::value::RawValue;

    use super::Sum;

    pub fn serialize<S: Serializer>(map: &BTreeMap<String, Sum>, s: S) -> Result<S::Ok, S::Error> {
        let mut numbers = Vec::with_capacity(map.len());
        for (k, v) in map {
            numbers.push((
                k,
                RawValue::from_string(v.to_string()).map_err(S::Error::custom)?,
            ));
        }
        s.collect_map(numbers)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Sum>, D::Error> {
        let raw = BTreeMap::<String, Box<RawValue>>::deserialize(d)?;
        raw.into_iter()
            .map(|(k, n)| {
                Sum::parse_exact(n.get())
                    .map(|v| (k, v))
                    .map_err(|e| D::Error::custom(format!("sum {} {e}", n.get())))
            })
            .collect()
    }
}
