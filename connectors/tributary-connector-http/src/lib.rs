//! Guarded HTTP for connectors that call APIs at addresses a user configures.
//!
//! - [`check_url`] refuses schemes other than `https` and addresses on the
//!   internal network (private, loopback, link-local, unique-local, CGNAT,
//!   unspecified, multicast), unless [`NetworkPolicy::allow_private`] is set
//!   (local tests and mocks only).
//! - [`client`] builds a `reqwest` client that re-checks every address a
//!   host name resolves to at connect time (so DNS rebinding cannot slip
//!   past the first check), never follows redirects and never uses a proxy.
//! - [`read_body`] reads a response body up to a size cap, so a hostile or
//!   broken server cannot exhaust memory.
//! - [`parse_json_exact`] parses JSON keeping every number's exact digits
//!   (as a string), because money must never pass through a float.
//! - [`oauth`] keeps one connection's OAuth2 tokens: refreshed before they
//!   expire, saved before they are used.

pub mod oauth;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
pub use url::Url;

/// Which outbound addresses connectors may reach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// Allow `http` and internal addresses. For tests against local mocks;
    /// never for production.
    pub allow_private: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("url {url:?} is refused: {why}")]
    Refused { url: String, why: String },
    #[error("response body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("response body could not be read: {0}")]
    Body(String),
    #[error("response is not valid JSON: {0}")]
    Json(String),
}

/// Parses `text` and checks it against `policy`: scheme, credentials in the
/// URL, and the host when it is an IP address (names are checked again when
/// they resolve, by the [`client`]'s resolver).
pub fn check_url(text: &str, policy: NetworkPolicy) -> Result<Url, HttpError> {
    let refused = |why: &str| HttpError::Refused {
        url: text.to_string(),
        why: why.to_string(),
    };
    let url = Url::parse(text).map_err(|e| refused(&e.to_string()))?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_private => {}
        "http" => return Err(refused("only https is allowed")),
        other => return Err(refused(&format!("scheme {other:?} is not allowed"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refused("credentials in the URL are not allowed"));
    }
    match url.host() {
        None => return Err(refused("it has no host")),
        Some(url::Host::Ipv4(ip)) => check_ip(IpAddr::V4(ip), policy).map_err(|w| refused(&w))?,
        Some(url::Host::Ipv6(ip)) => check_ip(IpAddr::V6(ip), policy).map_err(|w| refused(&w))?,
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if !policy.allow_private && (name == "localhost" || name.ends_with(".localhost")) {
                return Err(refused("localhost is an internal address"));
            }
        }
    }
    Ok(url)
}

/// Whether `ip` may be reached under `policy`, or why not.
pub fn check_ip(ip: IpAddr, policy: NetworkPolicy) -> Result<(), String> {
    if policy.allow_private || is_public(ip) {
        Ok(())
    } else {
        Err(format!("{ip} is an internal address"))
    }
}

/// Whether `ip` is an address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local fec0::/10
                || v6.segments()[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible
                || first == 0x64 && v6.segments()[1] == 0xff9b // NAT64 64:ff9b::/96
                || (first == 0x2001 && v6.segments()[1] == 0xdb8)) // documentation
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local() // 169.254/16, cloud metadata endpoints
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240)
}

/// Resolves names with the system resolver and drops every address the
/// policy refuses; a name left with no address fails.
struct GuardedResolver {
    policy: NetworkPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| check_ip(a.ip(), policy).is_ok())
                .collect();
            if allowed.is_empty() {
                return Err(format!(
                    "{host} resolves only to refused addresses ({}): internal addresses are not allowed",
                    found
                        .iter()
                        .map(|a| a.ip().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
                .into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// A client that only reaches what `policy` allows, follows no redirect,
/// uses no proxy, and gives up on a request after `timeout`.
pub fn client(policy: NetworkPolicy, timeout: Duration) -> Result<reqwest::Client, HttpError> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .user_agent(concat!("tributary/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| HttpError::Body(format!("cannot build the HTTP client: {e}")))
}

/// Reads `response`'s body, refusing more than `limit` bytes.
pub async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, HttpError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(HttpError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| HttpError::Body(e.to_string()))?
    {
        if body.len() + chunk.len() > limit {
            return Err(HttpError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parses JSON with every number kept as the string of its exact digits
/// (`12.30` stays `"12.30"`), so no amount ever passes through a float.
pub fn parse_json_exact(bytes: &[u8]) -> Result<serde_json::Value, HttpError> {
    let quoted = quote_numbers(bytes);
    serde_json::from_slice(&quoted).map_err(|e| HttpError::Json(e.to_string()))
}

/// Wraps every number token outside strings in quotes. Invalid JSON stays
/// invalid, and the parser then says where.
fn quote_numbers(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 8);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'"' {
            // Copy the whole string, escapes included.
            let start = i;
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(bytes.len());
            out.extend_from_slice(&bytes[start..i]);
        } else if b == b'-' || b.is_ascii_digit() {
            let start = i;
            while i < bytes.len()
                && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
            {
                i += 1;
            }
            let token = &bytes[start..i];
            if is_json_number(token) {
                out.push(b'"');
                out.extend_from_slice(token);
                out.push(b'"');
            } else {
                // Left as it is: the parser rejects it and says where.
                out.extend_from_slice(token);
            }
        } else {
            out.push(b);
            i += 1;
        }
    }
    out
}

/// Whether `token` is a number by JSON's grammar:
/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn is_json_number(token: &[u8]) -> bool {
    let digits = |t: &[u8]| t.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut rest = token.strip_prefix(b"-").unwrap_or(token);
    let int = digits(rest);
    if int == 0 || (int > 1 && rest[0] == b'0') {
        return false;
    }
    rest = &rest[int..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = digits(frac);
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    if let Some(exp) = rest.strip_prefix(b"e").or_else(|| rest.strip_prefix(b"E")) {
        let exp = exp
            .strip_prefix(b"+")
            .or_else(|| exp.strip_prefix(b"-"))
            .unwrap_or(exp);
        let n = digits(exp);
        if n == 0 {
            return false;
        }
        rest = &exp[n..];
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: NetworkPolicy = NetworkPolicy {
        allow_private: false,
    };
    const LOCAL: NetworkPolicy = NetworkPolicy {
        allow_private: true,
    };

    #[test]
    fn internal_addresses_are_refused() {
        for url in [
            "https://127.0.0.1/x",
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[fe80::1]/",
            "https://[fd00::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://localhost/",
            "https://api.localhost/",
        ] {
            let err = check_url(url, STRICT).unwrap_err();
            assert!(matches!(err, HttpError::Refused { .. }), "{url}: {err}");
            assert!(check_url(url, LOCAL).is_ok(), "{url} allowed for tests");
        }
    }

    #[test]
    fn only_https_unless_local() {
        assert!(check_url("https://api.xero.com/api.xro/2.0", STRICT).is_ok());
        assert!(check_url("https://8.8.8.8/", STRICT).is_ok());
        assert!(check_url("http://api.xero.com/", STRICT).is_err());
        assert!(check_url("http://127.0.0.1:4010/", LOCAL).is_ok());
        for url in [
            "file:///etc/passwd",
            "gopher://x/",
            "ftp://x/",
            "https://user:pw@api.xero.com/",
            "not a url",
        ] {
            assert!(check_url(url, LOCAL).is_err(), "{url}");
        }
    }

    #[tokio::test]
    async fn names_resolving_inside_are_refused_at_connect() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let app = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
            axum::serve(listener, app).await.unwrap();
        });
        // Client requests do not go through `check_url`: the resolver alone
        // must refuse a name that resolves to an internal address.
        let strict = client(
            NetworkPolicy {
                allow_private: true,
            },
            Duration::from_secs(5),
        );
        let url = format!("http://localhost:{port}/");
        assert_eq!(
            strict
                .unwrap()
                .get(&url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
            "hi"
        );
        let guarded = client(STRICT, Duration::from_secs(5)).unwrap();
        let err = guarded.get(&url).send().await.unwrap_err();
        let chain = format!("{:?}", err);
        assert!(
            chain.contains("internal addresses are not allowed"),
            "{chain}"
        );
    }

    #[tokio::test]
    async fn redirects_are_not_followed_and_bodies_are_capped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let app = axum::Router::new()
                .route(
                    "/moved",
                    axum::routing::get(|| async {
                        (
                            axum::http::StatusCode::FOUND,
                            [("location", "http://169.254.169.254/")],
                        )
                    }),
                )
                .route("/big", axum::routing::get(|| async { "x".repeat(5000) }));
            axum::serve(listener, app).await.unwrap();
        });
        let http = client(LOCAL, Duration::from_secs(5)).unwrap();
        let moved = http
            .get(format!("http://127.0.0.1:{port}/moved"))
            .send()
            .await
            .unwrap();
        assert_eq!(moved.status(), 302);
        let big = http
            .get(format!("http://127.0.0.1:{port}/big"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            read_body(big, 4096).await.unwrap_err(),
            HttpError::TooLarge { limit: 4096 }
        );
    }

    #[test]
    fn numbers_keep_their_exact_digits() {
        let v = parse_json_exact(
            br#"{"Total": 46.10, "Big": 12345678901234567.8901, "Neg": -0.5, "E": 1e3,
                 "Text": "a \"46.1\" b\\", "List": [1, 2.25], "T": true, "N": null}"#,
        )
        .unwrap();
        assert_eq!(v["Total"], "46.10");
        assert_eq!(v["Big"], "12345678901234567.8901");
        assert_eq!(v["Neg"], "-0.5");
        assert_eq!(v["E"], "1e3");
        assert_eq!(v["Text"], "a \"46.1\" b\\");
        assert_eq!(v["List"][1], "2.25");
        assert_eq!(v["T"], true);
        assert!(v["N"].is_null());
    }

    #[test]
    fn broken_json_is_an_error_not_a_panic() {
        for bad in [
            &b"{\"a\": "[..],
            b"{\"a\": \"unterminated",
            b"\"\\",
            b"<html>502 Bad Gateway</html>",
            b"",
            b"{\"a\": 1.2.3}",
            b"{\"a\": 01}",
            b"{\"a\": -}",
            b"{\"a\": 1e}",
            b"{\"a\": 1.}",
        ] {
            assert!(
                parse_json_exact(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
