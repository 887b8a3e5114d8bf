//! The lossless panel.ini editor. PHP's INI rules (INI_SCANNER_NORMAL): `;` comments only,
//! `[section]` headers read without trimming inside the brackets and optionally followed by a
//! `;` comment, `key = value`, last assignment wins, case-sensitive names. Every byte outside the managed lines is kept: comments, blank lines,
//! order, spacing, CRLF or LF, a BOM, backslashes.
//!
//! How PHP 8.2's scanner reads a file (checked against `parse_ini_file`), as far as it matters
//! here:
//! - lines end in LF, CRLF or a lone CR; a UTF-8 BOM at the start is skipped;
//! - a header is a `[` in the first column; its name is everything up to the first `]` outside
//!   quotes, spaces included (`[ extensions ]` is ` extensions `), except that spaces next to a
//!   quoted part are dropped (`[ "extensions" ]` is `extensions`); `[` after leading
//!   whitespace is a syntax error, not a header;
//! - `key = value`: leading spaces and tabs before the key and around `=` are dropped, the key
//!   ends at `=` (or at `[` for `key[] =` array entries); a name without `=` is ignored, so `#`
//!   lines are names (PHP 7 dropped `#` comments), not comments;
//! - a repeated `[extensions]` section replaces the earlier one as a whole (PHP 8.2's
//!   `parse_ini_file` does not merge them), so the agent keeps its one assignment of each key
//!   in the last `[extensions]` and removes the others;
//! - a value concatenates bare text (trimmed, ended by `;`), `"double quoted"` parts (may span
//!   lines; `\"` and `\\` are escapes; `${..}` is expanded) and `'single quoted'` parts (raw).

use super::{BUY_URL_KEY, CATALOG_URL_KEY, SECTION};

/// What the agent wants for one managed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wish {
    /// Not managed this time: whatever is in the file stays.
    Leave,
    /// Exactly one `key = "value"` in `[extensions]`. The value has passed [`super::validate`].
    Set(String),
    /// No assignment of the key in `[extensions]`.
    Remove,
}

/// The desired state of both managed keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub buy_url: Wish,
    pub catalog_url: Wish,
}

/// The managed keys' values as PHP reads the file (last assignment in `[extensions]` wins;
/// quotes removed), `None` when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Managed {
    pub buy_url: Option<String>,
    pub catalog_url: Option<String>,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One physical line: `start..content_end` is its text, `content_end..end` its line ending
/// (empty for a last line without one).
#[derive(Debug, Clone, Copy)]
struct Line {
    start: usize,
    content_end: usize,
    end: usize,
}

#[derive(Debug)]
enum Kind {
    /// A section header; `None` when PHP's name for it is not known for sure (or it is broken).
    Header(Option<Vec<u8>>),
    Assign {
        key: Vec<u8>,
        /// `key[...] = value`: an array entry.
        offset: bool,
        value: Vec<u8>,
        /// True when `value` is certainly what PHP reads.
        certain: bool,
    },
    /// A comment, a blank line, a name without value, or something PHP would reject.
    Other { blank: bool },
}

/// A statement: one or more physical lines (a quoted value may span lines).
#[derive(Debug)]
struct Stmt {
    first: usize,
    last: usize,
    kind: Kind,
}

struct Parsed<'a> {
    body: &'a [u8],
    lines: Vec<Line>,
    stmts: Vec<Stmt>,
    /// The last statement runs into an unterminated quote: whatever is appended would be
    /// swallowed by it.
    open_at_eof: bool,
}

fn split_lines(body: &[u8]) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\n' => {
                lines.push(Line {
                    start,
                    content_end: i,
                    end: i + 1,
                });
                i += 1;
                start = i;
            }
            b'\r' => {
                let end = if body.get(i + 1) == Some(&b'\n') { i + 2 } else { i + 1 };
                lines.push(Line {
                    start,
                    content_end: i,
                    end,
                });
                i = end;
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < body.len() {
        lines.push(Line {
            start,
            content_end: body.len(),
            end: body.len(),
        });
    }
    lines
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_eol(b: u8) -> bool {
    b == b'\n' || b == b'\r'
}

/// Bytes PHP reads literally in an unquoted value (and which cannot form a keyword or constant
/// on their own, given the rest of the check in [`read_value`]).
fn is_safe_bare(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"#%*+,-./:?@_".contains(&b)
}

/// What a value (or section name) reads as, and where it ends.
struct ValueRead {
    value: Vec<u8>,
    certain: bool,
    /// Index just past the last byte belonging to the value or its comment, never past a
    /// line ending that closes it.
    end: usize,
    /// Ran into the end of the file inside a quote.
    unterminated: bool,
    /// Only for section names: the closing `]` was found.
    closed: bool,
}

/// Reads a value starting at `pos` the way PHP's scanner does. With `section` set, reads a
/// section name instead: it ends at `]`, is not trimmed, and `;` is an ordinary byte.
fn read_value(body: &[u8], pos: usize, section: bool) -> ValueRead {
    let mut s = ValueScan {
        body,
        pos,
        section,
        out: Vec::new(),
        certain: true,
        quoted_parts: 0,
        bare_bytes: 0,
        protected: 0,
    };
    let mut unterminated = false;
    let mut closed = false;
    if !section {
        s.skip_ws();
    }
    while let Some(&b) = body.get(s.pos) {
        if is_eol(b) {
            break;
        }
        if section && b == b']' {
            closed = true;
            s.pos += 1;
            break;
        }
        if !section && b == b';' {
            s.skip_comment();
            break;
        }
        if b == b'"' || b == b'\'' {
            if !s.quoted(b) {
                unterminated = true;
                break;
            }
            continue;
        }
        s.bare(b);
    }
    s.finish(unterminated, closed)
}

/// [`read_value`] part way: the bytes read so far and what makes them uncertain.
struct ValueScan<'a> {
    body: &'a [u8],
    pos: usize,
    section: bool,
    out: Vec<u8>,
    certain: bool,
    quoted_parts: usize,
    bare_bytes: usize,
    /// Bytes of `out` that came from quotes and must never be trimmed.
    protected: usize,
}

impl ValueScan<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.body.len() && is_ws(self.body[self.pos]) {
            self.pos += 1;
        }
    }

    /// A `;` comment runs to the end of the line.
    fn skip_comment(&mut self) {
        while self.pos < self.body.len() && !is_eol(self.body[self.pos]) {
            self.pos += 1;
        }
    }

    fn trim_tail(&mut self) {
        while self.out.len() > self.protected && self.out.last().is_some_and(|b| is_ws(*b)) {
            self.out.pop();
        }
    }

    /// Reads a quoted part opened by `quote` at `pos`, and the spaces after it. False when the
    /// file ends inside it.
    fn quoted(&mut self, quote: u8) -> bool {
        let body = self.body;
        self.trim_tail();
        self.quoted_parts += 1;
        self.pos += 1;
        let mut done = false;
        while let Some(&c) = body.get(self.pos) {
            if c == quote {
                self.pos += 1;
                done = true;
                break;
            }
            if quote == b'"' && c == b'\\' && matches!(body.get(self.pos + 1), Some(b'"') | Some(b'\\')) {
                self.certain = false;
                self.out.push(body[self.pos + 1]);
                self.pos += 2;
                continue;
            }
            if c == b'\\' || c == b'$' || quote == b'\'' || is_eol(c) {
                self.certain = false;
            }
            self.out.push(c);
            self.pos += 1;
        }
        if !done {
            self.certain = false;
            return false;
        }
        self.protected = self.out.len();
        self.skip_ws();
        true
    }

    /// One byte outside quotes.
    fn bare(&mut self, b: u8) {
        if !is_ws(b) {
            self.bare_bytes += 1;
            if !is_safe_bare(b) {
                self.certain = false;
            }
        } else if self.bare_bytes > 0 && !self.section {
            // Inner spaces are kept by PHP but a URL never has them; stay on the safe side.
            self.certain = false;
        }
        self.out.push(b);
        self.pos += 1;
    }

    fn finish(mut self, unterminated: bool, closed: bool) -> ValueRead {
        if !self.section {
            self.trim_tail();
            if self.quoted_parts > 0 && self.bare_bytes > 0 || self.quoted_parts > 1 {
                self.certain = false;
            }
            if self.quoted_parts == 0 {
                self.keyword();
            }
        }
        ValueRead {
            value: self.out,
            certain: self.certain,
            end: self.pos,
            unterminated,
            closed,
        }
    }

    /// Bare words may be keywords (`on`, `null`) or constants (`E_ALL`): PHP replaces those.
    fn keyword(&mut self) {
        let word = self.out.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_');
        if word && !self.out.is_empty() {
            self.certain = false;
            let lower = self.out.to_ascii_lowercase();
            match lower.as_slice() {
                b"true" | b"on" | b"yes" => self.out = b"1".to_vec(),
                b"false" | b"off" | b"no" | b"none" | b"null" => self.out.clear(),
                _ => {}
            }
        }
    }
}

/// Reads a key line starting at `line.start`: `Some((key, offset, value_start))`.
fn read_key(body: &[u8], line: &Line) -> Option<(Vec<u8>, bool, usize)> {
    let mut i = line.start;
    while i < line.content_end && is_ws(body[i]) {
        i += 1;
    }
    let key_start = i;
    while i < line.content_end && !matches!(body[i], b'=' | b'[' | b';') {
        if b"&|^$~(){}!\"'\0]".contains(&body[i]) {
            return None;
        }
        i += 1;
    }
    let mut key_end = i;
    while key_end > key_start && is_ws(body[key_end - 1]) {
        key_end -= 1;
    }
    if key_end == key_start || i >= line.content_end {
        return None;
    }
    let key = body[key_start..key_end].to_vec();
    match body[i] {
        b'=' => Some((key, false, i + 1)),
        b'[' => {
            // Array entry `key[offset] = value`.
            let close = body[i..line.content_end].iter().position(|b| *b == b']')? + i;
            let mut j = close + 1;
            while j < line.content_end && is_ws(body[j]) {
                j += 1;
            }
            (j < line.content_end && body[j] == b'=').then_some((key, true, j + 1))
        }
        _ => None,
    }
}

fn parse(content: &[u8]) -> Parsed<'_> {
    let body = content.strip_prefix(BOM).unwrap_or(content);
    let lines = split_lines(body);
    let mut stmts = Vec::new();
    let mut open_at_eof = false;
    let mut li = 0;
    while li < lines.len() {
        let line = lines[li];
        let text = &body[line.start..line.content_end];
        let mut last = li;
        let kind = if text.first() == Some(&b'[') {
            let r = read_value(body, line.start + 1, true);
            if r.unterminated {
                open_at_eof = true;
                last = lines.len() - 1;
            }
            Kind::Header((r.closed && r.certain).then_some(r.value))
        } else if let Some((key, offset, vstart)) = read_key(body, &line) {
            let r = read_value(body, vstart, false);
            if r.unterminated {
                open_at_eof = true;
                last = lines.len() - 1;
            } else {
                // The value may have run over line endings inside quotes.
                while last + 1 < lines.len() && lines[last].end <= r.end {
                    last += 1;
                }
            }
            Kind::Assign {
                key,
                offset,
                value: r.value,
                certain: r.certain,
            }
        } else {
            Kind::Other {
                blank: text.iter().all(|b| is_ws(*b)),
            }
        };
        stmts.push(Stmt { first: li, last, kind });
        li = last + 1;
    }
    Parsed {
        body,
        lines,
        stmts,
        open_at_eof,
    }
}

impl Parsed<'_> {
    /// For each statement: is it inside the last `[extensions]` section, the only one PHP
    /// keeps (`parse_ini_file` replaces a repeated section instead of merging it)?
    fn in_last_section(&self) -> Vec<bool> {
        let last_header = self
            .stmts
            .iter()
            .rposition(|s| matches!(&s.kind, Kind::Header(Some(n)) if n == SECTION.as_bytes()));
        let mut inside = self.in_section();
        for (i, v) in inside.iter_mut().enumerate() {
            *v &= last_header.is_some_and(|h| i >= h);
        }
        inside
    }

    /// For each statement: is it inside any `[extensions]` section?
    fn in_section(&self) -> Vec<bool> {
        let mut inside = false;
        self.stmts
            .iter()
            .map(|s| {
                if let Kind::Header(name) = &s.kind {
                    inside = name.as_deref() == Some(SECTION.as_bytes());
                }
                inside
            })
            .collect()
    }

    fn ending(&self, line: usize) -> &[u8] {
        let l = &self.lines[line];
        &self.body[l.content_end..l.end]
    }

    /// The line ending of the nearest line at or before `line` that has one, else the file's
    /// first line ending, else LF.
    fn eol_near(&self, line: usize) -> Vec<u8> {
        (0..=line)
            .rev()
            .chain(0..self.lines.len())
            .map(|i| self.ending(i))
            .find(|e| !e.is_empty())
            .unwrap_or(b"\n")
            .to_vec()
    }
}

/// The assignment line the agent writes.
fn assignment(key: &str, value: &str) -> Vec<u8> {
    format!("{key} = \"{value}\"").into_bytes()
}

/// A value the editor can write so that PHP reads it back unchanged. [`super::validate`] is
/// stricter; this guard only keeps a caller's mistake from breaking the file.
fn writable(value: &str) -> bool {
    !value
        .bytes()
        .any(|b| b == b'"' || b == b'\\' || b == b'$' || b < 0x20 || b == 0x7f)
}

#[derive(Clone, PartialEq)]
enum Action {
    Keep,
    Delete,
    Replace(Vec<u8>),
}

/// Returns the file content with `desired` applied. Equal to `original` when the file
/// already is in the desired state (the caller then does not write).
///
/// A `Set` value that could not be written safely (a `"`, `\`, `$` or control character;
/// [`super::validate`] refuses those first) is treated as `Leave`. Nothing is added to a file
/// that ends inside an unterminated quote, since PHP would read the addition as part of the
/// quoted text.
pub fn apply(original: &[u8], desired: &Desired) -> Vec<u8> {
    let p = parse(original);
    let mut edits = Edits {
        inside: p.in_section(),
        in_last: p.in_last_section(),
        actions: vec![Action::Keep; p.stmts.len()],
        additions: Vec::new(),
    };
    for (key, wish) in [(BUY_URL_KEY, &desired.buy_url), (CATALOG_URL_KEY, &desired.catalog_url)] {
        edits.plan(&p, key, wish);
    }
    let unchanged = edits.additions.is_empty() && edits.actions.iter().all(|a| *a == Action::Keep);
    if unchanged {
        return original.to_vec();
    }
    edits.write(original, &p)
}

/// What [`apply`] does to each statement, and the assignments it adds.
struct Edits {
    /// Per statement: inside any `[extensions]`.
    inside: Vec<bool>,
    /// Per statement: inside the last `[extensions]`, the one PHP reads.
    in_last: Vec<bool>,
    actions: Vec<Action>,
    additions: Vec<Vec<u8>>,
}

impl Edits {
    /// Decides the actions for one managed key.
    fn plan(&mut self, p: &Parsed<'_>, key: &str, wish: &Wish) {
        let found: Vec<usize> = p
            .stmts
            .iter()
            .enumerate()
            .filter(|(i, s)| self.inside[*i] && matches!(&s.kind, Kind::Assign { key: k, .. } if k == key.as_bytes()))
            .map(|(i, _)| i)
            .collect();
        match wish {
            Wish::Leave => {}
            Wish::Set(v) if !writable(v) => {}
            Wish::Remove => found.iter().for_each(|i| self.actions[*i] = Action::Delete),
            Wish::Set(v) => {
                let in_sync = found.len() == 1
                    && self.in_last[found[0]]
                    && matches!(&p.stmts[found[0]].kind,
                        Kind::Assign { offset: false, value, certain: true, .. } if value == v.as_bytes());
                if in_sync {
                    return;
                }
                // The one kept must be in the last section, where PHP reads it.
                match found.split_last().filter(|(last, _)| self.in_last[**last]) {
                    Some((last, rest)) => {
                        rest.iter().for_each(|i| self.actions[*i] = Action::Delete);
                        let mut line = assignment(key, v);
                        line.extend_from_slice(p.ending(p.stmts[*last].last));
                        self.actions[*last] = Action::Replace(line);
                    }
                    None if p.open_at_eof => {}
                    None => {
                        found.iter().for_each(|i| self.actions[*i] = Action::Delete);
                        self.additions.push(assignment(key, v));
                    }
                }
            }
        }
    }

    /// Where missing keys go: after the last non-blank statement of the last [extensions];
    /// `None` when there is no such section (or nothing to add).
    fn insert_after(&self, p: &Parsed<'_>) -> Option<usize> {
        if self.additions.is_empty() {
            return None;
        }
        let inside = &self.inside;
        let header = (0..p.stmts.len())
            .rev()
            .find(|i| inside[*i] && matches!(p.stmts[*i].kind, Kind::Header(_)));
        header.map(|h| {
            let end = (h + 1..p.stmts.len()).find(|i| !inside[*i]).unwrap_or(p.stmts.len());
            (h..end)
                .rev()
                .find(|i| !matches!(p.stmts[*i].kind, Kind::Other { blank: true }))
                .unwrap_or(h)
        })
    }

    /// The new content: the BOM if any, each statement kept, replaced or dropped, the
    /// additions in place or in a new section at the end.
    fn write(self, original: &[u8], p: &Parsed<'_>) -> Vec<u8> {
        let insert_after = self.insert_after(p);
        let mut out = Vec::with_capacity(original.len() + 128);
        out.extend_from_slice(&original[..original.len() - p.body.len()]);
        let body_start = out.len();
        for (i, s) in p.stmts.iter().enumerate() {
            match &self.actions[i] {
                Action::Keep => {
                    out.extend_from_slice(&p.body[p.lines[s.first].start..p.lines[s.last].end]);
                }
                Action::Delete => {}
                Action::Replace(bytes) => out.extend_from_slice(bytes),
            }
            if insert_after == Some(i) {
                push_lines(&mut out, body_start, &self.additions, &p.eol_near(s.last));
            }
        }
        if insert_after.is_none() && !self.additions.is_empty() {
            append_section(&mut out, body_start, p, self.additions);
        }
        out
    }
}

/// Appends `lines`, each with `eol`, first ending an unterminated last line of the body
/// (which starts at `body_start`).
fn push_lines(out: &mut Vec<u8>, body_start: usize, lines: &[Vec<u8>], eol: &[u8]) {
    if out.len() > body_start && !out.last().is_some_and(|b| is_eol(*b)) {
        out.extend_from_slice(eol);
    }
    for l in lines {
        out.extend_from_slice(l);
        out.extend_from_slice(eol);
    }
}

/// No [extensions] yet: a blank line, the header and the keys, at the end.
fn append_section(out: &mut Vec<u8>, body_start: usize, p: &Parsed<'_>, additions: Vec<Vec<u8>>) {
    let eol = if p.lines.is_empty() {
        b"\n".to_vec()
    } else {
        p.eol_near(p.lines.len() - 1)
    };
    let mut lines = Vec::new();
    let last_blank = p
        .lines
        .last()
        .is_some_and(|l| p.body[l.start..l.content_end].iter().all(|b| is_ws(*b)));
    if out.len() > body_start && !last_blank {
        lines.push(Vec::new());
    }
    lines.push(format!("[{SECTION}]").into_bytes());
    lines.extend(additions);
    push_lines(out, body_start, &lines, &eol);
}

/// Reads the managed keys' current values.
pub fn read_managed(content: &[u8]) -> Managed {
    let p = parse(content);
    let inside = p.in_last_section();
    let get = |key: &str| {
        let mut value = None;
        for (i, s) in p.stmts.iter().enumerate() {
            if let Kind::Assign {
                key: k,
                offset,
                value: v,
                ..
            } = &s.kind
            {
                if inside[i] && k == key.as_bytes() {
                    // An array entry turns the key into an array: no string value.
                    value = (!offset).then(|| String::from_utf8_lossy(v).into_owned());
                }
            }
        }
        value
    };
    Managed {
        buy_url: get(BUY_URL_KEY),
        catalog_url: get(CATALOG_URL_KEY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(b: &str, c: &str) -> Desired {
        Desired {
            buy_url: Wish::Set(b.into()),
            catalog_url: Wish::Set(c.into()),
        }
    }

    fn apply_str(s: &str, d: &Desired) -> String {
        String::from_utf8(apply(s.as_bytes(), d)).unwrap()
    }

    #[test]
    fn empty_file_gets_section_without_leading_blank_line() {
        let out = apply_str("", &set("https://a.example", "http://p.example:8080"));
        assert_eq!(
            out,
            "[extensions]\nbuyUrl = \"https://a.example\"\ncatalog.url = \"http://p.example:8080\"\n"
        );
    }

    #[test]
    fn in_sync_file_is_returned_as_is_even_with_odd_spacing() {
        let s = "[extensions]\n  buyUrl=\"https://a.example\"   ; mine\ncatalog.url =https://p.example/x\n";
        assert_eq!(apply_str(s, &set("https://a.example", "https://p.example/x")), s);
    }

    #[test]
    fn bare_keyword_or_expression_is_rewritten() {
        let s = "[extensions]\nbuyUrl = on\n";
        assert_eq!(
            apply_str(
                s,
                &Desired {
                    buy_url: Wish::Set("on".into()),
                    catalog_url: Wish::Leave
                }
            ),
            "[extensions]\nbuyUrl = \"on\"\n"
        );
    }

    #[test]
    fn spaced_header_is_not_extensions() {
        let s = "[ extensions ]\nbuyUrl = x\n";
        let d = Desired {
            buy_url: Wish::Set("https://a.example".into()),
            catalog_url: Wish::Leave,
        };
        assert_eq!(
            apply_str(s, &d),
            "[ extensions ]\nbuyUrl = x\n\n[extensions]\nbuyUrl = \"https://a.example\"\n"
        );
        assert_eq!(read_managed(s.as_bytes()), Managed::default());
    }

    #[test]
    fn quoted_header_parts_and_comment_after_header() {
        let s = "[ \"extensions\" ] ; note\nbuyUrl = \"https://old.example\"\n";
        assert_eq!(
            read_managed(s.as_bytes()).buy_url.as_deref(),
            Some("https://old.example")
        );
    }

    #[test]
    fn multi_line_quoted_value_is_one_statement() {
        let s = "[other]\nk = \"a\n[extensions]\nbuyUrl = x\"\n";
        assert_eq!(read_managed(s.as_bytes()), Managed::default());
        let d = Desired {
            buy_url: Wish::Remove,
            catalog_url: Wish::Leave,
        };
        assert_eq!(apply_str(s, &d), s);
    }

    #[test]
    fn unterminated_quote_blocks_additions() {
        let s = "[other]\nk = \"abc\n";
        assert_eq!(apply_str(s, &set("https://a.example", "https://b.example")), s);
    }

    #[test]
    fn remove_keeps_header_and_array_entries_go_too() {
        let s = "[extensions]\nbuyUrl[] = a\nx = 1\nbuyUrl = b\n";
        let d = Desired {
            buy_url: Wish::Remove,
            catalog_url: Wish::Leave,
        };
        assert_eq!(apply_str(s, &d), "[extensions]\nx = 1\n");
    }

    #[test]
    fn value_in_an_earlier_repeated_section_moves_to_the_last_one() {
        // PHP keeps only the last [extensions]: the earlier buyUrl is invisible to it.
        let s = "[extensions]\nbuyUrl = \"https://a.example\"\n[extensions]\nblacklist = x\n";
        assert_eq!(read_managed(s.as_bytes()), Managed::default());
        let d = Desired {
            buy_url: Wish::Set("https://a.example".into()),
            catalog_url: Wish::Leave,
        };
        assert_eq!(
            apply_str(s, &d),
            "[extensions]\n[extensions]\nblacklist = x\nbuyUrl = \"https://a.example\"\n"
        );
    }

    #[test]
    fn insertion_goes_after_last_non_blank_line_of_last_section() {
        let s = "[extensions]\na = 1\n[x]\n[extensions]\nb = 2\n\n\n[debug]\n";
        let d = Desired {
            buy_url: Wish::Leave,
            catalog_url: Wish::Set("https://c.example".into()),
        };
        assert_eq!(
            apply_str(s, &d),
            "[extensions]\na = 1\n[x]\n[extensions]\nb = 2\ncatalog.url = \"https://c.example\"\n\n\n[debug]\n"
        );
    }

    #[test]
    fn unsafe_value_is_left_alone() {
        let s = "[extensions]\nbuyUrl = \"https://a.example\"\n";
        let d = Desired {
            buy_url: Wish::Set("https://x\"y".into()),
            catalog_url: Wish::Leave,
        };
        assert_eq!(apply_str(s, &d), s);
    }

    #[test]
    fn lone_cr_endings_are_lines() {
        let s = "a=1\r[extensions]\rb=2";
        let d = Desired {
            buy_url: Wish::Set("https://a.example".into()),
            catalog_url: Wish::Leave,
        };
        assert_eq!(
            apply_str(s, &d),
            "a=1\r[extensions]\rb=2\rbuyUrl = \"https://a.example\"\r"
        );
    }

    #[test]
    fn hash_lines_are_not_comments_but_not_managed_either() {
        let s = "[extensions]\n# buyUrl = \"https://old.example\"\n";
        assert_eq!(read_managed(s.as_bytes()), Managed::default());
    }
}
