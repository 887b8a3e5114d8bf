//! The upstream client: one host, no redirects followed, `Accept-Encoding: gzip` decoded
//! here, bodies capped at 64 MiB after decompression, one timeout for the whole exchange.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;

use super::ProxyError;

/// Largest upstream body, counted after decompression.
pub const MAX_BODY: usize = 64 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An upstream answer (any status).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
}

pub struct Upstream {
    base: String,
    host: String,
    client: reqwest::Client,
    timeout: Duration,
}

impl Upstream {
    /// `base` is the checked `upstream` setting (scheme://host[:port], no trailing slash).
    pub fn new(base: &str, timeout: Duration) -> Result<Self, ProxyError> {
        let bad = |reason: String| ProxyError::Upstream {
            url: base.to_string(),
            reason,
        };
        let url = reqwest::Url::parse(base).map_err(|e| bad(format!("not a valid URL: {e}")))?;
        let client = reqwest::Client::builder()
            .user_agent(format!("plesk-reseller-agent-catalog-proxy/{}", crate::VERSION))
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| bad(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Upstream {
            base: base.trim_end_matches('/').to_string(),
            host: url.host_str().unwrap_or_default().to_string(),
            client,
            timeout,
        })
    }

    /// The upstream URL for an origin-form `path_and_query`, or why it cannot be sent unchanged.
    pub fn url_for(&self, path_and_query: &str) -> Result<reqwest::Url, ProxyError> {
        let full = format!("{}{}", self.base, path_and_query);
        let url = reqwest::Url::parse(&full).map_err(|_| ProxyError::Target {
            reason: "the request target is not a valid URL path",
        })?;
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        // The URL parser normalises some bytes; the contract forwards byte for byte or not at all.
        if url.host_str() != Some(self.host.as_str()) || url.path() != path || url.query() != query {
            return Err(ProxyError::Target {
                reason: "the request target cannot be forwarded unchanged",
            });
        }
        Ok(url)
    }

    /// One GET; `Err` is a sentence naming the upstream URL.
    pub async fn get(&self, url: reqwest::Url) -> Result<Answer, ProxyError> {
        let shown = url.to_string();
        match tokio::time::timeout(self.timeout, self.exchange(url)).await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(reason)) => Err(ProxyError::Upstream { url: shown, reason }),
            Err(_) => Err(ProxyError::Upstream {
                url: shown,
                reason: format!("no complete answer within {} s", self.timeout.as_secs_f64()),
            }),
        }
    }

    async fn exchange(&self, url: reqwest::Url) -> Result<Answer, String> {
        let mut resp = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT_ENCODING, "gzip")
            .send()
            .await
            .map_err(|e| reason(&e))?;
        let status = resp.status().as_u16();
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(|s| s.trim().to_ascii_lowercase())
        };
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let gzip = match header(reqwest::header::CONTENT_ENCODING).as_deref() {
            None | Some("") | Some("identity") => false,
            Some("gzip") | Some("x-gzip") => true,
            Some(other) => return Err(format!("unsupported Content-Encoding {other:?}")),
        };
        if !gzip && resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(too_large());
        }
        let mut sink = Capped(Vec::new());
        let mut decoder = gzip.then(|| flate2::write::MultiGzDecoder::new(Capped(Vec::new())));
        while let Some(chunk) = resp.chunk().await.map_err(|e| reason(&e))? {
            let res = match decoder.as_mut() {
                Some(d) => d.write_all(&chunk),
                None => sink.write_all(&chunk),
            };
            res.map_err(|e| decode_error(&e))?;
        }
        let body = match decoder {
            Some(d) => d.finish().map_err(|e| decode_error(&e))?.0,
            None => sink.0,
        };
        Ok(Answer {
            status,
            content_type,
            body: body.into(),
        })
    }
}

/// A Vec that refuses to grow past [`MAX_BODY`], so a gzip bomb stops at the cap.
struct Capped(Vec<u8>);

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_BODY {
            return Err(std::io::Error::new(std::io::ErrorKind::FileTooLarge, too_large()));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn too_large() -> String {
    format!("the body is larger than {} MiB", MAX_BODY >> 20)
}

fn decode_error(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::FileTooLarge {
        too_large()
    } else {
        format!("the gzip body cannot be decoded ({e})")
    }
}

fn reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    if e.is_connect() {
        return "cannot connect".into();
    }
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = s.to_string();
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_built_byte_for_byte_or_refused() {
        let u = Upstream::new("http://127.0.0.1:9", Duration::from_secs(1)).unwrap();
        let url = u
            .url_for("/api/v4/packages?platform=unix&with-hidden&locale=en-US")
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/api/v4/packages?platform=unix&with-hidden&locale=en-US"
        );
        assert!(u.url_for("/api/x\\y").is_err(), "a backslash would become a slash");
        assert!(u.url_for("@evil.example/x").is_err());
        assert_eq!(u.url_for("/api/%7e?a=%20").unwrap().path(), "/api/%7e");
    }

    #[test]
    fn capped_sink_stops_a_gzip_bomb() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..65 {
            enc.write_all(&zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        let mut d = flate2::write::MultiGzDecoder::new(Capped(Vec::new()));
        let err = d.write_all(&bomb).and_then(|_| d.try_finish()).unwrap_err();
        assert_eq!(decode_error(&err), too_large());
    }
}
