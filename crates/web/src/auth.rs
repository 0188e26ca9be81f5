//! The admin token on every dashboard route: as `Authorization: Bearer
//! <token>`, or once as `?token=<token>`, which sets a cookie for the rest of
//! the visit.

use crate::Web;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, DOCTYPE};

const COOKIE: &str = "jagged_admin";

pub(crate) async fn require_admin(State(web): State<Web>, req: Request, next: Next) -> Response {
    let Some(want) = &web.config.admin else { return next.run(req).await };
    // Once as ?token=...: set the cookie and drop the token from the address.
    if let Some(q) = req.uri().query() {
        if let Some(t) = q.split('&').find_map(|kv| kv.strip_prefix("token=")) {
            let t = percent_decode(t);
            if want.matches(&t) {
                let cookie = format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", cookie_safe(&t));
                let mut r = Redirect::to(req.uri().path()).into_response();
                r.headers_mut().insert(header::SET_COOKIE, cookie.parse().expect("a cookie of safe characters"));
                return r;
            }
        }
    }
    if presented(req.headers()).is_some_and(|t| want.matches(&t)) {
        return next.run(req).await;
    }
    let page = html! {
        (DOCTYPE)
        html { head { title { "jagged: admin token required" } } body {
            h1 { "The admin token is required" }
            p { "This coordinator has an admin token. Open this page once as " code { "?token=<JAGGED_ADMIN_TOKEN>" }
                ", or send " code { "Authorization: Bearer <token>" } "." }
        } }
    };
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], Html(page.into_string())).into_response()
}

/// The token a request presents: a bearer header or the dashboard's cookie.
fn presented(h: &HeaderMap) -> Option<String> {
    if let Some(t) = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")) {
        return Some(t.to_string());
    }
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(&format!("{COOKIE}=")).map(percent_decode))
}

/// `%XX` escapes decoded (and `+` as a space, as forms send it).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(v) => {
                    out.push(v);
                    i += 3;
                    continue;
                }
                None => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A token as a cookie value: anything outside the safe set percent-encoded.
fn cookie_safe(t: &str) -> String {
    t.bytes().map(|c| if c.is_ascii_alphanumeric() || b"-_.~".contains(&c) { (c as char).to_string() } else { format!("%{c:02X}") }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_read_from_the_header_or_the_cookie_and_decoded() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=b; jagged_admin=s%3Dcr%2Bet; c=d".parse().unwrap());
        assert_eq!(presented(&h).as_deref(), Some("s=cr+et"));
        h.insert(header::AUTHORIZATION, "Bearer xyz".parse().unwrap());
        assert_eq!(presented(&h).as_deref(), Some("xyz"));
        assert_eq!(presented(&HeaderMap::new()), None);
        assert_eq!(cookie_safe("s=cr+et"), "s%3Dcr%2Bet");
        assert_eq!(percent_decode(&cookie_safe("a b/ü")), "a b/ü");
        assert_eq!(percent_decode("50%"), "50%");
    }
}
