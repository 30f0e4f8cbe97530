//! `POST /dev/orders` (dev mode only): the write side of the shop, so the
//! page can show the whole CQRS loop — an order goes to Kafka, the projector
//! folds it, the page's stream shows it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::problem::Problem;

/// An order as the page sends it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewOrder {
    user_id: String,
    items: Vec<NewItem>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    name: String,
    price: f64,
}

/// Where the order landed: read your write with `after=<position>`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacedOrder {
    pub order_id: String,
    pub item_ids: Vec<String>,
    /// `topic:partition:offset`
    pub position: String,
}

pub struct Orders {
    pub producer: FutureProducer,
    pub topic: String,
}

pub fn router(orders: Arc<Orders>) -> Router {
    Router::new()
        .route("/dev/orders", post(place))
        .with_state(orders)
}

/// Pure: an order's problems, in words.
fn check(order: &NewOrder) -> Result<(), String> {
    let user = order.user_id.trim();
    if user.is_empty() || user.len() > 64 {
        return Err("userId must be 1 to 64 characters".into());
    }
    if order.items.is_empty() || order.items.len() > 20 {
        return Err("an order has 1 to 20 items".into());
    }
    for (i, item) in order.items.iter().enumerate() {
        if item.name.trim().is_empty() || item.name.len() > 100 {
            return Err(format!("items[{i}].name must be 1 to 100 characters"));
        }
        if !item.price.is_finite() || item.price < 0.0 || item.price > 1e9 {
            return Err(format!("items[{i}].price must be a number from 0 to 1e9"));
        }
    }
    Ok(())
}

async fn place(
    State(orders): State<Arc<Orders>>,
    body: Result<Json<NewOrder>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<PlacedOrder>, Problem> {
    let Json(order) =
        body.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad order", e.body_text()))?;
    check(&order).map_err(|why| Problem::new(StatusCode::BAD_REQUEST, "bad order", why))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let order_id = format!("web-{stamp:x}");
    let item_ids: Vec<String> = (0..order.items.len())
        .map(|i| format!("{order_id}-{i}"))
        .collect();
    let items: Vec<_> = order
        .items
        .iter()
        .zip(&item_ids)
        .map(|(item, id)| json!({"itemId": id, "name": item.name.trim(), "price": item.price}))
        .collect();
    let payload =
        json!({"orderId": order_id, "userId": order.user_id.trim(), "items": items}).to_string();
    let record = FutureRecord::to(&orders.topic)
        .key(&order_id)
        .payload(&payload);
    let delivery = orders
        .producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not written",
                e.to_string(),
            )
        })?;
    Ok(Json(PlacedOrder {
        position: format!(
            "{}:{}:{}",
            orders.topic, delivery.partition, delivery.offset
        ),
        order_id,
        item_ids,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(user: &str, price: f64) -> NewOrder {
        NewOrder {
            user_id: user.into(),
            items: vec![NewItem {
                name: "pen".into(),
                price,
            }],
        }
    }

    #[test]
    fn orders_are_checked_before_they_are_written() {
        assert!(check(&order("u3", 1.5)).is_ok());
        assert!(check(&order("", 1.5)).is_err());
        assert!(check(&order("u3", -1.0)).is_err());
        assert!(check(&order("u3", f64::NAN)).is_err());
        let mut empty = order("u3", 1.0);
        empty.items.clear();
        assert!(check(&empty).is_err());
    }
}
