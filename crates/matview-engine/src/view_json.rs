//! A row's served JSON written straight from the row: the same bytes as
//! serializing [`CompiledView::into_view`], without first building a map
//! per item. A projector's point read is most of its read cost in that
//! tree (`matview bench projector --lookups-per-second`).

use super::compile::CompiledView;
use super::json::RawJson;
use super::row::{GroupTotals, Row, StoredRecord};
use super::sum::Sum;
use super::view::OrderKey;
use matview_crd::Keep;

/// Where an item's entry comes from: its id, or one of the view's fields.
#[derive(Clone, Copy)]
enum Entry {
    Id,
    Field(usize),
}

impl CompiledView {
    /// Appends the JSON of `RowView` for `key` to `out`.
    pub fn write_view(&self, key: &str, row: &Row, out: &mut Vec<u8>) {
        // Maps serialize in key order: groups, item entries and sums by name.
        let mut groups: Vec<usize> = (0..self.groups.len()).collect();
        groups.sort_by(|&a, &b| self.groups[a].cmp(&self.groups[b]));
        let mut entries: Vec<(&str, Entry)> = std::iter::once(("id", Entry::Id))
            .chain(
                self.fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| (f.name.as_str(), Entry::Field(i))),
            )
            .collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let mut sums: Vec<(&str, usize)> = self
            .aggregate
            .sums
            .iter()
            .enumerate()
            .map(|(i, &fi)| (self.fields[fi].name.as_str(), i))
            .collect();
        sums.sort_by(|a, b| a.0.cmp(b.0));

        out.extend_from_slice(b"{\"key\":");
        write_str(out, key);
        out.extend_from_slice(b",\"groups\":{");
        for (n, &g) in groups.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            write_str(out, &self.groups[g]);
            out.extend_from_slice(b":{");
            let totals = row.totals.get(g).cloned().unwrap_or_default();
            self.write_group(g, row, &totals, &sums, &entries, out);
            out.push(b'}');
        }
        out.extend_from_slice(b"}}");
    }

    /// A group's members, in `GroupView`'s field order and skip rules.
    fn write_group(
        &self,
        group: usize,
        row: &Row,
        totals: &GroupTotals,
        sums: &[(&str, usize)],
        entries: &[(&str, Entry)],
        out: &mut Vec<u8>,
    ) {
        let mut separated = false;
        let mut member = |out: &mut Vec<u8>, name: &[u8]| {
            if std::mem::replace(&mut separated, true) {
                out.push(b',');
            }
            out.extend_from_slice(name);
        };
        if self.aggregate.count {
            member(out, b"\"count\":");
            out.extend_from_slice(totals.count.to_string().as_bytes());
        }
        if !sums.is_empty() {
            member(out, b"\"sum\":{");
            for (n, (name, i)) in sums.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_str(out, name);
                out.push(b':');
                let total = totals.sums.get(*i).copied().unwrap_or(Sum::ZERO);
                out.extend_from_slice(total.to_string().as_bytes());
            }
            out.push(b'}');
        }
        let Some(spec) = &self.aggregate.items else {
            return;
        };
        let order_by = spec.order_by;
        let mut items: Vec<(&String, &StoredRecord, OrderKey)> = row
            .records
            .iter()
            .filter(|(_, r)| r.group.map(usize::from) == Some(group))
            .map(|(id, r)| (id, r, OrderKey::of_value(order_value(order_by, r))))
            .collect();
        items.sort_by(|(ia, ra, ka), (ib, rb, kb)| {
            let ord = match spec.order_by {
                Some(_) => ka.compare(order_value(order_by, ra), kb, order_value(order_by, rb)),
                // Ids are strings: ordered as `compare_values` orders strings.
                None => ia.cmp(ib),
            }
            .then_with(|| ia.cmp(ib));
            match spec.keep {
                Keep::Lowest => ord,
                Keep::Highest => ord.reverse(),
            }
        });
        items.truncate(spec.limit);
        member(out, b"\"items\":[");
        for (n, (id, record, _)) in items.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            write_item(id, record, entries, out);
        }
        out.push(b']');
        if (items.len() as u64) < totals.count {
            member(out, b"\"truncated\":true");
        }
    }
}

/// The value a record is ordered by, if the view orders by a field.
fn order_value(order_by: Option<usize>, record: &StoredRecord) -> Option<&RawJson> {
    order_by.and_then(|fi| record.fields.get(fi))
}

/// One item: its id and the fields the record has, by name.
fn write_item(id: &str, record: &StoredRecord, entries: &[(&str, Entry)], out: &mut Vec<u8>) {
    out.push(b'{');
    let mut first = true;
    for (name, entry) in entries {
        let value = match entry {
            Entry::Id => None,
            Entry::Field(i) => match record.fields.get(*i) {
                Some(v) => Some(v),
                // A record written with fewer fields than the view has.
                None => continue,
            },
        };
        if !std::mem::replace(&mut first, false) {
            out.push(b',');
        }
        write_str(out, name);
        out.push(b':');
        match value {
            Some(v) => out.extend_from_slice(RawJson::text(v).as_bytes()),
            None => write_str(out, id),
        }
    }
    out.push(b'}');
}

/// A JSON string, escaped as serde_json escapes it.
fn write_str(out: &mut Vec<u8>, text: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}
