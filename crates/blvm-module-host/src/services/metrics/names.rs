//! Turning what a module sends into valid Prometheus names.
//!
//! A module's metric `blocks-seen` of module `block-stats` is exposed as
//! `module_block_stats_blocks_seen`: the `module_` prefix keeps every
//! module's metrics apart from the node's own (`blvm_…`) and from each
//! other's, whatever they are called. Names are lower-cased (Prometheus'
//! linter wants `snake_case`) and every character outside `[a-z0-9_]` becomes
//! `_`, so nothing a module sends can break the exposition.

/// The longest metric or label name a module may send, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// The longest label value, in bytes.
pub const MAX_LABEL_VALUE_LEN: usize = 256;
/// The longest help text kept; longer help is cut.
pub const MAX_HELP_LEN: usize = 256;
/// The most labels one series may have.
pub const MAX_LABELS: usize = 16;

/// `s` lower-cased with every character outside `[a-z0-9_]` replaced by
/// `_` (colons too: Prometheus keeps them for recording rules).
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .collect()
}

/// The exposed name of a module's metric: `module_<module>_<name>`; for a
/// counter without a trailing `_total`, which the encoder appends.
pub fn exposed_name(module: &str, name: &str, counter: bool) -> String {
    let mut exposed = format!("module_{}_{}", sanitize(module), sanitize(name));
    if counter {
        while let Some(stripped) = exposed.strip_suffix("_total") {
            exposed.truncate(stripped.len());
        }
    }
    exposed
}

/// A label name: sanitized, never starting with a digit or with `__`
/// (reserved by Prometheus), never `le` (a histogram's bucket label).
pub fn label_name(name: &str) -> String {
    let mut label = sanitize(name);
    while label.starts_with("__") {
        label.remove(0);
    }
    if label.is_empty() || label.starts_with(|c: char| c.is_ascii_digit()) || label == "le" {
        label.insert(0, 'l');
        label.insert(1, '_');
    }
    label
}

/// Help text on one line, without control characters, cut at
/// [`MAX_HELP_LEN`] on a character boundary.
pub fn help(text: &str) -> String {
    let mut help: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if help.len() > MAX_HELP_LEN {
        let mut end = MAX_HELP_LEN;
        while !help.is_char_boundary(end) {
            end -= 1;
        }
        help.truncate(end);
    }
    help.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_valid_prometheus_names() {
        assert_eq!(
            exposed_name("block-stats", "Blocks.Seen", false),
            "module_block_stats_blocks_seen"
        );
        assert_eq!(exposed_name("m", "requests_total", true), "module_m_requests");
        assert_eq!(exposed_name("m", "x{evil=\"1\"} 2\n", false), "module_m_x_evil__1___2_");
        assert_eq!(label_name("__name__"), "_name__");
        assert_eq!(label_name("le"), "l_le");
        assert_eq!(label_name("9lives"), "l_9lives");
        assert_eq!(help("two\nlines\u{0}"), "two lines");
    }
}
