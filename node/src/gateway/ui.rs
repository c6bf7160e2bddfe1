//! `GET /ui`: the live dashboard, a page served by the node itself.
//!
//! The page and its assets (`node/ui/`: plain HTML, CSS and JavaScript, charts drawn on
//! `<canvas>` by the page's own code) are compiled into the binary with `include_str!`: no
//! build step, no file read at run time, nothing fetched from another origin. Every answer
//! carries a Content-Security-Policy that allows only this origin (scripts, styles, images,
//! and fetches and WebSockets to this node), no inline script or style, no framing.
//!
//! Access: the page and its assets are public, static code holding no data, so they are open
//! routes even with `[auth]` (a browser cannot send a bearer token when it navigates to a
//! page). Every piece of data the page shows comes from the authenticated API: the operator
//! types a token into the page, which keeps it in `sessionStorage` (gone when the tab
//! closes) and sends it as `Authorization: Bearer` on each fetch and as `?access_token=` on
//! the WebSocket. The token needs `admin` for the cluster panels (`/admin/status`,
//! `/admin/stats`, `/admin/pending`) and `read` for the account view (`/v1/accounts/{id}`, its
//! entries and the stream); a refusal is shown on the page.
//!
//! The dashboard is served on every listener. With `node.admin_listen` the admin routes live
//! on their own address and `/v1` on the public one, so a page opened on either shows the
//! other half's requests refused `not_found`, and says so.
//!
//! Left out: writes (the dashboard only reads), and a cluster-wide throughput figure (each
//! node charts its own requests).

use super::error::HttpError;
use axum::extract::Path;
use axum::http::header::{self, HeaderValue};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

/// The policy of every dashboard answer: this origin only, no inline code.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// Longest `Host` header named in the page's policy.
const HOST_BYTES_MAX: usize = 255;

/// The page's policy: [`CONTENT_SECURITY_POLICY`] with the page's own host's `ws:` and `wss:`
/// added to `connect-src` (the stream), for browsers whose `'self'` does not cover
/// WebSockets yet. A `Host` that is not a plain `host[:port]` adds nothing.
pub fn page_policy(host: Option<&str>) -> String {
    let plain = |h: &str| {
        !h.is_empty()
            && h.len() <= HOST_BYTES_MAX
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    };
    match host.filter(|h| plain(h)) {
        Some(h) => CONTENT_SECURITY_POLICY.replace(
            "connect-src 'self'",
            &format!("connect-src 'self' ws://{h} wss://{h}"),
        ),
        None => CONTENT_SECURITY_POLICY.to_owned(),
    }
}

/// One embedded file: its name under `/ui/`, content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// The page itself, at `/ui`.
const PAGE: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_str!("../../ui/index.html"),
};

/// The assets the page loads, at `/ui/{name}`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../ui/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../ui/app.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../../ui/favicon.svg"),
    },
];

/// `GET /ui`: the dashboard's page.
pub async fn page(headers: HeaderMap) -> Response {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let mut resp = serve(&PAGE);
    if let Ok(policy) = HeaderValue::from_str(&page_policy(host)) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    resp
}

/// `GET /ui/{name}`: one of the page's assets; another name is `not_found`.
pub async fn asset(Path(name): Path<String>) -> Result<Response, HttpError> {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => Ok(serve(a)),
        None => Err(super::error::not_found().await),
    }
}

fn serve(asset: &Asset) -> Response {
    let mut resp = asset.body.into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // A new walletd may serve new assets: the browser asks again rather than mixing versions.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ui_policy_names_only_the_pages_own_host() {
        // Proves the page's policy adds its own host's WebSocket origins, and that a Host
        // header trying to widen the policy adds nothing.
        let p = page_policy(Some("127.0.0.1:8080"));
        assert!(
            p.contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"),
            "{p}"
        );
        assert!(p.contains("default-src 'none'") && p.contains("script-src 'self';"));
        for bad in [
            "evil.example; script-src *",
            "a b",
            "",
            "x\"",
            &"h".repeat(HOST_BYTES_MAX + 1),
        ] {
            assert_eq!(page_policy(Some(bad)), CONTENT_SECURITY_POLICY, "{bad:?}");
        }
        assert_eq!(page_policy(None), CONTENT_SECURITY_POLICY);
    }

    #[test]
    fn ui_page_loads_only_embedded_assets() {
        // Proves the page names no outside origin and no inline script or style, and that
        // every asset it loads is one the node serves.
        let html = PAGE.body;
        for banned in [
            "http://", "https://", "//cdn", "<style", " style=", "onclick", "onload",
        ] {
            assert!(!html.contains(banned), "index.html contains {banned:?}");
        }
        assert!(!html.contains("<script>"), "no inline script");
        for link in html.split("\"/ui/").skip(1) {
            let name = link.split('"').next().unwrap();
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "index.html loads /ui/{name}, which is not embedded"
            );
        }
        for a in ASSETS {
            assert!(
                html.contains(&format!("\"/ui/{}\"", a.name)),
                "{} is embedded but not loaded",
                a.name
            );
        }
        assert!(!ASSETS[0].body.contains("eval("), "no eval in app.js");
    }
}
