//! Filtering `packages` and `categories` without touching what is kept: the upstream body is
//! parsed into borrowed [`RawValue`]s, and kept items are copied as the upstream's own bytes,
//! so every field, field order, number format and escape survives.

use std::collections::HashSet;
use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::allow::Snapshot;

/// The host whose `buy_url`s mark an extension as sold by Plesk.
pub const PLESK_SHOP_HOST: &str = "go.plesk.com";

/// True when `buy_url` parses as an absolute URL whose host is go.plesk.com (any scheme, any case).
pub fn sold_by_plesk(buy_url: &str) -> bool {
    reqwest::Url::parse(buy_url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.eq_ignore_ascii_case(PLESK_SHOP_HOST)))
        .unwrap_or(false)
}

/// A parsed `packages` body.
#[derive(Debug)]
pub struct Packages {
    body: Bytes,
    items: Vec<Item>,
}

#[derive(Debug)]
struct Item {
    start: usize,
    end: usize,
    code: Option<String>,
    sold: bool,
}

/// What a `packages` response shows for one allow list.
#[derive(Debug)]
pub struct PackagesView {
    pub body: Bytes,
    pub hidden: usize,
}

impl Packages {
    fn hidden(&self, item: &Item, allow: &Snapshot) -> bool {
        item.sold && !item.code.as_deref().is_some_and(|c| allow.contains(c))
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The body minus hidden items; the upstream bytes themselves when nothing is hidden.
    pub fn render(&self, allow: &Snapshot) -> PackagesView {
        let hidden = self.items.iter().filter(|i| self.hidden(i, allow)).count();
        if hidden == 0 {
            return PackagesView {
                body: self.body.clone(),
                hidden,
            };
        }
        let mut out = Vec::with_capacity(self.body.len());
        out.push(b'[');
        let mut first = true;
        for item in self.items.iter().filter(|i| !self.hidden(i, allow)) {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(&self.body[item.start..item.end]);
        }
        out.push(b']');
        PackagesView {
            body: out.into(),
            hidden,
        }
    }

    /// Codes of the items shown under `allow`.
    pub fn shown_codes(&self, allow: &Snapshot) -> HashSet<&str> {
        self.items
            .iter()
            .filter(|i| !self.hidden(i, allow))
            .filter_map(|i| i.code.as_deref())
            .collect()
    }
}

/// Parses a `packages` body: a JSON array of objects, else an error sentence.
pub fn parse_packages(body: Bytes) -> Result<Packages, BadBody> {
    let raws: Vec<&RawValue> = serde_json::from_slice(&body).map_err(|e| not_array("packages", &e))?;
    let mut items = Vec::with_capacity(raws.len());
    for (n, raw) in raws.iter().enumerate() {
        let (start, end) = span(&body, raw)?;
        let probe: Probe =
            serde_json::from_str(raw.get()).map_err(|e| format!("packages item {n} is not a JSON object ({e})"))?;
        items.push(Item {
            start,
            end,
            sold: probe.buy_url.as_deref().is_some_and(sold_by_plesk),
            code: probe.code,
        });
    }
    Ok(Packages { body, items })
}

/// A parsed `categories` body.
#[derive(Debug)]
pub struct Categories {
    body: Bytes,
    items: Vec<Category>,
}

#[derive(Debug)]
struct Category {
    start: usize,
    end: usize,
    /// Filled only when the object has a non-null `top_packages`.
    fields: Vec<Field>,
}

#[derive(Debug)]
struct Field {
    key: String,
    start: usize,
    end: usize,
    /// For `top_packages` arrays: each entry's span and string `code`.
    entries: Option<Vec<(usize, usize, Option<String>)>>,
}

impl Categories {
    /// The body with each `top_packages` reduced to entries whose code `keep` accepts.
    pub fn render(&self, keep: impl Fn(&str) -> bool) -> Bytes {
        let kept = |e: &(usize, usize, Option<String>)| e.2.as_deref().is_some_and(&keep);
        let changed = |c: &Category| {
            c.fields
                .iter()
                .any(|f| f.entries.as_ref().is_some_and(|es| !es.iter().all(kept)))
        };
        if !self.items.iter().any(changed) {
            return self.body.clone();
        }
        let mut out = Vec::with_capacity(self.body.len());
        out.push(b'[');
        for (n, cat) in self.items.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            if !changed(cat) {
                out.extend_from_slice(&self.body[cat.start..cat.end]);
                continue;
            }
            out.push(b'{');
            for (k, f) in cat.fields.iter().enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                // Serialising a String cannot fail.
                out.extend_from_slice(serde_json::to_string(&f.key).unwrap_or_default().as_bytes());
                out.push(b':');
                match &f.entries {
                    None => out.extend_from_slice(&self.body[f.start..f.end]),
                    Some(entries) => {
                        out.push(b'[');
                        for (i, e) in entries.iter().filter(|e| kept(e)).enumerate() {
                            if i > 0 {
                                out.push(b',');
                            }
                            out.extend_from_slice(&self.body[e.0..e.1]);
                        }
                        out.push(b']');
                    }
                }
            }
            out.push(b'}');
        }
        out.push(b']');
        out.into()
    }
}

/// Parses a `categories` body: a JSON array of objects whose `top_packages`, when present
/// and not null, is an array.
pub fn parse_categories(body: Bytes) -> Result<Categories, BadBody> {
    let raws: Vec<&RawValue> = serde_json::from_slice(&body).map_err(|e| not_array("categories", &e))?;
    let mut items = Vec::with_capacity(raws.len());
    for (n, raw) in raws.iter().enumerate() {
        let (start, end) = span(&body, raw)?;
        let obj: RawObject =
            serde_json::from_str(raw.get()).map_err(|e| format!("categories item {n} is not a JSON object ({e})"))?;
        let has_top = obj.0.iter().any(|(k, v)| k == "top_packages" && v.get() != "null");
        let mut fields = Vec::new();
        if has_top {
            for (key, v) in obj.0 {
                let (fs, fe) = span(&body, v)?;
                let entries = if key == "top_packages" && v.get() != "null" {
                    let list: Vec<&RawValue> = serde_json::from_str(v.get())
                        .map_err(|_| format!("categories item {n}: top_packages is neither an array nor null"))?;
                    let mut entries = Vec::with_capacity(list.len());
                    for e in list {
                        let (es, ee) = span(&body, e)?;
                        // An entry that is not an object has no code and is dropped.
                        let code = serde_json::from_str::<Probe>(e.get()).ok().and_then(|p| p.code);
                        entries.push((es, ee, code));
                    }
                    Some(entries)
                } else {
                    None
                };
                fields.push(Field {
                    key,
                    start: fs,
                    end: fe,
                    entries,
                });
            }
        }
        items.push(Category { start, end, fields });
    }
    Ok(Categories { body, items })
}

/// Why an upstream body cannot be filtered (the caller adds the URL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadBody(pub String);

impl From<String> for BadBody {
    fn from(reason: String) -> Self {
        BadBody(reason)
    }
}

fn not_array(what: &str, e: &serde_json::Error) -> String {
    format!("the {what} body is not a JSON array ({e})")
}

/// Where a borrowed raw value lies in `body`.
fn span(body: &[u8], raw: &RawValue) -> Result<(usize, usize), String> {
    let base = body.as_ptr() as usize;
    let start = (raw.get().as_ptr() as usize).wrapping_sub(base);
    let end = start.wrapping_add(raw.get().len());
    if start <= end && end <= body.len() {
        Ok((start, end))
    } else {
        Err("internal error: a JSON value does not lie in the body".into())
    }
}

/// `code` and `buy_url` of an object, when they are strings; every other field skipped unparsed.
#[derive(Debug, Default)]
struct Probe {
    code: Option<String>,
    buy_url: Option<String>,
}

impl<'de> serde::Deserialize<'de> for Probe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Probe;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Probe, A::Error> {
                let mut p = Probe::default();
                while let Some(key) = map.next_key::<Key>()? {
                    // A repeated key: the last one wins, as in serde_json's own maps.
                    match key {
                        Key::Code => p.code = as_string(map.next_value()?),
                        Key::BuyUrl => p.buy_url = as_string(map.next_value()?),
                        Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(p)
            }
        }
        d.deserialize_map(V)
    }
}

fn as_string(v: serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    }
}

enum Key {
    Code,
    BuyUrl,
    Other,
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
                Ok(match s {
                    "code" => Key::Code,
                    "buy_url" => Key::BuyUrl,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// An object's fields in order, values unparsed.
struct RawObject<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawObject<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject<'a>, A::Error> {
                let mut fields = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    let v: &'de RawValue = map.next_value()?;
                    fields.push((k, v));
                }
                Ok(RawObject(fields))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(codes: &[&str]) -> Snapshot {
        Snapshot {
            codes: codes.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn plesk_host_rule() {
        assert!(sold_by_plesk("https://go.plesk.com/buy-plesk-ext/x?kn=1"));
        assert!(sold_by_plesk("HTTP://GO.Plesk.Com/x"));
        assert!(sold_by_plesk("ftp://go.plesk.com"));
        assert!(sold_by_plesk("https://user@go.plesk.com:8443/x"));
        assert!(!sold_by_plesk("https://go.plesk.com.example.net/x"));
        assert!(!sold_by_plesk("https://notgo.plesk.com/x"));
        assert!(!sold_by_plesk("https://example.com/go.plesk.com"));
        assert!(!sold_by_plesk("go.plesk.com/x"));
        assert!(!sold_by_plesk(""));
        assert!(!sold_by_plesk("not a url"));
    }

    #[test]
    fn kept_items_are_byte_exact_and_ordered() {
        let body = br#" [ {"z":1, "code":"a","buy_url":"https://go.plesk.com/a"} ,
            {"code":"b","buy_url":"https://go.plesk.com/b","n":1.50e0,"s":"\u00e9"},{"code":"c","buy_url":null},
            {"buy_url":"https://go.plesk.com/x"}, {"code":5,"buy_url":"https://go.plesk.com/y"},
            {"code":"d","buy_url":12}]"#;
        let p = parse_packages(Bytes::from_static(body)).unwrap();
        let v = p.render(&allow(&["b", "5"]));
        assert_eq!(v.hidden, 3);
        assert_eq!(
            std::str::from_utf8(&v.body).unwrap(),
            r#"[{"code":"b","buy_url":"https://go.plesk.com/b","n":1.50e0,"s":"\u00e9"},{"code":"c","buy_url":null},{"code":"d","buy_url":12}]"#
        );
        let all = p.render(&allow(&["a", "b"]));
        assert_eq!(all.hidden, 2);
        let none_hidden = parse_packages(Bytes::from_static(b"[{\"code\":\"x\"}]  ")).unwrap();
        assert_eq!(&none_hidden.render(&allow(&[])).body[..], b"[{\"code\":\"x\"}]  ");
    }

    #[test]
    fn bad_shapes_are_errors() {
        for body in [
            "",
            "{}",
            "[1]",
            "[{}, []]",
            "[{\"code\":\"a\"}",
            "<html>",
            "[{}] x",
            "null",
        ] {
            assert!(parse_packages(Bytes::from(body)).is_err(), "{body}");
            assert!(parse_categories(Bytes::from(body)).is_err(), "{body}");
        }
        assert!(parse_categories(Bytes::from_static(b"[{\"top_packages\":\"x\"}]")).is_err());
        assert!(parse_packages(Bytes::from_static(b"[]")).unwrap().is_empty());
    }

    #[test]
    fn categories_filter_top_packages_only() {
        let body = br#"[{"code":"sec","top_packages":[{"code":"a","w":1},{"code":"b"},"c",{"code":"z"}],"n":2},
            {"code":"x","top_packages":null},{"code":"y"},{"code":"u","top_packages":[{"code":"a"}]}]"#;
        let c = parse_categories(Bytes::from_static(body)).unwrap();
        let out = c.render(|code| code == "a" || code == "z");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "[{\"code\":\"sec\",\"top_packages\":[{\"code\":\"a\",\"w\":1},{\"code\":\"z\"}],\"n\":2},\
             {\"code\":\"x\",\"top_packages\":null},{\"code\":\"y\"},{\"code\":\"u\",\"top_packages\":[{\"code\":\"a\"}]}]"
        );
    }
}
