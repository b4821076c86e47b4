//! The dashboard: one page for analysts and operators at `/`, its assets (`hub/assets/`) built into
//! the binary and served at `/assets/…` under a strict Content-Security-Policy (no inline script or
//! style, nothing from another origin), and `GET /api/v1/me`, which tells the page what a token may
//! see.
//!
//! The page asks for a token, keeps it in `sessionStorage` and sends it as `Authorization: Bearer`
//! with every request; the assets themselves hold no data and need none. `/assets/catalogue.json`
//! lists the 34 principals, the six areas and the follow-up rules (public facts, from the same
//! source as the API's checks).

use axum::{
    extract::{Path, State},
    http::{header, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde::Serialize;
use sgd_schemas::{catalogue, principals};

use super::{auth::Caller, ApiState};
use crate::{projections::followup::RULES, tokens::Role};

/// The policy every dashboard response carries: scripts, styles, images and requests from this
/// origin only; no inline script, no inline style attribute, no frames, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../../assets/index.html");

/// The files under `/assets/`: (name, content type, body).
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", "text/javascript; charset=utf-8", include_str!("../../assets/app.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("../../assets/app.css")),
    ("favicon.svg", "image/svg+xml", include_str!("../../assets/favicon.svg")),
];

/// The page's routes (`/`, `/assets/{name}`): plain routes, left out of the OpenAPI document.
pub fn pages<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(index)).route("/assets/{name}", get(asset))
}

async fn index() -> Response {
    page_response(StatusCode::OK, "text/html; charset=utf-8", INDEX_HTML.to_string())
}

async fn asset(Path(name): Path<String>) -> Response {
    if name == "catalogue.json" {
        return page_response(StatusCode::OK, "application/json", catalogue_json().to_string());
    }
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => page_response(StatusCode::OK, content_type, (*body).to_string()),
        None => page_response(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "no such asset\n".into()),
    }
}

/// A dashboard response with its security headers.
fn page_response(status: StatusCode, content_type: &str, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    let fixed: [(HeaderName, &'static str); 6] = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-cache"),
        (HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    response
}

/// The principals, areas and rules, for the page's labels and filters.
fn catalogue_json() -> &'static str {
    static JSON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    JSON.get_or_init(|| {
        let principals: Vec<serde_json::Value> = principals::all()
            .iter()
            .map(|p| serde_json::json!({ "code": p.code, "name": p.name, "kind": p.kind }))
            .collect();
        serde_json::json!({
            "principals": principals,
            "areas": catalogue::SERVICE_AREAS,
            "rules": RULES,
        })
        .to_string()
    })
}

/// Who the caller is, as the dashboard needs to know it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    /// The token's role: `analyst`, `operator`, `integrator` or `coordinator`.
    pub role: String,
    /// The principal an integrator or coordinator token is bound to.
    pub principal: Option<String>,
    /// That principal's name.
    pub principal_name: Option<String>,
    /// The dashboard views the role may see: `goals`, `adoption`, `usage`, `followup`, `live`,
    /// `dlq`, `deliveries` (in that order).
    #[schema(value_type = Vec<String>)]
    pub views: Vec<&'static str>,
    /// Counts about persons above zero and below this are hidden in statistics.
    pub privacy_threshold: u64,
}

/// The dashboard views a role may see (each backed by endpoints the role may call).
pub fn views_of(role: Role) -> Vec<&'static str> {
    match role {
        Role::Analyst => vec!["goals", "adoption", "usage", "followup", "live"],
        Role::Operator => vec!["goals", "adoption", "usage", "followup", "live", "dlq", "deliveries"],
        Role::Coordinator => vec!["followup"],
        Role::Integrator => vec!["dlq", "deliveries"],
    }
}

#[utoipa::path(get, path = "/api/v1/me", tag = "dashboard", responses((status = 200, description = "The caller's role, principal and the dashboard views it may see", body = Me), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody)))]
/// The caller's role and principal, and the dashboard views it may see (any valid token).
pub async fn me(State(state): State<ApiState>, caller: Caller) -> Json<Me> {
    let record = caller.0;
    let principal_name = record.principal.as_deref().and_then(principals::by_code).map(|p| p.name.to_string());
    Json(Me {
        role: record.role.as_str().to_string(),
        principal: record.principal,
        principal_name,
        views: views_of(record.role),
        privacy_threshold: state.settings.privacy_threshold,
    })
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;

    async fn get(path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let request = axum::http::Request::get(path).body(Body::empty()).unwrap();
        let response = pages::<()>().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 1 << 22).await.unwrap();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn the_page_and_its_assets_are_served_with_their_types_and_the_policy() {
        for (path, content_type) in [
            ("/", "text/html"),
            ("/assets/app.js", "text/javascript"),
            ("/assets/app.css", "text/css"),
            ("/assets/favicon.svg", "image/svg+xml"),
            ("/assets/catalogue.json", "application/json"),
        ] {
            let (status, headers, body) = get(path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with(content_type), "{path}");
            assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY, "{path}");
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
            assert!(!body.is_empty(), "{path}");
        }
        for path in ["/assets/nothing.js", "/assets/..%2Fsrc%2Flib.rs", "/assets/"] {
            let (status, _, _) = get(path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
        let (_, _, catalogue) = get("/assets/catalogue.json").await;
        let catalogue: serde_json::Value = serde_json::from_str(&catalogue).unwrap();
        assert_eq!(catalogue["principals"].as_array().unwrap().len(), 34);
        assert_eq!(catalogue["areas"].as_array().unwrap().len(), 6);
        assert_eq!(catalogue["rules"].as_array().unwrap().len(), RULES.len());
    }

    #[test]
    fn the_page_has_no_inline_script_or_style_and_writes_no_markup_from_data() {
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
        // every <script> has a src, and no element carries a handler or a style attribute
        for (i, _) in INDEX_HTML.match_indices("<script") {
            let tag = &INDEX_HTML[i..i + INDEX_HTML[i..].find('>').unwrap()];
            assert!(tag.contains(" src=\"/assets/"), "inline script: {tag}");
        }
        let lower = INDEX_HTML.to_ascii_lowercase();
        for forbidden in [
            " style=",
            "<style",
            " onclick=",
            " onload=",
            " onerror=",
            " onsubmit=",
            "javascript:",
            "http://",
            "https://",
        ] {
            assert!(!lower.contains(forbidden), "index.html holds {forbidden:?}");
        }
        let (_, _, script) = ASSETS[0];
        for forbidden in
            ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "https://"]
        {
            assert!(!script.contains(forbidden), "app.js uses {forbidden:?}");
        }
    }

    #[test]
    fn each_role_sees_only_views_backed_by_what_it_may_call() {
        assert_eq!(views_of(Role::Operator).last(), Some(&"deliveries"));
        assert!(!views_of(Role::Analyst).contains(&"dlq") && !views_of(Role::Analyst).contains(&"deliveries"));
        assert_eq!(views_of(Role::Coordinator), vec!["followup"]);
        assert_eq!(views_of(Role::Integrator), vec!["dlq", "deliveries"]);
    }
}
