//! Log setup: `tracing` events on standard error, human-readable by
//! default, one JSON object per line with `--log-json` (for a collector).
//! `RUST_LOG` selects levels and targets as usual (`info` when unset).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info";

/// Installs the global subscriber. Fails when `RUST_LOG` does not parse
/// (rather than silently logging at another level than asked) or when a
/// subscriber is already installed.
pub fn init(json: bool) -> Result<(), String> {
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref())?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = if json {
        builder
            .json()
            .flatten_event(true)
            .with_ansi(false)
            .try_init()
    } else {
        // journald and files get plain text; colours only on a terminal.
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
    installed.map_err(|e| format!("cannot install the logger: {e}"))
}

/// The filter for a `RUST_LOG` value (`None` or blank: [`DEFAULT_FILTER`]).
pub fn filter(rust_log: Option<&str>) -> Result<EnvFilter, String> {
    match rust_log.map(str::trim) {
        None | Some("") => Ok(EnvFilter::new(DEFAULT_FILTER)),
        Some(spec) => EnvFilter::try_new(spec).map_err(|e| {
            format!("RUST_LOG={spec:?} does not parse ({e}); use e.g. RUST_LOG=info or RUST_LOG=hafw=debug")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_is_parsed_not_ignored() {
        assert_eq!(filter(None).unwrap().to_string(), "info");
        assert_eq!(filter(Some(" ")).unwrap().to_string(), "info");
        assert_eq!(
            filter(Some("hafw=debug")).unwrap().to_string(),
            "hafw=debug"
        );
        assert!(filter(Some("hafw=loud"))
            .unwrap_err()
            .contains("RUST_LOG=\"hafw=loud\""));
    }
}
