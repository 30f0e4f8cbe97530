//! `GET …/views/{name}/dead-letters`: the latest letters of the view's
//! dead-letter topic, read by one of its projectors (each reads the whole
//! topic with the view's own Kafka settings; the gateway holds no Kafka
//! credentials). Letters are the raw events the view rejected, so reading
//! them needs `get` on `materializedviews/deadletters`, apart from reading
//! rows.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use super::GatewayState;
use super::auth::DEAD_LETTERS_SUBRESOURCE;
use matview_api::dead_letters::{DeadLetterQuery, DeadLetters};
use matview_api::problem::{Problem, TypedQuery};

pub async fn view_dead_letters(
    State(st): State<Arc<GatewayState>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    TypedQuery(query): TypedQuery<DeadLetterQuery>,
) -> Result<Json<DeadLetters>, Problem> {
    let caller = st.auth.authenticate(&headers).await?;
    st.auth
        .require_on(&caller, &ns, &name, DEAD_LETTERS_SUBRESOURCE, "get")
        .await?;
    let limit = query.letters()?;
    let (route, _) = st.route_at(&ns, &name, None)?;
    // Any ready replica of any shard will do; the first that answers wins.
    let mut why = Vec::new();
    for (_, endpoint) in route.endpoints() {
        match st.projectors.dead_letters(&endpoint.url, limit).await {
            Ok(letters) => return Ok(Json(letters)),
            Err(e) => why.push(format!(
                "{}: {}",
                endpoint.pod,
                matview_api::errors::chain(&e)
            )),
        }
    }
    Err(Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "dead letters unavailable",
        if why.is_empty() {
            format!("{ns}/{name} has no ready projector to read its dead-letter topic")
        } else {
            why.join("; ")
        },
    ))
}
