//! Diagnostics: what is wrong, where (file, line, column, field) and how to
//! fix it. Validation collects every diagnostic before anything is applied.

use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One step of a path into the document: a key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Where a value sits in the document, e.g. `cloud.havip[1].ip`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Path(pub Vec<Seg>);

impl Path {
    pub fn root() -> Path {
        Path(Vec::new())
    }
    /// Parses the dotted form used in code: `cloud.havip.1.ip`.
    pub fn parse(dotted: &str) -> Path {
        Path(
            dotted
                .split('.')
                .filter(|s| !s.is_empty())
                .map(|s| match s.parse::<usize>() {
                    Ok(i) => Seg::Index(i),
                    Err(_) => Seg::Key(s.to_string()),
                })
                .collect(),
        )
    }
    pub fn key(&self, k: &str) -> Path {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }
    pub fn index(&self, i: usize) -> Path {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in &self.0 {
            match seg {
                Seg::Key(k) if first => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: Path,
    pub location: Option<Location>,
    pub message: String,
    pub fix: String,
}

impl Diagnostic {
    pub fn new(path: Path, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Diagnostic {
            path,
            location: None,
            message: message.into(),
            fix: fix.into(),
        }
    }
}

/// Every problem found in one file, each located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics {
    pub file: String,
    pub items: Vec<Diagnostic>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.items {
            match d.location {
                Some(l) => write!(f, "{}:{}:{}: ", self.file, l.line, l.column)?,
                None => write!(f, "{}: ", self.file)?,
            }
            if d.path.0.is_empty() {
                writeln!(f, "error: {}", d.message)?;
            } else {
                writeln!(f, "error: {}: {}", d.path, d.message)?;
            }
            writeln!(f, "  fix: {}", d.fix)?;
        }
        let n = self.items.len();
        write!(
            f,
            "{} error{} in {}; nothing was applied",
            n,
            if n == 1 { "" } else { "s" },
            self.file
        )
    }
}

impl std::error::Error for Diagnostics {}

/// Maps paths and byte offsets of one document to lines and columns.
pub struct Locator<'a> {
    text: &'a str,
    root: Option<Spanned<DeTable<'a>>>,
    /// Byte offset where each line starts, so locating is a binary search
    /// (a file with tens of thousands of errors must not take minutes).
    line_starts: Vec<usize>,
}

impl<'a> Locator<'a> {
    pub fn new(text: &'a str) -> Self {
        Locator {
            text,
            root: DeTable::parse(text).ok(),
            line_starts: std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
        }
    }

    pub fn position(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let line_start = self.line_starts[line - 1];
        let column = self.text[line_start..offset].chars().count() + 1;
        Location { line, column }
    }

    /// The span of the value at `path`, or of its nearest existing ancestor
    /// (a missing key is reported where it should have been written).
    pub fn span(&self, path: &Path) -> Option<Range<usize>> {
        let root = self.root.as_ref()?;
        let mut best = root.span();
        let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
        let mut value: Option<&Spanned<DeValue<'_>>> = None;
        for seg in &path.0 {
            let next = match (seg, table, value) {
                (Seg::Key(k), Some(t), _) => t
                    .iter()
                    .find(|(key, _)| key.get_ref().as_ref() == k.as_str())
                    .map(|(_, v)| v),
                (Seg::Index(i), _, Some(v)) => match v.get_ref() {
                    DeValue::Array(a) => a.as_ref().get(*i),
                    _ => None,
                },
                _ => None,
            };
            let Some(v) = next else { break };
            best = v.span();
            table = match v.get_ref() {
                DeValue::Table(t) => Some(t),
                _ => None,
            };
            value = Some(v);
        }
        Some(best)
    }

    /// The path of the scalar value (not a table or array) whose span
    /// holds `offset`: where a value the parser refused was written, so its
    /// error can name the field.
    pub fn scalar_path_at(&self, offset: usize) -> Option<Path> {
        fn walk(v: &Spanned<DeValue<'_>>, at: &Path, offset: usize) -> Option<Path> {
            match v.get_ref() {
                DeValue::Table(t) => t
                    .iter()
                    .find_map(|(k, v)| walk(v, &at.key(k.get_ref().as_ref()), offset)),
                DeValue::Array(a) => a
                    .as_ref()
                    .iter()
                    .enumerate()
                    .find_map(|(i, v)| walk(v, &at.index(i), offset)),
                _ => v.span().contains(&offset).then(|| at.clone()),
            }
        }
        let root = self.root.as_ref()?;
        root.get_ref()
            .iter()
            .find_map(|(k, v)| walk(v, &Path::root().key(k.get_ref().as_ref()), offset))
    }

    pub fn locate(&self, path: &Path) -> Option<Location> {
        self.span(path).map(|s| self.position(s.start))
    }
}
