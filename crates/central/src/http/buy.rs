//! `GET /buy` (contract section 7): Plesk's Buy Now button, pointed here by the fleet's
//! `buy_url`. An extension in `[sell]` and a known key number: 302 to `[store] buy_redirect`
//! with the parameters filled in; otherwise a short page saying it is not sold here. Nothing
//! is bought or queued by this request.

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use plesk_reseller_protocol as proto;

use crate::fleet::store::StoreError;
use crate::http::app::App;

/// Longest query string taken, and longest single value: Plesk's parameters are short.
const MAX_QUERY: usize = 4096;
const MAX_VALUE: usize = 512;

/// The Buy Now parameters Plesk sends.
#[derive(Debug, Default, PartialEq)]
pub struct BuyParams {
    pub extension_id: String,
    pub kn: String,
    pub token: String,
    pub product_id: String,
}

/// Reads the query, or names the parameter that is wrong.
pub fn parse(query: &str) -> Result<BuyParams, String> {
    if query.len() > MAX_QUERY {
        return Err(format!("the query is longer than {MAX_QUERY} bytes"));
    }
    let mut p = BuyParams::default();
    for pair in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = decode(v).ok_or_else(|| format!("the parameter {k} is not valid percent-encoded UTF-8"))?;
        if v.len() > MAX_VALUE || v.chars().any(char::is_control) {
            return Err(format!(
                "the parameter {k} is longer than {MAX_VALUE} bytes or holds control characters"
            ));
        }
        match k {
            "extension-id" => p.extension_id = v,
            "kn" => p.kn = v,
            "token" => p.token = v,
            "product-id" => p.product_id = v,
            _ => {} // Plesk may add more; they are not passed on.
        }
    }
    if p.extension_id.is_empty() {
        return Err("the parameter extension-id is missing".into());
    }
    Ok(p)
}

fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            c => c.to_string(),
        })
        .collect()
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body><h1>{t}</h1><p>{x}</p></body></html>\n",
        t = escape(title),
        x = escape(text)
    );
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

/// Fills `{extension-id}`, `{kn}`, `{product-id}`, `{token}`, `{host}`, each URL-encoded.
pub fn fill(template: &str, p: &BuyParams, kn: &str, host: &str) -> String {
    let enc = proto::paths::encode_segment;
    template
        .replace("{extension-id}", &enc(&p.extension_id))
        .replace("{kn}", &enc(kn))
        .replace("{product-id}", &enc(&p.product_id))
        .replace("{token}", &enc(&p.token))
        .replace("{host}", &enc(host))
}

pub async fn buy(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    let p = match parse(q.as_deref().unwrap_or("")) {
        Ok(p) => p,
        Err(why) => return page(StatusCode::BAD_REQUEST, "Not a Buy Now request", &why),
    };
    let not_sold = || {
        page(
            StatusCode::NOT_FOUND,
            "Not sold here",
            &format!(
                "The extension {} is not sold by this store for this server. Please contact your provider.",
                p.extension_id
            ),
        )
    };
    if !app.config.sell.iter().any(|(id, _)| *id == p.extension_id) {
        return not_sold();
    }
    let Some(kn) = proto::normalize_key_number(&p.kn) else {
        return not_sold();
    };
    let host = match app.store.host_by_key_number(&kn).await {
        Ok(h) => h,
        // Known, but to several hosts: the store still gets the key number.
        Err(StoreError::AmbiguousKeyNumber { .. }) => String::new(),
        Err(StoreError::NoKeyNumber(_)) => return not_sold(),
        Err(e) => {
            tracing::error!("{e}");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again later",
                "The store cannot be reached just now.",
            );
        }
    };
    let Some(template) = &app.config.buy_redirect else {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not sold here",
            "This store has no Buy Now page configured yet.",
        );
    };
    let to = fill(template, &p, &kn, &host);
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_decoded_bounded_and_filled_encoded() {
        let p = parse("extension-id=seo%20tool&kn=PLSK.12345678.0001&token=a%2Bb&product-id=7&x=1").unwrap();
        assert_eq!(p.extension_id, "seo tool");
        assert_eq!(p.token, "a+b");
        let url = fill(
            "https://shop/cart?e={extension-id}&kn={kn}&t={token}&p={product-id}&h={host}",
            &p,
            "PLSK.12345678.0001",
            "web 1",
        );
        assert_eq!(
            url,
            "https://shop/cart?e=seo%20tool&kn=PLSK.12345678.0001&t=a%2Bb&p=7&h=web%201"
        );
        assert!(parse("kn=1").unwrap_err().contains("extension-id"));
        assert!(parse("extension-id=%ZZ").unwrap_err().contains("extension-id"));
        assert!(parse(&format!("extension-id={}", "a".repeat(600))).is_err());
        assert!(parse("extension-id=a%0Ab").is_err());
    }

    #[test]
    fn the_page_escapes_what_it_shows() {
        assert_eq!(escape("<script>\"&'"), "&lt;script&gt;&quot;&amp;&#39;");
    }
}
