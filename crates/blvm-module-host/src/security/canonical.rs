//! The canonical encoding of a manifest: what maintainers sign.
//!
//! Signatures must survive what does not change a manifest's meaning
//! (comments, whitespace, key order, quoting style, inline versus standard
//! tables) and break on everything that does. So they cover the parsed
//! TOML value, not its text, encoded as follows (normative; the module
//! author guide gives the same rules and a worked example):
//!
//! - the top-level table without its `signatures` key;
//! - a table: `{`, its entries sorted by the UTF-8 bytes of their keys,
//!   each `"key":value`, separated by `,`, then `}`;
//! - an array: `[`, its elements in order separated by `,`, then `]`;
//! - a string (and a key): `"`, the UTF-8 text with `"` as `\"`, `\` as
//!   `\\` and every character below U+0020 as `\u00XX` (lowercase hex),
//!   then `"`;
//! - an integer: its decimal form (`-` for negatives, no `+`, no leading
//!   zeros); a boolean: `true` or `false`;
//! - floats and datetimes have no canonical form: a manifest holding one
//!   cannot be signed (nothing in the manifest format needs them).
//!
//! The digest signed is `sha256("blvm-module-manifest/v1\n" || encoding)`;
//! the prefix keeps a manifest signature from being valid for anything else.

use sha2::{Digest, Sha256};

/// Prefixed to the encoding before hashing (domain separation).
pub const DOMAIN: &[u8] = b"blvm-module-manifest/v1\n";

/// The key left out of the encoding: the signatures themselves.
const SIGNATURES_KEY: &str = "signatures";

/// The canonical encoding of `manifest` without its `signatures` table.
///
/// # Errors
///
/// The dotted path of the first float or datetime, which has no canonical
/// form.
pub fn encode(manifest: &toml::Table) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(1024);
    let unsigned = manifest.iter().filter(|(k, _)| k.as_str() != SIGNATURES_KEY);
    encode_table(&mut out, unsigned, "")?;
    Ok(out)
}

/// `sha256(DOMAIN || encode(manifest))`: the digest maintainers sign.
///
/// # Errors
///
/// As [`encode`].
pub fn signing_digest(manifest: &toml::Table) -> Result<[u8; 32], String> {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    hasher.update(encode(manifest)?);
    Ok(hasher.finalize().into())
}

/// [`signing_digest`] of manifest text (for maintainers' tools: the text
/// may already hold a `[signatures]` table, which is left out).
///
/// # Errors
///
/// Text that is not TOML, or as [`encode`].
pub fn signing_digest_of_text(text: &str) -> Result<[u8; 32], String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| format!("not a TOML manifest: {}", e.message()))?;
    signing_digest(&table)
}

fn encode_table<'a>(
    out: &mut Vec<u8>,
    entries: impl Iterator<Item = (&'a String, &'a toml::Value)>,
    path: &str,
) -> Result<(), String> {
    let mut entries: Vec<_> = entries.collect();
    // `toml::Table` may keep insertion order; the encoding never does.
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push(b'{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        encode_string(out, key);
        out.push(b':');
        let child = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        encode_value(out, value, &child)?;
    }
    out.push(b'}');
    Ok(())
}

fn encode_value(out: &mut Vec<u8>, value: &toml::Value, path: &str) -> Result<(), String> {
    match value {
        toml::Value::String(s) => encode_string(out, s),
        toml::Value::Integer(n) => out.extend_from_slice(n.to_string().as_bytes()),
        toml::Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        toml::Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                encode_value(out, item, &format!("{path}[{i}]"))?;
            }
            out.push(b']');
        }
        toml::Value::Table(t) => encode_table(out, t.iter(), path)?,
        toml::Value::Float(_) => return Err(format!("`{path}` is a float, which a signed manifest cannot hold")),
        toml::Value::Datetime(_) => return Err(format!("`{path}` is a datetime, which a signed manifest cannot hold")),
    }
    Ok(())
}

fn encode_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).expect("toml")
    }

    fn text(t: &toml::Table) -> String {
        String::from_utf8(encode(t).expect("encodes")).expect("utf8")
    }

    #[test]
    fn encoding_sorts_keys_escapes_strings_and_leaves_out_the_signatures() {
        let t = table(
            "version = \"1.0.0\"\nname = \"a\\\"b\\\\c\\u0001\"\ncapabilities = [\"read_blockchain\", \"subscribe_events\"]\n\
             [binary]\nsize = 42\nhash = \"sha256:00\"\n[signatures]\nthreshold = \"1-of-1\"\n",
        );
        assert_eq!(
            text(&t),
            r#"{"binary":{"hash":"sha256:00","size":42},"capabilities":["read_blockchain","subscribe_events"],"name":"a\"b\\c\u0001","version":"1.0.0"}"#
        );
    }

    #[test]
    fn layout_comments_and_order_do_not_change_the_digest_but_any_value_does() {
        let a = table(
            "name = \"m\"\nversion = \"1.0.0\"\ncapabilities = [\"read_blockchain\"]\n[binary]\nhash = \"sha256:ab\"\n",
        );
        let b = table(
            "# reordered, commented, inline\ncapabilities = [ 'read_blockchain' ]\nbinary = { hash = \"sha256:ab\" }\n\
             version = '1.0.0'\nname = \"m\"   # same\n[signatures]\nthreshold = \"1-of-1\"\n",
        );
        assert_eq!(signing_digest(&a), signing_digest(&b));
        let c = table("name = \"m\"\nversion = \"1.0.0\"\ncapabilities = [\"read_blockchain\", \"network_access\"]\n[binary]\nhash = \"sha256:ab\"\n");
        assert_ne!(signing_digest(&a), signing_digest(&c));
        let d = table(
            "name = \"m\"\nversion = \"1.0.0\"\ncapabilities = [\"read_blockchain\"]\n[binary]\nhash = \"sha256:ac\"\n",
        );
        assert_ne!(signing_digest(&a), signing_digest(&d));
    }

    /// The worked example of the module author guide (section 12.1), also
    /// computed there by an independent implementation of the rules: the
    /// encoding and digest are pinned, and the guide must show them.
    #[test]
    fn the_author_guides_worked_example_is_what_the_code_computes() {
        let manifest = "name = \"blockwatch\"\nversion = \"1.0.0\"\ncapabilities = [\"read_blockchain\", \"subscribe_events\"]\n\n\
                        [binary]\nhash = \"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n";
        let encoding = r#"{"binary":{"hash":"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},"capabilities":["read_blockchain","subscribe_events"],"name":"blockwatch","version":"1.0.0"}"#;
        let digest = "08411262c80651319af7eba2a94fa2cc745938f3e75e46e9cf4abd871e04bc52";
        assert_eq!(text(&table(manifest)), encoding);
        let got: String = signing_digest_of_text(manifest)
            .expect("digest")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, digest);
        let guide = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/module-author-guide.md"
        ))
        .expect("docs/module-author-guide.md");
        assert!(guide.contains(encoding), "the guide shows the encoding");
        assert!(guide.contains(digest), "the guide shows the digest");
        assert!(guide.contains(manifest.trim_end()), "the guide shows the manifest");
    }

    #[test]
    fn floats_and_datetimes_cannot_be_signed_and_say_where_they_are() {
        let err = signing_digest(&table("[resources]\ncpu = 0.5\n")).unwrap_err();
        assert!(err.contains("`resources.cpu` is a float"), "{err}");
        let err = signing_digest(&table("x = [1, 1979-05-27]\n")).unwrap_err();
        assert!(err.contains("`x[1]` is a datetime"), "{err}");
    }
}
