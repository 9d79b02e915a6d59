//! One HTTP request through an axum app, as a browser with a session cookie would send
//! it: shared by the test binaries that drive apps in-process.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// The parts of the session cookie a test looks at.
#[derive(Debug, Default)]
pub struct SetCookie {
    /// The cookie's value: the session id.
    pub value: String,
    attributes: Vec<String>,
}

impl SetCookie {
    /// Whether the cookie carries `attribute` (`HttpOnly`, `Secure`), in any case.
    pub fn has(&self, attribute: &str) -> bool {
        self.attributes
            .iter()
            .any(|a| a.eq_ignore_ascii_case(attribute))
    }

    /// The value of attribute `name` (`Path`, `SameSite`), in any case.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find_map(|a| {
            let (n, v) = a.split_once('=')?;
            n.eq_ignore_ascii_case(name).then_some(v)
        })
    }

    /// `Max-Age`, in seconds.
    pub fn max_age(&self) -> Option<i64> {
        self.attribute("Max-Age").map(|v| v.parse().unwrap())
    }
}

/// One request, with the session cookie `cookie` if given: status, the session's
/// `Set-Cookie` if any, body.
pub async fn request(
    app: &Router,
    uri: &str,
    cookie: Option<&str>,
) -> (StatusCode, Option<SetCookie>, String) {
    let mut req = Request::builder().uri(uri);
    if let Some(value) = cookie {
        req = req.header(header::COOKIE, format!("id={value}"));
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let set = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .find_map(|h| {
            let mut parts = h.split(';').map(str::trim);
            let value = parts.next()?.strip_prefix("id=")?.to_owned();
            Some(SetCookie {
                value,
                attributes: parts.map(str::to_owned).collect(),
            })
        });
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, set, String::from_utf8_lossy(&body).into_owned())
}
