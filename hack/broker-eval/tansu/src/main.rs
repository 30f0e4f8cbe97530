//! `tansu-eval STORAGE-URL PORT`: one tansu broker node on 127.0.0.1:PORT
//! (`memory://tansu/`, or `sqlite://tansu.db` relative to the working directory).

use tansu_broker::broker::Broker;
use tansu_broker::coordinator::group::administrator::Controller;
use tansu_storage::StorageContainer;
use url::Url;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = tokio::time::Instant::now();
    let mut args = std::env::args().skip(1);
    let storage = args.next().unwrap_or_else(|| "memory://tansu/".into());
    let port = args.next().unwrap_or_else(|| "9092".into());
    let listener = Url::parse(&format!("tcp://127.0.0.1:{port}"))?;
    let mut broker = Broker::<Controller<StorageContainer>, StorageContainer>::builder()
        .node_id(111)
        .cluster_id("eval")
        .incarnation_id(uuid::Uuid::new_v4())
        .advertised_listener(listener.clone())
        .storage(Url::parse(&storage)?)
        .listener(listener)
        .build()
        .await?;
    broker.main(started).await?;
    Ok(())
}
