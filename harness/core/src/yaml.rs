//! A YAML tree with a source position on every node (keys included).
//!
//! Parsing goes through serde-saphyr (its [`serde_saphyr::Spanned`] wrapper gives each node's
//! line, column and byte offset); the rest of the crate walks this tree by hand, so it can report
//! every problem of a file at once, be strict in some regions and tolerant in others.

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// Where a node starts in its source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Pos {
    /// 1-based line (0 when unknown).
    pub line: u32,
    /// 1-based column, counted in characters (0 when unknown).
    pub col: u32,
    /// Byte offset of the node in the source text.
    pub offset: usize,
    /// Length in bytes of the node's text, when known (scalars); 0 otherwise.
    pub len: usize,
}

/// A YAML value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `~`, `null` or an empty value.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i128),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order; keys are nodes too.
    Map(Vec<(Node, Node)>),
}

/// A YAML value with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where it is.
    pub pos: Pos,
    /// For numbers and booleans: the source text as written (`1.10`, `0x1F`, `True`), so a value
    /// used as a string keeps its spelling.
    pub raw: Option<String>,
}

/// Errors of this module.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum YamlErrorKind {
    /// The text is not valid YAML (syntax, tabs, duplicate keys, several documents).
    #[error("YAML syntax error")]
    Syntax,
    /// The document exceeds a limit (nesting depth, size, aliases).
    #[error("YAML document exceeds a limit")]
    Limit,
    /// The parser thread could not complete.
    #[error("internal YAML parser failure")]
    Internal,
}

/// A YAML error from the parser, with its position.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    /// What kind of error.
    pub kind: YamlErrorKind,
    /// The parser's message (reworded for users), without location or snippet.
    pub message: String,
    /// Where the parser stopped.
    pub pos: Pos,
}

impl Node {
    /// A node without position (for synthesized values).
    pub fn synthetic(value: Value) -> Self {
        Node {
            value,
            pos: Pos::default(),
            raw: None,
        }
    }

    /// The scalar as text (strings as-is, numbers and booleans formatted); `None` for
    /// null, sequences and mappings.
    pub fn scalar_text(&self) -> Option<String> {
        if let Some(r) = &self.raw
            && matches!(self.value, Value::Bool(_) | Value::Int(_) | Value::Float(_))
        {
            return Some(r.clone());
        }
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(format_float(*f)),
            _ => None,
        }
    }

    /// The string, if this node is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The mapping entries, if this node is a mapping.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The sequence items, if this node is a sequence.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this node is null.
    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// The value of key `key` in this mapping (first occurrence).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key node and value node of `key` in this mapping.
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.scalar_text().as_deref() == Some(key))
            .map(|(k, v)| (k, v))
    }

    /// A short name of the node's kind, for messages.
    pub fn kind_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a sequence",
            Value::Map(_) => "a mapping",
        }
    }

    /// Convert to a JSON value (mapping keys as text).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => {
                if let Ok(v) = i64::try_from(*i) {
                    J::from(v)
                } else if let Ok(v) = u64::try_from(*i) {
                    J::from(v)
                } else {
                    J::String(i.to_string())
                }
            }
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or_else(|| J::String(format_float(*f))),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => {
                let mut m = serde_json::Map::new();
                for (k, v) in entries {
                    m.insert(k.scalar_text().unwrap_or_default(), v.to_json());
                }
                J::Object(m)
            }
        }
    }
}

fn format_float(f: f64) -> String {
    if f.is_nan() {
        ".nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { ".inf".into() } else { "-.inf".into() }
    } else {
        format!("{f}")
    }
}

/// Parse one YAML document into a [`Node`] tree. An empty document is `Null`.
///
/// Nesting deeper than 64 levels, duplicate keys and multiple documents are errors (serde-saphyr's
/// budget and policies), so no input can exhaust the stack.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    if text.trim().is_empty()
        || text.lines().all(|l| {
            let t = l.trim();
            t.is_empty() || t.starts_with('#') || t == "---"
        })
    {
        return Ok(Node::synthetic(Value::Null));
    }
    // Deserializing a nested node costs tens of KiB of stack per level in debug builds, more
    // than a 2 MiB test thread has for the 64 levels serde-saphyr's budget allows. Parse on a
    // thread with a known, large stack (pure computation, no IO); if no thread can be spawned,
    // parse here with a lower depth limit.
    let owned = text.to_string();
    let spawned = std::thread::Builder::new()
        .name("sgsim-yaml".into())
        .stack_size(PARSE_STACK)
        .spawn(move || parse_with_depth(&owned, MAX_DEPTH));
    match spawned {
        Ok(handle) => match handle.join() {
            Ok(r) => r,
            Err(_) => Err(YamlError {
                kind: YamlErrorKind::Internal,
                message: "internal error while parsing YAML".into(),
                pos: Pos::default(),
            }),
        },
        Err(_) => parse_with_depth(text, FALLBACK_MAX_DEPTH),
    }
}

/// Maximum nesting of YAML collections (deeper documents are rejected).
pub const MAX_DEPTH: usize = 64;
const FALLBACK_MAX_DEPTH: usize = 24;
const PARSE_STACK: usize = 64 * 1024 * 1024;

fn parse_with_depth(text: &str, max_depth: usize) -> Result<Node, YamlError> {
    let mut opts = serde_saphyr::options::Options::default();
    opts.with_snippet = false;
    // YAML 1.2 booleans only (`y`, `yes`, `on` stay strings), and numbers with leading zeros
    // (`007`) stay strings.
    opts.strict_booleans = true;
    opts.leading_zero_numbers_as_strings = true;
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = max_depth;
    opts.budget = Some(budget);
    match serde_saphyr::from_str_with_options::<Spanned<Raw>>(text, opts) {
        Ok(sp) => Ok(from_spanned(sp, text)),
        Err(e) => {
            let pos = e.location().map(|l| loc_pos(&l, text)).unwrap_or_default();
            let raw = e.to_string();
            let kind = if raw.contains("budget breached") || raw.contains("recursion limit") {
                YamlErrorKind::Limit
            } else {
                YamlErrorKind::Syntax
            };
            Err(YamlError {
                kind,
                message: clean_message(&raw),
                pos,
            })
        }
    }
}

fn clean_message(s: &str) -> String {
    // serde-saphyr appends " at line X, column Y" (and sometimes a snippet); keep the first line
    // and drop a trailing location since we print our own. Messages that talk about the library's
    // API are reworded for users.
    let first = s.lines().next().unwrap_or("").trim().to_string();
    let first = match first.rfind(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first,
    };
    if let Some(rest) = first.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(", set DuplicateKeyPolicy").next().unwrap_or(rest);
        return format!("duplicate key `{key}`");
    }
    if first.starts_with("multiple YAML documents detected") {
        return "more than one YAML document (`---`): a file holds one document".into();
    }
    if first.starts_with("budget breached: Depth") || first.contains("recursion limit exceeded") {
        return format!("nesting deeper than {MAX_DEPTH} levels");
    }
    if first.starts_with("budget breached") {
        return "document too large or too complex (too many nodes, aliases or bytes)".into();
    }
    if let Some(rest) = first.strip_prefix("non-finite float ") {
        let v = rest.split(" rejected").next().unwrap_or(rest);
        return format!("non-finite number {v} is not accepted; quote it to make it a string");
    }
    first
}

fn loc_pos(l: &serde_saphyr::Location, text: &str) -> Pos {
    let line = u32::try_from(l.line()).unwrap_or(u32::MAX);
    let col = u32::try_from(l.column()).unwrap_or(u32::MAX);
    let span = l.span();
    let offset = match span.byte_offset() {
        Some(o) => usize::try_from(o).unwrap_or(usize::MAX).min(text.len()),
        None => offset_of(text, line, col),
    };
    let len = span
        .byte_len()
        .and_then(|b| usize::try_from(b).ok())
        .unwrap_or(0)
        .min(text.len().saturating_sub(offset));
    // Keep the offset on a char boundary.
    let mut offset = offset;
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let mut len = len;
    while offset + len < text.len() && !text.is_char_boundary(offset + len) {
        len += 1;
    }
    Pos { line, col, offset, len }
}

/// Byte offset of a 1-based line/column (columns in characters); clamps to the text.
pub fn offset_of(text: &str, line: u32, col: u32) -> usize {
    if line == 0 {
        return 0;
    }
    let mut off = 0usize;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line as usize {
            let extra: usize = l.chars().take(col.saturating_sub(1) as usize).map(char::len_utf8).sum();
            return off + extra;
        }
        off += l.len();
    }
    text.len()
}

fn from_spanned(sp: Spanned<Raw>, text: &str) -> Node {
    let pos = loc_pos(&sp.referenced, text);
    let raw = match sp.value {
        Raw::Bool(_) | Raw::Int(_) | Raw::Float(_) if pos.len > 0 => text
            .get(pos.offset..pos.offset + pos.len)
            .map(str::trim)
            .filter(|t| !t.is_empty() && !t.contains(['\n', '*', '&', '!']))
            .map(str::to_string),
        _ => None,
    };
    let value = match sp.value {
        Raw::Null => Value::Null,
        Raw::Bool(b) => Value::Bool(b),
        Raw::Int(i) => Value::Int(i),
        Raw::Float(f) => Value::Float(f),
        Raw::Str(s) => Value::Str(s),
        Raw::Seq(items) => Value::Seq(items.into_iter().map(|i| from_spanned(i, text)).collect()),
        Raw::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (from_spanned(k, text), from_spanned(v, text)))
                .collect(),
        ),
    };
    Node { value, pos, raw }
}

/// Intermediate value deserialized by serde-saphyr.
enum Raw {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Raw, E> {
        Ok(i128::try_from(v)
            .map(Raw::Int)
            .unwrap_or_else(|_| Raw::Str(v.to_string())))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Raw, E> {
        Ok(Raw::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_char<E>(self, v: char) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_string()))
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(k) = map.next_key::<Spanned<Raw>>()? {
            let v = map.next_value::<Spanned<Raw>>()?;
            entries.push((k, v));
        }
        Ok(Raw::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_keys_and_values() {
        let text = "a: 1\nb:\n  c: [x, \"y\"]\n  d: ~\n";
        let n = parse(text).unwrap();
        let (bk, bv) = n.entry("b").unwrap();
        assert_eq!((bk.pos.line, bk.pos.col), (2, 1));
        let (ck, cv) = bv.entry("c").unwrap();
        assert_eq!((ck.pos.line, ck.pos.col), (3, 3));
        let items = cv.as_seq().unwrap();
        assert_eq!(items[1].as_str(), Some("y"));
        assert_eq!((items[1].pos.line, items[1].pos.col), (3, 10));
        assert_eq!(&text[ck.pos.offset..ck.pos.offset + 1], "c");
        assert!(bv.get("d").unwrap().is_null());
        assert_eq!(n.get("a").unwrap().value, Value::Int(1));
    }

    #[test]
    fn scalars_keep_their_spelling() {
        let n = parse("a: 1.10\nb: y\nc: yes\nd: 007\ne: true\nf: 0x1F\ng: \"1.10\"\nh: 12 # c\n").unwrap();
        let t = |k: &str| n.get(k).unwrap().scalar_text().unwrap();
        assert_eq!(t("a"), "1.10");
        assert_eq!(t("b"), "y");
        assert_eq!(t("c"), "yes");
        assert_eq!(t("d"), "007");
        assert_eq!(t("e"), "true");
        assert_eq!(n.get("e").unwrap().value, Value::Bool(true));
        assert_eq!(t("f"), "0x1F");
        assert_eq!(t("g"), "1.10");
        assert_eq!(t("h"), "12");
    }

    #[test]
    fn errors_have_positions() {
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.pos.line, 2, "{e:?}");
        let e = parse("a:\n\t- b\n").unwrap_err();
        assert!(e.pos.line >= 1, "{e:?}");
        let e = parse("a: [1, 2\n").unwrap_err();
        assert!(!e.message.is_empty());
        assert_eq!(parse("a: 1\na: 2\n").unwrap_err().message, "duplicate key `a`");
        assert_eq!(
            parse("a: 1\n---\nb: 2\n").unwrap_err().message,
            "more than one YAML document (`---`): a file holds one document"
        );
        let deep: String = (0..80).map(|i| format!("{}a:\n", " ".repeat(i))).collect();
        assert_eq!(parse(&deep).unwrap_err().message, "nesting deeper than 64 levels");
        assert_eq!(
            parse(&"[".repeat(300)).unwrap_err().message,
            "nesting deeper than 64 levels"
        );
        assert!(
            parse("a: .nan\n")
                .unwrap_err()
                .message
                .starts_with("non-finite number `.nan`")
        );
    }
}
