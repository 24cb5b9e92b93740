//! Where a key is in the plan's text, from the spans the TOML parser records
//! (`toml_edit`), not from reading the text again: a key in an inline table, a
//! dotted key, a comment or a string that looks like a header all land where the
//! parser put them.

use std::ops::Range;
use toml_edit::{Item, Key, Table, TableLike, Value};

/// 1-based line and column (in characters) of a byte offset.
pub(super) struct Lines<'a> {
    source: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub(super) fn new(source: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { source, starts }
    }

    pub(super) fn at(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.source.len());
        while !self.source.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|s| *s <= offset);
        let start = self.starts[line - 1];
        (line, self.source[start..offset].chars().count() + 1)
    }
}

/// One step of a path into the plan: a key, or the n-th table of an array.
#[derive(Debug, Clone, Copy)]
pub(super) enum Step<'p> {
    Key(&'p str),
    Nth(usize),
}

/// The parsed document with its spans, and the lines to turn them into places.
pub(super) struct Doc<'a> {
    pub(super) root: &'a Table,
    pub(super) lines: Lines<'a>,
}

impl Doc<'_> {
    /// Where `path` is: the key itself when it is written, else the closest thing
    /// that is (the table that lacks the key, the `[[store]]` header), else 1:1.
    pub(super) fn at(&self, path: &[Step]) -> (usize, usize) {
        let mut best: Option<Range<usize>> = None;
        let mut cur = Cur::Table(self.root);
        for step in path {
            let next = match *step {
                Step::Key(k) => cur
                    .table()
                    .and_then(|t| t.get_key_value(k))
                    .map(|(key, item)| {
                        // A `[table]` is where its header is; anything else where its key is.
                        let table = item.as_table().and_then(Table::span);
                        (
                            table.or_else(|| key.span()).or_else(|| item.span()),
                            Cur::Item(item),
                        )
                    }),
                Step::Nth(n) => match cur {
                    Cur::Item(Item::ArrayOfTables(a)) => {
                        a.get(n).map(|t| (t.span(), Cur::Table(t)))
                    }
                    Cur::Item(Item::Value(Value::Array(a))) | Cur::Value(Value::Array(a)) => {
                        a.get(n).map(|v| (v.span(), Cur::Value(v)))
                    }
                    _ => None,
                },
            };
            let Some((span, next)) = next else { break };
            if span.is_some() {
                best = span;
            }
            cur = next;
        }
        best.map(|s| self.lines.at(s.start)).unwrap_or((1, 1))
    }

    pub(super) fn span_at(&self, span: &Range<usize>) -> (usize, usize) {
        self.lines.at(span.start)
    }
}

/// Where [`Doc::at`] has got to.
#[derive(Clone, Copy)]
enum Cur<'a> {
    Item(&'a Item),
    Table(&'a Table),
    Value(&'a Value),
}

impl<'a> Cur<'a> {
    fn table(self) -> Option<&'a dyn TableLike> {
        match self {
            Cur::Item(i) => i.as_table_like(),
            Cur::Table(t) => Some(t),
            Cur::Value(v) => v.as_inline_table().map(|t| t as &dyn TableLike),
        }
    }
}

/// A key found by [`find`]: its path under the table searched (`a.b`), its span,
/// and its value.
pub(super) struct Found<'a> {
    pub(super) path: String,
    pub(super) span: Range<usize>,
    pub(super) value: Option<&'a Value>,
}

impl<'a> Found<'a> {
    /// `key` at `path`, when the parser kept its span.
    fn at(path: &str, key: &Key, value: Option<&'a Value>) -> Option<Found<'a>> {
        key.span().map(|span| Found {
            path: path.to_owned(),
            span,
            value,
        })
    }
}

/// The innermost key under `item` that a parser error's span falls on: the key
/// itself (an unknown key), or the key whose value holds the span (a value of
/// the wrong type).
pub(super) fn key_of_span<'a>(item: &'a Item, span: &Range<usize>) -> Option<Found<'a>> {
    let mut out = None;
    walk(item, "", &mut |path, key, value| {
        let on_key = key.span().is_some_and(|k| contains(&k, span));
        let on_value = value
            .and_then(|v| v.span())
            .is_some_and(|v| contains(&v, span));
        if on_key || on_value {
            // The walk goes outside in: the last match is the innermost.
            out = Found::at(path, key, value);
        }
    });
    out
}

/// The first key under `item` that `matches` accepts (by its name and value), for
/// errors that come back without a span (a `type`-tagged table is read as a whole
/// before its keys are).
pub(super) fn find_key<'a>(
    item: &'a Item,
    matches: &dyn Fn(&str, Option<&Value>) -> bool,
) -> Option<Found<'a>> {
    let mut out: Option<Found> = None;
    walk(item, "", &mut |path, key, value| {
        if out.is_none() && matches(key.get(), value) {
            out = Found::at(path, key, value);
        }
    });
    out
}

/// Like [`find_key`], under a value (an inline table or a list).
pub(super) fn find_key_in_value<'a>(
    value: &'a Value,
    matches: &dyn Fn(&str, Option<&Value>) -> bool,
) -> Option<Found<'a>> {
    let mut out: Option<Found> = None;
    walk_value(value, "", &mut |path, key, value| {
        if out.is_none() && matches(key.get(), value) {
            out = Found::at(path, key, value);
        }
    });
    out
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && inner.start < outer.end
        || outer == inner
}

/// Every key under `item`, outside in, with its dotted path (array elements are
/// looked into, and add nothing to the path).
fn walk<'a>(item: &'a Item, prefix: &str, f: &mut dyn FnMut(&str, &'a Key, Option<&'a Value>)) {
    match item {
        Item::Table(t) => walk_table(t, prefix, f),
        Item::ArrayOfTables(a) => {
            for t in a.iter() {
                walk_table(t, prefix, f);
            }
        }
        Item::Value(v) => walk_value(v, prefix, f),
        Item::None => {}
    }
}

fn walk_table<'a>(
    t: &'a dyn TableLike,
    prefix: &str,
    f: &mut dyn FnMut(&str, &'a Key, Option<&'a Value>),
) {
    for (name, _) in t.iter() {
        let Some((key, item)) = t.get_key_value(name) else {
            continue;
        };
        let path = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        };
        f(&path, key, item.as_value());
        walk(item, &path, f);
    }
}

fn walk_value<'a>(v: &'a Value, prefix: &str, f: &mut dyn FnMut(&str, &'a Key, Option<&'a Value>)) {
    match v {
        Value::InlineTable(t) => walk_table(t, prefix, f),
        Value::Array(a) => {
            for v in a.iter() {
                walk_value(v, prefix, f);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(source: &str) -> toml_edit::ImDocument<&str> {
        toml_edit::ImDocument::parse(source).unwrap()
    }

    #[test]
    fn places_come_from_the_parser_not_from_the_text() {
        let src = "env = \"prod\"\n# [vault]\nnote = \"[vault]\"\n[vault]\n  prefix = \"a/\"\nsalt = { env = \"S\" }\n[[store]]\ntype = \"file\"\n[[store]]\n type = \"file\"\nmode = \"0600\"\n";
        let d = doc(src);
        let doc = Doc {
            root: d.as_table(),
            lines: Lines::new(src),
        };
        use Step::*;
        assert_eq!(doc.at(&[Key("vault")]), (4, 1));
        assert_eq!(doc.at(&[Key("vault"), Key("prefix")]), (5, 3));
        assert_eq!(doc.at(&[Key("vault"), Key("salt"), Key("env")]), (6, 10));
        // Not written: the table that lacks it.
        assert_eq!(doc.at(&[Key("vault"), Key("dir")]), (4, 1));
        assert_eq!(doc.at(&[Key("store"), Nth(1)]), (9, 1));
        assert_eq!(doc.at(&[Key("store"), Nth(1), Key("mode")]), (11, 1));
        assert_eq!(doc.at(&[Key("restart")]), (1, 1));
    }

    #[test]
    fn columns_count_characters() {
        let lines = Lines::new("é = 1\nab = \"ü\" x");
        assert_eq!(lines.at(0), (1, 1));
        assert_eq!(lines.at(3), (1, 3));
        assert_eq!(lines.at(7), (2, 1));
        assert_eq!(lines.at(18), (2, 11));
    }
}
