//! A small HCL writer: blocks, attributes, comments and expressions, printed
//! the way `terraform fmt` prints them (two-space indent, `=` aligned within
//! a run of one-line attributes), so the output needs no formatting pass.

/// An expression, already in HCL syntax except for nesting.
#[derive(Debug, Clone)]
pub enum Expr {
    /// Printed as is: a reference, a number, a boolean or a quoted string.
    Raw(String),
    /// `[a, b]` on one line.
    List(Vec<Expr>),
    /// `{ key = value }` with one pair a line; each key is written as
    /// given, so quote it with [`string`] unless it is an identifier.
    Object(Vec<(String, Expr)>),
}

#[derive(Debug, Clone)]
pub enum Item {
    Attr(String, Expr),
    Block(Block),
    /// One `#` line per line of text.
    Comment(String),
    Blank,
}

#[derive(Debug, Clone)]
pub struct Block {
    kind: String,
    labels: Vec<String>,
    header: String,
    items: Vec<Item>,
}

impl Block {
    /// `kind` followed by quoted labels: `resource "alicloud_vpc" "main"`.
    pub fn new(kind: &str, labels: &[&str]) -> Block {
        let mut header = kind.to_string();
        for l in labels {
            header.push(' ');
            header.push_str(&string(l));
        }
        Block {
            kind: kind.to_string(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            header,
            items: Vec::new(),
        }
    }

    /// `resource`, `data`, `variable`, ...
    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The names of this block's own attributes, in order.
    pub fn attr_names(&self) -> impl Iterator<Item = &str> {
        self.items.iter().filter_map(|i| match i {
            Item::Attr(k, _) => Some(k.as_str()),
            _ => None,
        })
    }

    /// Nested blocks (`lifecycle`, `required_providers`).
    pub fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.items.iter().filter_map(|i| match i {
            Item::Block(b) => Some(b),
            _ => None,
        })
    }

    pub fn attr(mut self, key: &str, value: Expr) -> Block {
        self.items.push(Item::Attr(key.into(), value));
        self
    }

    /// A string attribute, quoted and escaped.
    pub fn str(self, key: &str, value: &str) -> Block {
        self.attr(key, Expr::Raw(string(value)))
    }

    /// An attribute whose value is a reference or literal in HCL syntax.
    pub fn raw(self, key: &str, value: impl Into<String>) -> Block {
        self.attr(key, Expr::Raw(value.into()))
    }

    pub fn comment(mut self, text: &str) -> Block {
        self.items.push(Item::Comment(text.into()));
        self
    }

    pub fn blank(mut self) -> Block {
        self.items.push(Item::Blank);
        self
    }

    pub fn block(mut self, inner: Block) -> Block {
        self.items.push(Item::Block(inner));
        self
    }

    /// `depends_on = [...]`, set apart by a blank line as `terraform fmt`
    /// users usually write it; nothing when the list is empty.
    pub fn depends_on(self, refs: Vec<String>) -> Block {
        if refs.is_empty() {
            return self;
        }
        self.blank().attr(
            "depends_on",
            Expr::List(refs.into_iter().map(Expr::Raw).collect()),
        )
    }
}

/// A file: top-level items, each block followed by a blank line.
#[derive(Debug, Default)]
pub struct File {
    items: Vec<Item>,
}

impl File {
    /// The top-level blocks, in order.
    pub fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.items.iter().filter_map(|i| match i {
            Item::Block(b) => Some(b),
            _ => None,
        })
    }

    /// `other`'s items after this file's.
    pub fn append(&mut self, other: File) {
        self.items.extend(other.items);
    }

    pub fn comment(&mut self, text: &str) {
        self.items.push(Item::Comment(text.into()));
    }
    /// A comment about the file rather than the block below it.
    pub fn note(&mut self, text: &str) {
        self.items.push(Item::Comment(text.into()));
        self.items.push(Item::Blank);
    }
    pub fn block(&mut self, b: Block) {
        self.items.push(Item::Block(b));
        self.items.push(Item::Blank);
    }
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut items: &[Item] = &self.items;
        while let Some((Item::Blank, rest)) = items.split_last() {
            items = rest;
        }
        write_items(items, 0, &mut out);
        out
    }
}

fn write_items(items: &[Item], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    let mut i = 0;
    while i < items.len() {
        match &items[i] {
            Item::Attr(..) => {
                // A run of one-line attributes shares one `=` column, as
                // terraform fmt aligns them; a multi-line value stands alone.
                let end = items[i..]
                    .iter()
                    .position(|it| !one_line_attr(it))
                    .map_or(items.len(), |n| i + n)
                    .max(i + 1);
                let width = items[i..end]
                    .iter()
                    .map(|it| match it {
                        Item::Attr(k, _) => k.len(),
                        _ => 0,
                    })
                    .max()
                    .unwrap_or(0);
                for it in &items[i..end] {
                    if let Item::Attr(k, v) = it {
                        out.push_str(&format!("{pad}{k:<width$} = "));
                        write_expr(v, indent, out);
                        out.push('\n');
                    }
                }
                i = end;
            }
            Item::Block(b) => {
                out.push_str(&format!("{pad}{} {{\n", b.header));
                write_items(&b.items, indent + 2, out);
                out.push_str(&format!("{pad}}}\n"));
                i += 1;
            }
            Item::Comment(text) => {
                // Every line gets its own `#`, and other control characters
                // (a lone CR) become spaces: a name from the file must not
                // end the comment and start live configuration.
                for line in text.lines() {
                    let line: String = line
                        .chars()
                        .map(|c| if c.is_control() { ' ' } else { c })
                        .collect();
                    let line = line.trim_end();
                    if line.is_empty() {
                        out.push_str(&format!("{pad}#\n"));
                    } else {
                        out.push_str(&format!("{pad}# {line}\n"));
                    }
                }
                i += 1;
            }
            Item::Blank => {
                out.push('\n');
                i += 1;
            }
        }
    }
}

fn one_line_attr(it: &Item) -> bool {
    match it {
        Item::Attr(_, Expr::Object(pairs)) => pairs.is_empty(),
        Item::Attr(..) => true,
        _ => false,
    }
}

fn write_expr(e: &Expr, indent: usize, out: &mut String) {
    match e {
        Expr::Raw(s) => out.push_str(s),
        Expr::List(items) => {
            out.push('[');
            for (n, it) in items.iter().enumerate() {
                if n > 0 {
                    out.push_str(", ");
                }
                write_expr(it, indent, out);
            }
            out.push(']');
        }
        Expr::Object(pairs) if pairs.is_empty() => out.push_str("{}"),
        Expr::Object(pairs) => {
            out.push_str("{\n");
            let inner: Vec<Item> = pairs
                .iter()
                .map(|(k, v)| Item::Attr(k.clone(), v.clone()))
                .collect();
            write_items(&inner, indent + 2, out);
            out.push_str(&" ".repeat(indent));
            out.push('}');
        }
    }
}

/// A quoted HCL string literal holding exactly `s`: quotes and backslashes
/// are escaped, control characters written as escapes, and the template
/// openers `${` and `%{` doubled so nothing in a name is ever evaluated.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_quotes_backslashes_and_templates() {
        assert_eq!(string(r#"a"b"#), r#""a\"b""#);
        assert_eq!(string(r"a\b"), r#""a\\b""#);
        assert_eq!(string("${var.x}"), r#""$${var.x}""#);
        assert_eq!(string("%{ if x }"), r#""%%{ if x }""#);
        assert_eq!(string("line\nnext\t\u{7}"), r#""line\nnext\t\u0007""#);
        // A lone `$` or `%` is not a template opener and stays single.
        assert_eq!(string("50% $5"), r#""50% $5""#);
        assert_eq!(string("héllo"), "\"héllo\"");
    }

    #[test]
    fn comments_cannot_be_broken_out_of() {
        let mut f = File::default();
        f.comment("x\nresource \"evil\" \"y\" {}\r\u{b}z");
        let text = f.render();
        assert!(text.lines().all(|l| l.starts_with('#')), "{text}");
    }

    #[test]
    fn multi_line_values_stand_outside_the_alignment() {
        let mut f = File::default();
        f.block(
            Block::new("output", &["x"])
                .str("description", "d")
                .attr(
                    "value",
                    Expr::Object(vec![(string("k"), Expr::Raw("a.b".into()))]),
                )
                .str("z", "after"),
        );
        assert_eq!(
            f.render(),
            "output \"x\" {\n  description = \"d\"\n  value = {\n    \"k\" = a.b\n  }\n  z = \"after\"\n}\n"
        );
    }

    #[test]
    fn attribute_runs_align_and_blocks_nest() {
        let mut f = File::default();
        f.block(
            Block::new("resource", &["t", "l"])
                .str("a", "1")
                .raw("long_name", "x.y.id")
                .depends_on(vec!["a.b".into()]),
        );
        assert_eq!(
            f.render(),
            "resource \"t\" \"l\" {\n  a         = \"1\"\n  long_name = x.y.id\n\n  depends_on = [a.b]\n}\n"
        );
    }
}
