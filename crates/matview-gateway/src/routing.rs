//! Pure routing: which projector pods serve a view now, by shard, and which
//! shard owns a partition or a key. No I/O.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use matview_api::names::{HTTP_PORT, LABEL_REVISION, LABEL_SHARD, LABEL_VIEW};
use matview_api::view::shard_count;
use matview_crd::MaterializedView;

/// One ready projector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub pod: String,
    /// `http://ip:port`
    pub url: String,
}

/// How to read one view now: its serving revision's ready pods, per shard.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewRoute {
    pub namespace: String,
    pub name: String,
    pub revision: String,
    pub topic: String,
    pub keyed_by_row_key: bool,
    /// Index = shard; each holds the ready replicas of that shard.
    pub shards: Vec<Vec<Endpoint>>,
}

impl ViewRoute {
    /// Every replica with its shard, shard by shard.
    pub fn endpoints(&self) -> impl Iterator<Item = (u32, &Endpoint)> {
        self.shards
            .iter()
            .enumerate()
            .flat_map(|(shard, replicas)| replicas.iter().map(move |e| (shard as u32, e)))
    }

    /// Shards without a ready replica.
    pub fn dark_shards(&self) -> Vec<u32> {
        (0..self.shards.len() as u32)
            .filter(|s| self.shards[*s as usize].is_empty())
            .collect()
    }

    pub fn owner_of(&self, partition: i32) -> u32 {
        partition_owner(partition, self.shards.len() as u32)
    }
}

/// The revision that serves reads: the status's active one (the operator
/// switches it only once a new revision caught up).
pub fn serving_revision(view: &MaterializedView) -> Option<String> {
    view.status.as_ref()?.active_revision.clone()
}

fn pod_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The route of a view over the given pods (those of its namespace); `None`
/// when it has no serving revision yet.
pub fn route<'a>(
    view: &MaterializedView,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Option<ViewRoute> {
    route_of(view, pods, serving_revision(view)?)
}

/// The route of the revision waiting for promotion (`status.rollout.pending`),
/// read only when a caller names it.
pub fn pending_route<'a>(
    view: &MaterializedView,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Option<ViewRoute> {
    let pending = view.status.as_ref()?.rollout.as_ref()?.pending.as_ref()?;
    route_of(view, pods, pending.revision.clone())
}

/// The revision being built beside the serving one (`status.targetRevision`,
/// else a pending one): every pod of it with an address, ready or not —
/// for its progress, never for reads.
pub fn building_route<'a>(
    view: &MaterializedView,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Option<ViewRoute> {
    let status = view.status.as_ref()?;
    let pending = status.rollout.as_ref().and_then(|r| r.pending.as_ref());
    let revision = status
        .target_revision
        .clone()
        .or_else(|| pending.map(|p| p.revision.clone()))?;
    routed(view, pods, revision, false)
}

fn route_of<'a>(
    view: &MaterializedView,
    pods: impl IntoIterator<Item = &'a Pod>,
    revision: String,
) -> Option<ViewRoute> {
    routed(view, pods, revision, true)
}

fn routed<'a>(
    view: &MaterializedView,
    pods: impl IntoIterator<Item = &'a Pod>,
    revision: String,
    ready_only: bool,
) -> Option<ViewRoute> {
    let name = view.metadata.name.clone()?;
    // Shards of the serving revision: its pods say (the spec may be newer).
    let mut by_shard: BTreeMap<u32, Vec<Endpoint>> = BTreeMap::new();
    let mut highest_shard = None;
    for pod in pods {
        let Some(labels) = pod.metadata.labels.as_ref() else {
            continue;
        };
        if labels.get(LABEL_VIEW) != Some(&name) || labels.get(LABEL_REVISION) != Some(&revision) {
            continue;
        }
        let Some(shard) = labels.get(LABEL_SHARD).and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        highest_shard = highest_shard.max(Some(shard));
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.as_ref());
        if let (true, Some(ip)) = (!ready_only || pod_ready(pod), ip) {
            by_shard.entry(shard).or_default().push(Endpoint {
                pod: pod.metadata.name.clone().unwrap_or_default(),
                url: format!("http://{ip}:{HTTP_PORT}"),
            });
        }
    }
    let count = if view.spec.shards > 0 && Some(&revision) == current_revision(view).as_ref() {
        shard_count(view.spec.shards)
    } else {
        highest_shard.map_or(shard_count(view.spec.shards), |h| h + 1)
    };
    let mut shards: Vec<Vec<Endpoint>> = (0..count)
        .map(|s| by_shard.remove(&s).unwrap_or_default())
        .collect();
    for replicas in &mut shards {
        replicas.sort_by(|a, b| a.pod.cmp(&b.pod));
    }
    Some(ViewRoute {
        namespace: view.metadata.namespace.clone().unwrap_or_default(),
        name,
        revision,
        topic: view.spec.source.kafka.topic.clone(),
        keyed_by_row_key: view.spec.source.keyed_by_row_key,
        shards,
    })
}

fn current_revision(view: &MaterializedView) -> Option<String> {
    Some(matview_engine::revision(&view.spec))
}

/// Partition p belongs to shard p mod shards.
pub fn partition_owner(partition: i32, shards: u32) -> u32 {
    (partition.max(0) as u32) % shards.max(1)
}

/// The partition Kafka's default partitioner (murmur2, as the Java client and
/// librdkafka's `murmur2_random` use) gives a key.
pub fn key_partition(key: &[u8], partitions: i32) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) % partitions.max(1) as u32) as i32
}

/// Kafka's `Utils.murmur2`.
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's UtilsTest.testMurmur2 (as signed ints there).
        let cases: [(&[u8], i32); 4] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
        ];
        for (key, expected) in cases {
            assert_eq!(
                murmur2(key) as i32,
                expected,
                "{:?}",
                std::str::from_utf8(key)
            );
        }
    }

    #[test]
    fn partitions_map_to_shards_by_modulo() {
        assert_eq!(partition_owner(5, 2), 1);
        assert_eq!(partition_owner(4, 2), 0);
        assert_eq!(partition_owner(3, 1), 0);
        assert!((0..8).contains(&key_partition(b"u-17", 8)));
    }
}
