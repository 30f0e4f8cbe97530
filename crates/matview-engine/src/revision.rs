//! A view's revision: a short, stable hash of everything that changes its
//! content. Replicas, resources, scheduling, the dead-letter topic and how to
//! reach Kafka do not change content, so they do not change the revision.

use serde_json::json;
use sha2::{Digest, Sha256};

use matview_crd::{Envelope, KeyFormat, MaterializedViewSpec};

/// Hex digits kept: 40 bits, plenty to tell a view's revisions apart.
const REVISION_LEN: usize = 10;

/// The revision of a spec, such as `3f9a0c21be`.
pub fn revision(spec: &MaterializedViewSpec) -> String {
    let mut content = json!({
        "source": {
            "topic": spec.source.kafka.topic,
            "format": spec.source.format,
            "startFrom": spec.source.start_from,
            "keyedByRowKey": spec.source.keyed_by_row_key,
            "maxEventBytes": spec.source.max_event_bytes,
        },
        "records": spec.records,
        "classify": spec.classify,
        "aggregate": spec.aggregate,
        "shards": spec.shards,
    });
    // Added only when not the default, so views that existed before
    // envelopes keep their revision (and are not rebuilt on upgrade).
    if spec.source.envelope != Envelope::Append {
        content["source"]["envelope"] = json!(spec.source.envelope);
    }
    // Decoded keys name entities differently from raw ones.
    if spec.source.key_format != KeyFormat::String {
        content["source"]["keyFormat"] = json!(spec.source.key_format);
    }
    // serde_json writes struct fields in declaration order and maps sorted
    // (BTreeMap), so the text, and the hash, are stable.
    let digest = Sha256::digest(content.to_string().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..REVISION_LEN].to_string()
}
