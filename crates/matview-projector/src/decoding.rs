//! The decode stage of a view whose values or keys are not plain: before a
//! batch is shaped, every schema id it names is known (fetched from the
//! registry once, then cached: ids are immutable); shaping then decodes
//! without I/O. When the registry cannot answer, the batch is held, never
//! dead-lettered.

use std::path::{Path, PathBuf};

use matview_crd::{Envelope, EventFormat, KeyFormat};
use matview_engine::pointer::{FieldPointer, Scope};
use matview_engine::{CompiledView, EventError, EventValue, Tape};
use matview_formats::{DecodeError, Encoding, Projection, SchemaCache};
use matview_registry::{AccessError, Fetched, RegistryAccess, RegistryClient, RegistryUnavailable};
use rdkafka::message::{Message, OwnedMessage};
use tokio::runtime::Handle;
use tracing::{info, warn};

use super::Shared;

/// How message keys become the identity of a source entity.
enum Keys {
    /// Compared as bytes.
    Raw,
    /// Parsed and written back canonically (members sorted, no spaces).
    Json,
    /// Decoded through the registry into canonical JSON.
    Registry(SchemaCache),
}

pub(super) struct Decoding {
    values: Option<SchemaCache>,
    /// The view's bound on an event, on the message as it arrives.
    max_event_bytes: usize,
    keys: Keys,
    client: Option<Registry>,
    runtime: Handle,
}

/// The registry's client, and where its settings are mounted: read again
/// when the registry refuses them, so a fixed Secret heals the shard.
struct Registry {
    url: String,
    settings_dir: Option<PathBuf>,
    access: RegistryAccess,
    client: RegistryClient,
}

impl Registry {
    fn connect(url: &str, settings_dir: Option<&Path>) -> Result<Registry, AccessError> {
        let access = match settings_dir {
            Some(dir) => RegistryAccess::from_dir(dir)?,
            None => RegistryAccess::default(),
        };
        Ok(Registry {
            url: url.to_string(),
            settings_dir: settings_dir.map(Path::to_path_buf),
            client: RegistryClient::new(url, &access)?,
            access,
        })
    }

    /// After a refusal: the settings as mounted now, when they changed.
    fn reread_settings(&mut self) -> bool {
        let Some(dir) = &self.settings_dir else {
            return false;
        };
        match RegistryAccess::from_dir(dir) {
            Ok(access) if access != self.access => match RegistryClient::new(&self.url, &access) {
                Ok(client) => {
                    info!("the schema registry's settings changed: using them");
                    self.client = client;
                    self.access = access;
                    true
                }
                Err(e) => {
                    warn!(error = %e, "the schema registry's new settings are not usable");
                    false
                }
            },
            Ok(_) => false,
            Err(e) => {
                warn!(error = %e, "cannot read the schema registry's settings again");
                false
            }
        }
    }
}

fn encoding(format: EventFormat) -> Option<Encoding> {
    match format {
        EventFormat::Json => None,
        EventFormat::Avro => Some(Encoding::Avro),
        EventFormat::Protobuf => Some(Encoding::Protobuf),
    }
}

impl Decoding {
    /// The stage for the view's formats; `None` when values are JSON and
    /// keys raw, which need none.
    pub(super) fn for_view(
        shared: &Shared,
        runtime: Handle,
    ) -> Result<Option<Decoding>, AccessError> {
        let source = &shared.view.spec.source;
        let compiled = &shared.view.compiled;
        let values = encoding(source.format)
            .map(|e| SchemaCache::with_projection(e, value_projection(compiled)));
        let keys = match source.key_format {
            KeyFormat::String => Keys::Raw,
            KeyFormat::Json => Keys::Json,
            KeyFormat::Avro => Keys::Registry(SchemaCache::new(Encoding::Avro)),
            KeyFormat::Protobuf => Keys::Registry(SchemaCache::new(Encoding::Protobuf)),
        };
        if values.is_none() && matches!(keys, Keys::Raw) {
            return Ok(None);
        }
        // Compilation refuses a binary format without a registry.
        let settings = shared.config.schema_registry_config_dir.as_deref();
        let client = source
            .schema_registry
            .as_ref()
            .map(|r| Registry::connect(&r.url, settings))
            .transpose()?;
        Ok(Some(Decoding {
            values,
            max_event_bytes: compiled.max_event_bytes,
            keys,
            client,
            runtime,
        }))
    }

    /// Fetches the schemas `messages` name (values and keys) not cached
    /// yet; refused, it tries the settings as mounted now once more.
    pub(super) fn prefetch(
        &mut self,
        messages: &[OwnedMessage],
    ) -> Result<(), RegistryUnavailable> {
        match self.fetch_missing(messages) {
            Err(e) if e.refused && self.client.as_mut().is_some_and(Registry::reread_settings) => {
                self.fetch_missing(messages)
            }
            done => done,
        }
    }

    fn fetch_missing(&mut self, messages: &[OwnedMessage]) -> Result<(), RegistryUnavailable> {
        let Some(Registry { client, .. }) = &self.client else {
            return Ok(());
        };
        if let Some(values) = self.values.as_mut() {
            let missing = values.missing(messages.iter().filter_map(|m| m.payload()));
            fetch(client, &self.runtime, values, missing)?;
        }
        if let Keys::Registry(keys) = &mut self.keys {
            let missing = keys.missing(messages.iter().filter_map(|m| m.key()));
            fetch(client, &self.runtime, keys, missing)?;
        }
        Ok(())
    }

    /// The value as the engine reads it (decoded onto `tape` when it is not JSON).
    pub(super) fn value<'a>(
        &self,
        value: Option<&'a [u8]>,
        tape: &'a mut Tape,
    ) -> Result<Option<EventValue<'a>>, EventError> {
        match (&self.values, value) {
            (Some(_), Some(framed)) if framed.len() > self.max_event_bytes => {
                Err(EventError::TooLarge {
                    size: framed.len(),
                    max: self.max_event_bytes,
                })
            }
            (Some(schemas), Some(framed)) => {
                schemas.decode_to_tape(framed, tape).map_err(event_error)?;
                Ok(Some(EventValue::Decoded(tape)))
            }
            (_, value) => Ok(value.map(EventValue::Json)),
        }
    }

    /// The key as the identity of its entity.
    pub(super) fn key<'a>(
        &self,
        key: Option<&'a [u8]>,
        buf: &'a mut Vec<u8>,
    ) -> Result<Option<&'a [u8]>, EventError> {
        let Some(key) = key else {
            return Ok(None);
        };
        buf.clear();
        match &self.keys {
            Keys::Raw => return Ok(Some(key)),
            Keys::Json => canonical_json(key, buf)?,
            Keys::Registry(schemas) => {
                schemas.decode(key, buf).map_err(|e| match event_error(e) {
                    EventError::BadEncoding { detail } => EventError::BadEncoding {
                        detail: format!("the key: {detail}"),
                    },
                    other => other,
                })?;
            }
        }
        Ok(Some(buf.as_slice()))
    }
}

/// What of each value the view reads: the paths of its key, id and fields
/// (element paths under the exploded array), and the exploded array itself.
/// A Debezium event is read through its envelope's members: all of it.
pub fn value_projection(view: &CompiledView) -> Projection {
    if view.envelope == Envelope::Debezium {
        return Projection::All;
    }
    let explode: Vec<String> = view
        .explode
        .as_ref()
        .map(|e| e.tokens().to_vec())
        .unwrap_or_default();
    let from_root = |p: &FieldPointer| -> Vec<String> {
        match p.scope {
            Scope::Event => p.tokens().to_vec(),
            Scope::Element => explode.iter().chain(p.tokens()).cloned().collect(),
        }
    };
    let pointers = [Some(&view.key), view.id.as_ref()]
        .into_iter()
        .flatten()
        .chain(view.fields.iter().map(|f| &f.pointer));
    let paths: Vec<Vec<String>> = pointers.map(from_root).collect();
    Projection::of_paths(
        paths.iter().map(Vec::as_slice),
        view.explode.iter().map(|e| e.tokens()),
    )
}

/// A JSON key written back canonically: members sorted (serde_json's map
/// is ordered), no spaces, so equal content is equal bytes.
fn canonical_json(key: &[u8], buf: &mut Vec<u8>) -> Result<(), EventError> {
    let bad = |e: serde_json::Error| EventError::BadEncoding {
        detail: format!("the key is not JSON: {e}"),
    };
    let parsed: serde_json::Value = serde_json::from_slice(key).map_err(bad)?;
    serde_json::to_writer(&mut *buf, &parsed).map_err(bad)
}

fn fetch(
    client: &RegistryClient,
    runtime: &Handle,
    cache: &mut SchemaCache,
    missing: impl IntoIterator<Item = u32>,
) -> Result<(), RegistryUnavailable> {
    for id in missing {
        match runtime.block_on(client.resolve(id))? {
            Fetched::Found(schema) => {
                info!(id, kind = %schema.schema_type, references = schema.references.len(), "schema fetched");
                cache.insert(&schema);
            }
            Fetched::Missing(said) => {
                info!(
                    id,
                    said,
                    "the schema registry has no schema with this id: its events are dead letters"
                );
                cache.insert_unknown(id);
            }
        }
    }
    Ok(())
}

/// A decode failure as the dead-letter reason it is.
pub(super) fn event_error(error: DecodeError) -> EventError {
    match error {
        DecodeError::BadEncoding(detail) => EventError::BadEncoding { detail },
        DecodeError::UnknownSchema(id) => EventError::UnknownSchema { id },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(text: &str) -> CompiledView {
        let view: matview_crd::MaterializedView = serde_yaml_ng::from_str(text).expect("parses");
        matview_engine::compile(&view.spec).expect("compiles")
    }

    #[test]
    fn a_view_decodes_only_the_members_its_paths_reach() {
        let shop = example(include_str!("../../../examples/items-by-price.yaml"));
        let p = value_projection(&shop);
        assert!(p.member("userId").is_some() && p.member("orderId").is_some());
        assert!(p.member("country").is_none() && p.member("placedAt").is_none());
        let items = p.member("items").expect("the exploded array");
        for read in ["itemId", "name", "price"] {
            assert_eq!(items.member(read), Some(&Projection::All), "{read}");
        }
        assert!(items.member("quantity").is_none());
        // A change event is read through its envelope: all of it.
        let cdc = example(include_str!("../../../examples/orders-from-postgres.yaml"));
        assert_eq!(value_projection(&cdc), Projection::All);
    }

    #[test]
    fn json_keys_compare_by_content() {
        let canonical = |key: &str| {
            let mut buf = Vec::new();
            canonical_json(key.as_bytes(), &mut buf)
                .map(|()| String::from_utf8(buf).expect("utf-8"))
        };
        let a = canonical(r#"{"id": 7, "region": "eu"}"#).expect("a");
        let b = canonical(r#"{"region":"eu","id":7}"#).expect("b");
        assert_eq!(a, b);
        assert_eq!(a, r#"{"id":7,"region":"eu"}"#);
        assert_ne!(a, canonical(r#"{"id":8,"region":"eu"}"#).expect("c"));
        assert!(matches!(
            canonical("{id: 7}"),
            Err(EventError::BadEncoding { .. })
        ));
    }
}
