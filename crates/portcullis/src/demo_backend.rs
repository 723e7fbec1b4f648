//! The sandbox's demo backend: a small product catalog and orders API that `portcullis up`
//! puts behind the gateway, with the routes of the article's policy table (4.3). It trusts
//! the identity headers the gateway adds and echoes them, so a `curl` shows who called.
//!
//! It must never be exposed without the gateway in front: it checks no tokens itself.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

/// Identity headers the demo gateway fills from verified claims (and strips from clients).
pub const CALLER_HEADERS: &[(&str, &str)] = &[
    ("x-auth-subject", "sub"),
    ("x-auth-client-id", "cid"),
    ("x-auth-scopes", "scp"),
    ("x-auth-roles", "user_roles"),
    ("x-auth-department", "department_id"),
];

#[derive(Default)]
struct Catalog {
    products: Mutex<Vec<Value>>,
    orders: Mutex<u64>,
}

/// The demo catalog API, and with `app` (its `config.json`) the demo single-page app at
/// `/app`.
pub fn router(app: Option<Value>) -> Router {
    let catalog = Arc::new(Catalog {
        products: Mutex::new(vec![
            json!({"id": "1", "name": "Portcullis T-shirt", "price": 25}),
            json!({"id": "2", "name": "Drawbridge mug", "price": 12}),
            json!({"id": "3", "name": "Moat survival kit", "price": 99}),
        ]),
        orders: Mutex::new(0),
    });
    let api = Router::new()
        .route("/api/v1/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/api/v1/products", get(list_products))
        .route("/api/v1/products/{id}", get(get_product).put(put_product))
        .route("/api/v1/orders", post(create_order))
        .route("/api/v1/admin/users", delete(delete_users))
        .with_state(catalog);
    match app {
        None => api,
        Some(config) => api
            .route("/app", get(app_page))
            .route("/app/", get(app_page))
            .route(
                "/app/app.js",
                get(|| async {
                    static_file("text/javascript; charset=utf-8", include_str!("demo-spa/app.js"))
                }),
            )
            .route(
                "/app/config.json",
                get(move || async move { Json(config.clone()) }),
            ),
    }
}

async fn app_page() -> Response {
    static_file("text/html; charset=utf-8", include_str!("demo-spa/index.html"))
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, content_type),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
            (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// Who the gateway says is calling.
fn caller(headers: &HeaderMap) -> Value {
    let mut out = serde_json::Map::new();
    for (header, claim) in CALLER_HEADERS {
        if let Some(v) = headers.get(*header).and_then(|v| v.to_str().ok()) {
            out.insert((*claim).into(), v.into());
        }
    }
    Value::Object(out)
}

async fn list_products(State(c): State<Arc<Catalog>>, headers: HeaderMap) -> Response {
    let products = c.products.lock().map(|p| p.clone()).unwrap_or_default();
    Json(json!({"products": products, "caller": caller(&headers)})).into_response()
}

async fn get_product(State(c): State<Arc<Catalog>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let found = c
        .products
        .lock()
        .ok()
        .and_then(|p| p.iter().find(|p| p["id"] == id.as_str()).cloned());
    match found {
        Some(p) => Json(json!({"product": p, "caller": caller(&headers)})).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"error": "no such product"}))).into_response(),
    }
}

async fn put_product(
    State(c): State<Arc<Catalog>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let mut product = json!({"id": id, "name": "Unnamed product", "price": 0});
    if let Some(Json(Value::Object(fields))) = body {
        for (k, v) in fields.into_iter().filter(|(k, _)| k != "id") {
            product[k] = v;
        }
    }
    if let Ok(mut products) = c.products.lock() {
        let len = products.len();
        match products.iter_mut().find(|p| p["id"] == id.as_str()) {
            Some(p) => *p = product.clone(),
            None if len < 1000 => products.push(product.clone()),
            None => {}
        }
    }
    Json(json!({"product": product, "caller": caller(&headers)})).into_response()
}

async fn create_order(State(c): State<Arc<Catalog>>, headers: HeaderMap) -> Response {
    let n = c
        .orders
        .lock()
        .map(|mut n| {
            *n += 1;
            *n
        })
        .unwrap_or(0);
    (
        StatusCode::CREATED,
        Json(json!({"order": {"id": format!("ord-{n}"), "status": "placed"}, "caller": caller(&headers)})),
    )
        .into_response()
}

async fn delete_users(headers: HeaderMap) -> Response {
    Json(json!({"deleted": 0, "message": "no users to delete in the demo", "caller": caller(&headers)}))
        .into_response()
}
