//! YAML documents as trees that remember where every node came from.
//!
//! Diagnostics must point at `file:line:col`, which typed serde values cannot do. So documents
//! are first parsed into [`Node`]s carrying a [`Span`], built from saphyr-parser's event stream
//! (not its loader) because barge needs behaviour the loader does not have:
//!
//! * duplicate keys are recorded, not fatal: Go's YAML→JSON path keeps the last value and real
//!   repositories (even Kargo's own examples) contain them, so barge reports and continues;
//! * `<<` merge keys are applied as Go's yaml does;
//! * aliases are expanded within bounds relative to the input (Go yaml's alias ratio, and
//!   the bytes copied), so "billion laughs" stop after kilobytes; nesting is bounded too, so
//!   hostile input yields a diagnostic instead of exhausting memory or the stack.
//!
//! Scalars resolve with the YAML 1.2 core schema. Plain scalars keep their source text so a
//! value like `tag: 1.10` can be reported as "this is the number 1.1, quote it".

use saphyr_parser::{Event, Parser, ScalarStyle};
use std::collections::HashMap;

/// A 1-based line and column (in characters), as editors and rustc show them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

/// Where a node starts and ends. `end` is exclusive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: Pos,
    pub end: Pos,
}

impl Span {
    /// The caret width for a single-line node; 1 for nodes spanning lines.
    pub fn width_on_first_line(&self) -> u32 {
        if self.end.line == self.start.line && self.end.column > self.start.column {
            self.end.column - self.start.column
        } else {
            1
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub key: Node,
    pub value: Node,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub span: Span,
    pub value: Value,
    /// Source text of a plain (unquoted) scalar, so numbers and booleans can be quoted back.
    pub plain: Option<String>,
}

impl Node {
    fn new(span: Span, value: Value) -> Self {
        Node {
            span,
            value,
            plain: None,
        }
    }

    /// The mapping entry with this string key.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|e| e.key.as_str() == Some(key)).map(|e| &e.value),
            _ => None,
        }
    }

    /// The key node of a mapping entry (to point at the key itself, e.g. for unknown fields).
    pub fn key_node(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|e| e.key.as_str() == Some(key)).map(|e| &e.key),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> &[Node] {
        match &self.value {
            Value::Seq(items) => items,
            _ => &[],
        }
    }

    pub fn entries(&self) -> &[Entry] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    /// Follows a path of keys and indexes; `None` when it leaves the tree.
    pub fn at(&self, path: &[PathSeg]) -> Option<&Node> {
        let mut node = self;
        for seg in path {
            node = match seg {
                PathSeg::Key(k) => node.get(k)?,
                PathSeg::Index(i) => node.as_seq().get(*i)?,
            };
        }
        Some(node)
    }

    /// Like [`Node::at`], but stops at the deepest node that exists: the best place to point
    /// a diagnostic about something missing below it.
    pub fn nearest(&self, path: &[PathSeg]) -> &Node {
        let mut node = self;
        for seg in path {
            let next = match seg {
                PathSeg::Key(k) => node.get(k),
                PathSeg::Index(i) => node.as_seq().get(*i),
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node
    }

    /// What the node is, for messages ("a mapping", "the number 1.1").
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Null => "null".into(),
            Value::Bool(b) => format!("the boolean {b}"),
            Value::Int(i) => format!("the number {i}"),
            Value::Float(f) => format!("the number {f}"),
            Value::Str(_) => "a string".into(),
            Value::Seq(_) => "a list".into(),
            Value::Map(_) => "a mapping".into(),
        }
    }

    /// The JSON value the node stands for (what Kubernetes would store).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(entries.iter().map(|e| (e.key.key_text(), e.value.to_json())).collect()),
        }
    }

    /// A mapping key as text (JSON object keys are strings; `1: x` becomes "1").
    pub fn key_text(&self) -> String {
        match &self.value {
            Value::Str(s) => s.clone(),
            _ => self.plain.clone().unwrap_or_else(|| self.to_json().to_string()),
        }
    }

    /// Every string scalar below this node (values only, not keys), with its path.
    pub fn walk_strings<'a>(&'a self, path: &mut Vec<PathSeg>, f: &mut dyn FnMut(&[PathSeg], &'a Node, &'a str)) {
        match &self.value {
            Value::Str(s) => f(path, self, s),
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(PathSeg::Index(i));
                    item.walk_strings(path, f);
                    path.pop();
                }
            }
            Value::Map(entries) => {
                for e in entries {
                    path.push(PathSeg::Key(e.key.key_text()));
                    e.value.walk_strings(path, f);
                    path.pop();
                }
            }
            _ => {}
        }
    }
}

/// One step of a path into a document.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// Renders a path the way Kubernetes does: `spec.requestedFreight[0].origin.name`.
pub fn path_string(path: &[PathSeg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            PathSeg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            PathSeg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// A key that appeared twice in one mapping.
#[derive(Clone, Debug)]
pub struct DuplicateKey {
    pub key: String,
    pub first: Span,
    pub second: Span,
    /// Whether both occurrences hold the same value (then nothing is lost by keeping the last).
    pub same_value: bool,
}

/// One `---` document of a stream.
#[derive(Clone, Debug)]
pub struct Document {
    pub root: Node,
    pub duplicates: Vec<DuplicateKey>,
    /// The line the document starts on (its `---`, or its first node).
    pub start_line: u32,
}

/// Why a stream could not be parsed.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    pub message: String,
    pub pos: Pos,
}

/// Limits that keep hostile input from exhausting memory or the stack.
pub const MAX_DEPTH: usize = 200;
pub const MAX_NODES: usize = 2_000_000;

/// What alias expansion may copy, in bytes of nodes and strings: this much, or
/// [`ALIAS_BYTES_PER_INPUT_BYTE`] times the input's size when that is more. Expanded aliases
/// are copies, so a few hundred bytes of nested aliases ("billion laughs") would otherwise
/// fill hundreds of megabytes before [`MAX_NODES`] stops them.
pub const ALIAS_BYTES_FLOOR: usize = 4 << 20;
pub const ALIAS_BYTES_PER_INPUT_BYTE: usize = 16;

/// Parses every document of a YAML stream. Documents before a syntax error are kept, so a
/// caller can still report what loaded; the error ends the stream (the parser cannot resync).
pub fn parse_stream(text: &str) -> (Vec<Document>, Option<SyntaxError>) {
    let mut builder = Builder {
        alias_bytes_allowed: ALIAS_BYTES_FLOOR.max(text.len().saturating_mul(ALIAS_BYTES_PER_INPUT_BYTE)),
        ..Builder::default()
    };
    let mut parser = Parser::new_from_str(text);
    // saphyr reports columns 0-based; the first line is 1.
    let pos = |m: &saphyr_parser::Marker| Pos {
        line: m.line() as u32,
        column: m.col() as u32 + 1,
    };
    loop {
        match parser.next_event() {
            None => break,
            Some(Err(e)) => {
                let msg = match e.info() {
                    m if m.contains("recursion limit") => format!("the document nests too deeply ({m})"),
                    m => m.to_string(),
                };
                return (
                    builder.docs,
                    Some(SyntaxError {
                        message: msg,
                        pos: pos(e.marker()),
                    }),
                );
            }
            Some(Ok((event, span))) => {
                let span = Span {
                    start: pos(&span.start),
                    end: pos(&span.end),
                };
                if let Err(message) = builder.event(event, span) {
                    return (
                        builder.docs,
                        Some(SyntaxError {
                            message,
                            pos: span.start,
                        }),
                    );
                }
            }
        }
    }
    (builder.docs, None)
}

enum Frame {
    Seq {
        span: Span,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        span: Span,
        anchor: usize,
        entries: Vec<Entry>,
        /// Key text → index in `entries`, so duplicate detection stays linear.
        index: HashMap<String, usize>,
        pending_key: Option<Node>,
        merges: Vec<Node>,
    },
}

#[derive(Default)]
struct Builder {
    docs: Vec<Document>,
    stack: Vec<Frame>,
    /// Anchored nodes with their size (nodes, bytes), measured once when anchored.
    anchors: HashMap<usize, (Node, Size)>,
    duplicates: Vec<DuplicateKey>,
    doc_start: u32,
    /// Nodes of the current document, and how many of them came from expanding aliases.
    nodes: usize,
    alias_nodes: usize,
    /// Bytes alias expansion copied in the whole stream, and the most it may.
    alias_bytes: usize,
    alias_bytes_allowed: usize,
}

/// A subtree's size: its nodes, and the bytes they and their strings take.
#[derive(Clone, Copy, Debug, Default)]
struct Size {
    nodes: usize,
    bytes: usize,
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), String> {
        match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => {}
            Event::DocumentStart(_) => {
                self.doc_start = span.start.line;
                self.anchors.clear();
                self.duplicates.clear();
            }
            Event::Alias(id) => {
                let size = self
                    .anchors
                    .get(&id)
                    .map(|(_, size)| *size)
                    .ok_or_else(|| "alias refers to an unknown anchor".to_string())?;
                // Counted before the copy is made.
                self.count(size.nodes)?;
                self.count_alias(size)?;
                let node = self.anchors[&id].0.clone();
                self.push_node(node)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1)?;
                let tag = tag.map(|t| t.suffix.clone());
                let mut node = Node::new(span, resolve_scalar(&text, style, tag.as_deref()));
                if style == ScalarStyle::Plain && !matches!(node.value, Value::Str(_)) {
                    node.plain = Some(text.into_owned());
                }
                self.anchor(anchor, &node);
                self.push_node(node)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.count(1)?;
                self.enter()?;
                self.stack.push(Frame::Seq {
                    span,
                    anchor,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(anchor, _) => {
                self.count(1)?;
                self.enter()?;
                self.stack.push(Frame::Map {
                    span,
                    anchor,
                    entries: Vec::new(),
                    index: HashMap::new(),
                    pending_key: None,
                    merges: Vec::new(),
                });
            }
            Event::SequenceEnd => {
                let Some(Frame::Seq {
                    span: start,
                    anchor,
                    items,
                }) = self.stack.pop()
                else {
                    return Err("unbalanced sequence".into());
                };
                let node = Node::new(
                    Span {
                        start: start.start,
                        end: span.end,
                    },
                    Value::Seq(items),
                );
                self.anchor(anchor, &node);
                self.push_node(node)?;
            }
            Event::MappingEnd => {
                let Some(Frame::Map {
                    span: start,
                    anchor,
                    mut entries,
                    mut index,
                    merges,
                    ..
                }) = self.stack.pop()
                else {
                    return Err("unbalanced mapping".into());
                };
                // `<<: *base` fills in keys the mapping does not set itself, as Go's yaml does.
                for merged in merges {
                    let sources: Vec<&Node> = match &merged.value {
                        Value::Seq(items) => items.iter().collect(),
                        _ => vec![&merged],
                    };
                    for source in sources {
                        for e in source.entries() {
                            if let std::collections::hash_map::Entry::Vacant(slot) = index.entry(e.key.key_text()) {
                                slot.insert(entries.len());
                                entries.push(e.clone());
                            }
                        }
                    }
                }
                let node = Node::new(
                    Span {
                        start: start.start,
                        end: span.end,
                    },
                    Value::Map(entries),
                );
                self.anchor(anchor, &node);
                self.push_node(node)?;
            }
        }
        Ok(())
    }

    fn anchor(&mut self, anchor: usize, node: &Node) {
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), measure(node)));
        }
    }

    /// Go's yaml (v3, `allowedAliasRatio`), which Kubernetes decodes with, refuses a document
    /// in which nodes from aliases outnumber the rest by too much: more than 99% of its nodes
    /// up to 400,000 of them, falling to 10% at 4,000,000. barge applies the same rule, and
    /// also bounds the bytes aliases copy by the input's size (Go shares strings; Rust's
    /// copies do not).
    fn count_alias(&mut self, size: Size) -> Result<(), String> {
        self.alias_nodes += size.nodes;
        self.alias_bytes += size.bytes;
        let allowed_ratio = match self.nodes {
            n if n <= 400_000 => 0.99,
            n if n >= 4_000_000 => 0.10,
            n => 0.99 - 0.89 * (n - 400_000) as f64 / 3_600_000.0,
        };
        if self.alias_nodes > 100 && self.nodes > 1_000 && self.alias_nodes as f64 / self.nodes as f64 > allowed_ratio {
            return Err(format!(
                "the document contains excessive aliasing: {} of its {} nodes come from aliases (Kubernetes' YAML decoder refuses this too)",
                self.alias_nodes, self.nodes
            ));
        }
        if self.alias_bytes > self.alias_bytes_allowed {
            return Err(format!(
                "aliases expand to more than {} MiB (the most for any input is {} MiB or {ALIAS_BYTES_PER_INPUT_BYTE} times its size): aliases repeated too often?",
                self.alias_bytes_allowed >> 20,
                ALIAS_BYTES_FLOOR >> 20
            ));
        }
        Ok(())
    }

    fn count(&mut self, n: usize) -> Result<(), String> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(format!(
                "document expands to more than {MAX_NODES} nodes (aliases repeated too often?)"
            ));
        }
        Ok(())
    }

    fn enter(&self) -> Result<(), String> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(format!("the document nests deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    fn push_node(&mut self, node: Node) -> Result<(), String> {
        match self.stack.last_mut() {
            None => {
                self.docs.push(Document {
                    start_line: self.doc_start.max(1),
                    root: node,
                    duplicates: std::mem::take(&mut self.duplicates),
                });
                self.nodes = 0;
                self.alias_nodes = 0;
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                index,
                pending_key,
                merges,
                ..
            }) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => {
                    if key.plain.is_none()
                        && key.as_str() == Some("<<")
                        && key.span.end.column - key.span.start.column == 2
                    {
                        merges.push(node);
                    } else if let Some(existing) = index.get(&key.key_text()).map(|&i| &mut entries[i]) {
                        self.duplicates.push(DuplicateKey {
                            key: key.key_text(),
                            first: existing.key.span,
                            second: key.span,
                            same_value: existing.value.to_json() == node.to_json(),
                        });
                        // Last one wins, as in Go's YAML-to-JSON conversion.
                        existing.key = key;
                        existing.value = node;
                    } else {
                        index.insert(key.key_text(), entries.len());
                        entries.push(Entry { key, value: node });
                    }
                }
            },
        }
        Ok(())
    }
}

fn measure(node: &Node) -> Size {
    // Iterative, so a deep alias cannot overflow the stack here either.
    let mut size = Size::default();
    let mut todo = vec![node];
    while let Some(x) = todo.pop() {
        size.nodes += 1;
        size.bytes += std::mem::size_of::<Node>() + x.plain.as_ref().map_or(0, String::len);
        match &x.value {
            Value::Str(s) => size.bytes += s.len(),
            Value::Seq(items) => todo.extend(items.iter()),
            Value::Map(entries) => {
                for e in entries {
                    todo.push(&e.key);
                    todo.push(&e.value);
                }
            }
            _ => {}
        }
    }
    size
}

/// YAML 1.2 core schema resolution for a scalar.
fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> Value {
    match tag {
        Some("str") => return Value::Str(text.to_string()),
        Some("null") => return Value::Null,
        Some("bool") | Some("int") | Some("float") => {}
        Some(_) | None if style != ScalarStyle::Plain => return Value::Str(text.to_string()),
        _ => {}
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Value::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    if let Some(v) = parse_int(text) {
        return Value::Int(v);
    }
    if is_float(text)
        && let Ok(f) = text.parse::<f64>()
    {
        return Value::Float(f);
    }
    Value::Str(text.to_string())
}

fn parse_int(text: &str) -> Option<i64> {
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok();
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok();
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    None
}

fn is_float(text: &str) -> bool {
    // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let ok_mantissa = match mantissa.split_once('.') {
        Some((a, b)) => {
            (!a.is_empty() || !b.is_empty())
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|c| c.is_ascii_digit()),
    };
    let ok_exp = exp.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit())
    });
    ok_mantissa && ok_exp && (mantissa.contains('.') || exp.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Document {
        let (mut docs, err) = parse_stream(text);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(docs.len(), 1);
        docs.remove(0)
    }

    #[test]
    fn spans_are_one_based_and_point_at_values() {
        let doc = one("a:\n  b: hello\n");
        let b = doc.root.get("a").unwrap().get("b").unwrap();
        assert_eq!(b.span.start, Pos { line: 2, column: 6 });
        assert_eq!(b.span.width_on_first_line(), 5);
    }

    #[test]
    fn core_schema_scalars() {
        let doc = one("a: 1.10\nb: '1.10'\nc: true\nd: ~\ne: 0x1F\nf: v1.2\ng: 1e3\n");
        assert_eq!(doc.root.get("a").unwrap().value, Value::Float(1.1));
        assert_eq!(doc.root.get("a").unwrap().plain.as_deref(), Some("1.10"));
        assert_eq!(doc.root.get("b").unwrap().value, Value::Str("1.10".into()));
        assert_eq!(doc.root.get("c").unwrap().value, Value::Bool(true));
        assert_eq!(doc.root.get("d").unwrap().value, Value::Null);
        assert_eq!(doc.root.get("e").unwrap().value, Value::Int(31));
        assert_eq!(doc.root.get("f").unwrap().value, Value::Str("v1.2".into()));
        assert_eq!(doc.root.get("g").unwrap().value, Value::Float(1000.0));
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_and_are_recorded() {
        let doc = one("a: 1\nb: 2\na: 3\n");
        assert_eq!(doc.root.get("a").unwrap().value, Value::Int(3));
        assert_eq!(doc.duplicates.len(), 1);
        assert_eq!(doc.duplicates[0].key, "a");
        assert_eq!(doc.duplicates[0].first.start.line, 1);
        assert_eq!(doc.duplicates[0].second.start.line, 3);
        assert!(!doc.duplicates[0].same_value);
    }

    #[test]
    fn merge_keys_fill_missing_entries() {
        let doc = one("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\n");
        let d = doc.root.get("d").unwrap();
        assert_eq!(d.get("x").unwrap().value, Value::Int(1));
        assert_eq!(d.get("y").unwrap().value, Value::Int(3));
    }

    #[test]
    fn multi_document_streams() {
        let (docs, err) = parse_stream("a: 1\n---\nb: 2\n---\n# only a comment\n");
        assert!(err.is_none());
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[1].start_line, 2);
        assert_eq!(docs[1].root.get("b").unwrap().value, Value::Int(2));
        // A document with only a comment is an empty (null) document, which loaders skip.
        assert_eq!(docs[2].root.value, Value::Null);
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            s.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let (_, err) = parse_stream(&s);
        assert!(err.unwrap().message.contains("excessive aliasing"));
    }

    #[test]
    fn alias_expansion_is_bounded_by_the_input_size() {
        // Few aliases of a long string: Go's node ratio allows it, the byte bound does not.
        let long = format!("a: &a {}\nb: [{}]\n", "x".repeat(100_000), vec!["*a"; 1_000].join(", "));
        let (_, err) = parse_stream(&long);
        assert!(err.unwrap().message.contains("aliases expand to more than 4 MiB"));
        // Anchors as people use them (a step list reused per stage) stay well inside.
        let mut reuse = String::from("steps: &steps [{uses: git-clone, config: {repoURL: x}}, {uses: git-push}]\n");
        for i in 0..200 {
            reuse.push_str(&format!("s{i}: {{steps: *steps, <<: {{x: 1}}}}\n"));
        }
        let (docs, err) = parse_stream(&reuse);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(
            docs[0].root.get("s199").unwrap().get("steps").unwrap().as_seq().len(),
            2
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let s = "[".repeat(10_000);
        let (_, err) = parse_stream(&s);
        assert!(err.is_some());
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let (_, err) = parse_stream("a: b\n  c: d\n");
        let err = err.unwrap();
        assert_eq!(err.pos.line, 2);
    }
}
