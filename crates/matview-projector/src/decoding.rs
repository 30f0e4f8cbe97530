//! The decode stage of a view whose events are not JSON: before a batch is
//! shaped, every schema id it names is known (fetched from the registry once,
//! then cached: ids are immutable); shaping then decodes without I/O. When
//! the registry cannot answer, the batch is held, never dead-lettered.

use matview_crd::EventFormat;
use matview_engine::EventError;
use matview_formats::{DecodeError, Encoding, SchemaCache};
use rdkafka::message::{Message, OwnedMessage};
use tokio::runtime::Handle;
use tracing::info;

use super::Shared;
use super::schema_registry::{Fetched, RegistryClient, RegistryUnavailable};

pub(super) struct Decoding {
    cache: SchemaCache,
    client: RegistryClient,
    runtime: Handle,
}

impl Decoding {
    /// The stage for the view's format; `None` for JSON, which needs none.
    pub(super) fn for_view(shared: &Shared, runtime: Handle) -> Option<Decoding> {
        let source = &shared.view.spec.source;
        let encoding = match source.format {
            EventFormat::Json => return None,
            EventFormat::Avro => Encoding::Avro,
            EventFormat::Protobuf => Encoding::Protobuf,
        };
        // Compilation refuses a binary format without a registry.
        let url = source.schema_registry.as_ref()?.url.clone();
        Some(Decoding {
            cache: SchemaCache::new(encoding),
            client: RegistryClient::new(&url),
            runtime,
        })
    }

    /// Fetches the schemas `messages` name that are not cached yet.
    pub(super) fn prefetch(
        &mut self,
        messages: &[OwnedMessage],
    ) -> Result<(), RegistryUnavailable> {
        let missing = self
            .cache
            .missing(messages.iter().filter_map(|m| m.payload()));
        for id in missing {
            match self.runtime.block_on(self.client.resolve(id))? {
                Fetched::Found(schema) => {
                    info!(id, kind = %schema.schema_type, references = schema.references.len(), "schema fetched");
                    self.cache.insert(&schema);
                }
                Fetched::Missing(said) => {
                    info!(
                        id,
                        said,
                        "the schema registry has no schema with this id: its events are dead letters"
                    );
                    self.cache.insert_unknown(id);
                }
            }
        }
        Ok(())
    }

    pub(super) fn cache(&self) -> &SchemaCache {
        &self.cache
    }
}

/// A decode failure as the dead-letter reason it is.
pub(super) fn event_error(error: DecodeError) -> EventError {
    match error {
        DecodeError::BadEncoding(detail) => EventError::BadEncoding { detail },
        DecodeError::UnknownSchema(id) => EventError::UnknownSchema { id },
    }
}
