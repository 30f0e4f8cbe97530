//! `matview validate --schema-registry URL`: each valid view that reads
//! Avro or Protobuf has its paths checked against the latest schema of its
//! topic's value subject (`<topic>-value`), as the operator checks them.

use std::path::Path;

use matview_registry::{Fetched, RegistryAccess, RegistryClient, check};

use super::CliError;
use crate::crd::EventFormat;
use crate::view::ValidatedView;

/// A registry to check views against.
pub struct SchemaCheck {
    client: RegistryClient,
    runtime: tokio::runtime::Runtime,
}

/// What the registry says about one view.
#[derive(Debug, PartialEq, Eq)]
pub enum SchemaVerdict {
    /// JSON: there is no schema to check against.
    NotApplicable,
    Fits {
        subject: String,
        id: u32,
    },
    Problems(Vec<String>),
    /// Why nothing could be checked (the view is valid otherwise).
    Unchecked(String),
}

impl SchemaCheck {
    pub fn new(url: &str, settings_dir: Option<&Path>) -> Result<SchemaCheck, CliError> {
        let access = match settings_dir {
            Some(dir) => RegistryAccess::from_dir(dir),
            None => Ok(RegistryAccess::default()),
        };
        let usage = |e: matview_registry::AccessError| CliError::Usage(e.to_string());
        let client = RegistryClient::new(url, &access.map_err(usage)?).map_err(usage)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::Usage(format!("cannot start a runtime: {e}")))?;
        Ok(SchemaCheck { client, runtime })
    }

    pub fn view(&self, view: &ValidatedView) -> SchemaVerdict {
        if view.spec.source.format == EventFormat::Json {
            return SchemaVerdict::NotApplicable;
        }
        let subject = format!("{}-value", view.topic);
        let latest = match self.runtime.block_on(self.client.latest(&subject)) {
            Ok(Fetched::Found(latest)) => latest,
            Ok(Fetched::Missing(said)) => {
                return SchemaVerdict::Unchecked(format!(
                    "the registry has no subject {subject} ({said})"
                ));
            }
            Err(e) => return SchemaVerdict::Unchecked(e.to_string()),
        };
        let shape = match matview_formats::Shape::of(&latest) {
            Ok(shape) => shape,
            Err(e) => return SchemaVerdict::Unchecked(format!("{subject}: {e}")),
        };
        let which = format!("{subject}, schema id {}", latest.id);
        let issues = check::check_paths(&view.compiled, &shape, &which);
        if issues.is_empty() {
            SchemaVerdict::Fits {
                subject,
                id: latest.id,
            }
        } else {
            SchemaVerdict::Problems(issues.iter().map(ToString::to_string).collect())
        }
    }
}
