//! `module.toml`: read into a raw serde shape, then validated into a
//! [`ModuleManifest`] that cannot be invalid.
//!
//! Reading happens in three steps, each refusing with a [`ManifestError`]
//! that names the file, the field and what was expected:
//!
//! 1. the size is checked before the file is read ([`MAX_MANIFEST_LEN`]);
//! 2. the text is parsed as TOML, unknown top-level keys are refused, and the
//!    rest is deserialized into [`RawManifest`] (every leaf optional, so that
//!    "missing" is reported by validation with the field's full path);
//! 3. [`RawManifest::validate`] turns strings into typed values (versions,
//!    ranges, capabilities, thresholds, hashes) and checks the rules that
//!    span fields (thresholds against maintainer lists, no self-dependency).
//!
//! # Rules
//!
//! - **Names** (`name`, dependency names): 1 to 64 characters, the first a
//!   lowercase ASCII letter or digit, the rest lowercase ASCII letters,
//!   digits, `-` or `_`. The name is the module's identity everywhere (map
//!   keys, module ids, data directories), so it is kept ASCII and lowercase:
//!   two names never differ only by case or by a look-alike character.
//!   `blvm-node` is reserved: a module may depend on it (that constrains the
//!   node's version, see [`Dependency::is_node`]) but may not take it.
//! - **Versions** are semantic versions (`1.2.3`, `1.2.3-rc.1`); `1.2` is
//!   refused.
//! - **Dependency ranges** are parsed by the `semver` crate, Cargo's
//!   syntax: `>=1.0.0`, `^1.2`, `~1.2.3`, `=1.0.0`, `*`, and comma-joined
//!   `>=1.0, <2.0`. A bare `1.2.3` means `^1.2.3`. A range does not match
//!   pre-releases unless it names one with the same `major.minor.patch`.
//! - **Thresholds** are `M-of-N` with `1 <= M <= N`. When `[governance]`
//!   lists maintainers, `N` of both thresholds must equal their number, every
//!   signer must be one of them, and the two thresholds must agree.
//! - **`entry_point`** is a file name inside the module's folder: no path
//!   separator, not absolute, no `..`. It defaults to the module's name
//!   (the layout the installer writes: `modules/<name>/<name>`).
//! - **`[binary] hash`** is `sha256:` followed by 64 hex digits.
//! - **Capabilities** are the 24 names of
//!   [`blvm_module_protocol::Permission`]; an unknown one is refused by name.
//! - **`publishes`** lists the events the module may publish (at most 64):
//!   catalogue events that are not node events (`PaymentSettled`,
//!   `ChannelOpened`, …) and its own `<module name>.<Event>`; a node event
//!   (`NewBlock`) or another module's name is refused
//!   (`crate::services::modules::publish::declarable`).
//!
//! # Unknown keys
//!
//! Unknown keys are refused at the top level and in `[signatures]`,
//! `[binary]` and `[compatibility]`: a misspelt `min_node_verison` or `hsah`
//! would otherwise switch a check off without a word (the earlier
//! implementation did exactly that). Unknown keys inside `[governance]` are
//! accepted and ignored: governance is registry policy the node records but
//! does not enforce, and registries may add fields there without breaking
//! installed nodes. `config_schema` is a free table of key → description.
//! `[resources]` (`memory_mb`, `max_processes`, `cpu_percent`,
//! `max_open_files`, `disk_mb`, `storage_mb`, `storage_keys`, `read_only`)
//! refuses unknown keys too: a misspelt limit would silently not apply.
//!
//! `[resources] read_only` lists absolute paths outside its folder the
//! module needs to read (an interpreter, a virtual environment): normal
//! (no `.` or `..`), not `/`, at most 64. It is a request: the operator's
//! configuration decides, and a module asking for a path the operator has
//! not allowed is not loaded (`ModuleManager` says which path and where to
//! allow it).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use blvm_module_protocol::{Permission, PermissionSet};
use semver::{Version, VersionReq};
use serde::Deserialize;

/// The largest `module.toml` accepted, in bytes (64 KiB). Checked before the
/// file is read.
pub const MAX_MANIFEST_LEN: u64 = 64 * 1024;

/// The dependency name that constrains the node's own version rather than
/// naming a module.
pub const NODE_DEPENDENCY: &str = "blvm-node";

/// The longest module name accepted, in characters.
pub const MAX_NAME_LEN: usize = 64;

/// The keys a manifest may have at its top level.
const TOP_LEVEL_KEYS: &[&str] = &[
    "name",
    "version",
    "description",
    "author",
    "entry_point",
    "governance",
    "signatures",
    "binary",
    "dependencies",
    "compatibility",
    "capabilities",
    "publishes",
    "config_schema",
    "resources",
];

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A `module.toml` that could not be read or was refused.
///
/// Its display names the file, the field (a dotted path such as
/// `signatures.maintainers[1].key`, absent for errors about the whole file)
/// and what was expected:
///
/// ```text
/// modules/foo/module.toml: field `version`: expected a semantic version like 1.2.3, got "1.2"
/// ```
#[derive(Debug, thiserror::Error)]
pub struct ManifestError {
    path: PathBuf,
    field: String,
    kind: ManifestErrorKind,
}

impl ManifestError {
    fn new(path: &Path, field: impl Into<String>, kind: ManifestErrorKind) -> Self {
        ManifestError {
            path: path.to_path_buf(),
            field: field.into(),
            kind,
        }
    }

    /// The manifest file (or the origin given to [`ModuleManifest::from_toml_str`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The field, as a dotted path; empty when the error concerns the whole
    /// file (too large, unreadable, not TOML).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What was wrong.
    pub fn kind(&self) -> &ManifestErrorKind {
        &self.kind
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.path.display(), self.kind)
        } else {
            write!(f, "{}: field `{}`: {}", self.path.display(), self.field, self.kind)
        }
    }
}

/// What was wrong with a manifest field (see [`ManifestError`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestErrorKind {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Io(#[source] std::io::Error),
    /// The file is larger than [`MAX_MANIFEST_LEN`].
    #[error("file is {size} bytes, more than the {max} bytes a manifest may have")]
    TooLarge {
        /// The size found (at least; reading stops past the limit).
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The text is not valid TOML.
    #[error("not valid TOML at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A key this section does not have (a typo, usually).
    #[error("unknown key{}", .suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownKey {
        /// A known key with a similar spelling.
        suggestion: Option<String>,
    },
    /// A top-level key written after a `[section]` header, which TOML
    /// places inside that section.
    #[error("`{key}` is a top-level key, but TOML puts keys written after a [section] header inside that section; move it above the first [section]")]
    MisplacedKey {
        /// The key.
        key: String,
    },
    /// A required field is absent.
    #[error("missing; expected {expected}")]
    Missing {
        /// What the field should hold.
        expected: &'static str,
    },
    /// The field has the wrong TOML type.
    #[error("{message}")]
    WrongType {
        /// The deserializer's message (`invalid type: integer `2`, expected a string`).
        message: String,
    },
    /// The field has the right type but a value that is not allowed.
    #[error("expected {expected}, got {got:?}")]
    Invalid {
        /// What the field should hold.
        expected: &'static str,
        /// The value found.
        got: String,
    },
    /// A capability that is not one of the 24 permission names.
    #[error("unknown capability `{name}` (expected one of the {} names of the permission table)", Permission::ALL.len())]
    UnknownCapability {
        /// The name found.
        name: String,
    },
    /// A threshold whose `N` is not the number of maintainers listed in
    /// `[governance]`.
    #[error("threshold {threshold} does not match the {maintainers} maintainers listed in [governance]")]
    ThresholdMismatch {
        /// The threshold found.
        threshold: Threshold,
        /// How many maintainers `[governance]` lists.
        maintainers: usize,
    },
    /// `[signatures] threshold` differs from `[governance] threshold`.
    #[error("threshold {signatures} differs from [governance] threshold {governance}")]
    ThresholdsDisagree {
        /// `[governance] threshold`.
        governance: Threshold,
        /// `[signatures] threshold`.
        signatures: Threshold,
    },
    /// More signatures than the threshold's `N`.
    #[error("{count} signatures listed, more than the {n} maintainers of the threshold")]
    TooManySignatures {
        /// Signatures listed.
        count: usize,
        /// The threshold's `N`.
        n: u32,
    },
    /// A signer that `[governance] maintainers` does not list.
    #[error("`{name}` signed but is not listed in [governance] maintainers")]
    NotAMaintainer {
        /// The signer's name.
        name: String,
    },
    /// A value listed twice where each must be unique.
    #[error("`{value}` is listed more than once")]
    Duplicate {
        /// The repeated value.
        value: String,
    },
    /// The module depends on itself.
    #[error("a module cannot depend on itself")]
    SelfDependency,
    /// The module takes the name reserved for the node.
    #[error("`{NODE_DEPENDENCY}` is reserved for the node itself")]
    ReservedName,
}

// ---------------------------------------------------------------------------
// Raw shape
// ---------------------------------------------------------------------------

/// `module.toml` as written, before validation: every leaf optional and
/// untyped beyond TOML's own types.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawManifest {
    /// `name`.
    pub name: Option<String>,
    /// `version`.
    pub version: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `author`.
    pub author: Option<String>,
    /// `entry_point`.
    pub entry_point: Option<String>,
    /// `[governance]`.
    pub governance: Option<RawGovernance>,
    /// `[signatures]`.
    pub signatures: Option<RawSignatures>,
    /// `[binary]`.
    pub binary: Option<RawBinary>,
    /// `[dependencies]`: name → range.
    pub dependencies: Option<BTreeMap<String, String>>,
    /// `[compatibility]`.
    pub compatibility: Option<RawCompatibility>,
    /// `capabilities`.
    pub capabilities: Option<Vec<String>>,
    /// `publishes`: the events the module may publish.
    pub publishes: Option<Vec<String>>,
    /// `[config_schema]`: config key → description.
    pub config_schema: Option<BTreeMap<String, String>>,
    /// `[resources]`: the limits the module asks to run under.
    pub resources: Option<RawResources>,
    /// The digest maintainers sign, computed by [`RawManifest::parse`] from
    /// the parsed table (`crate::security::canonical`); `None` when this
    /// value was built some other way.
    #[serde(skip)]
    pub signing_digest: Option<Result<[u8; 32], String>>,
}

/// `[resources]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResources {
    /// `memory_mb`: memory of all its processes together, MiB.
    pub memory_mb: Option<u64>,
    /// `max_processes`: processes and threads.
    pub max_processes: Option<u64>,
    /// `cpu_percent`: CPU in percent of one core.
    pub cpu_percent: Option<u32>,
    /// `max_open_files`: open files per process.
    pub max_open_files: Option<u64>,
    /// `disk_mb`: size of its data dir, MiB.
    pub disk_mb: Option<u64>,
    /// `storage_mb`: its module storage quota, MiB.
    pub storage_mb: Option<u64>,
    /// `storage_keys`: its module storage quota, keys.
    pub storage_keys: Option<u64>,
    /// `read_only`: paths outside its folder it asks to read (and execute).
    pub read_only: Option<Vec<String>>,
}

/// `[resources]`, validated: the limits a module declares it needs. The
/// node applies the stricter of these and the operator's own limits, so a
/// manifest can tighten its sandbox but never loosen the operator's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Memory of all its processes together, bytes.
    pub memory_bytes: Option<u64>,
    /// Processes and threads.
    pub max_processes: Option<u64>,
    /// CPU, percent of one core.
    pub cpu_percent: Option<u32>,
    /// Open files per process.
    pub max_open_files: Option<u64>,
    /// Size of its data dir, bytes.
    pub disk_bytes: Option<u64>,
    /// Its module storage quota, bytes (the operator's cap still applies).
    pub storage_bytes: Option<u64>,
    /// Its module storage quota, keys (the operator's cap still applies).
    pub storage_keys: Option<u64>,
}

/// `[governance]` as written. Unknown keys are ignored (see the module doc).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawGovernance {
    /// `tier`.
    pub tier: Option<String>,
    /// `maintainers`.
    pub maintainers: Option<Vec<String>>,
    /// `threshold`.
    pub threshold: Option<String>,
    /// `review_period_days`.
    pub review_period_days: Option<u32>,
    /// Keys this version does not know; ignored, except that a top-level
    /// key found here (misplaced after the header) is refused.
    #[serde(flatten)]
    pub other: BTreeMap<String, toml::Value>,
}

/// `[signatures]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSignatures {
    /// `maintainers`: who signed, with which key.
    pub maintainers: Option<Vec<RawSignature>>,
    /// `threshold`.
    pub threshold: Option<String>,
}

/// One entry of `[signatures] maintainers` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSignature {
    /// `name`.
    pub name: Option<String>,
    /// `key`: hex.
    pub key: Option<String>,
    /// `signature`: hex.
    pub signature: Option<String>,
}

/// `[binary]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBinary {
    /// `hash`: `sha256:<hex>`.
    pub hash: Option<String>,
    /// `size` in bytes.
    pub size: Option<u64>,
    /// `download_url`.
    pub download_url: Option<String>,
}

/// `[compatibility]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompatibility {
    /// `min_consensus_version`.
    pub min_consensus_version: Option<String>,
    /// `min_protocol_version`.
    pub min_protocol_version: Option<String>,
    /// `min_node_version`.
    pub min_node_version: Option<String>,
    /// `tested_with`: node versions.
    pub tested_with: Option<Vec<String>>,
}

impl RawManifest {
    /// Parses manifest text into the raw shape, refusing syntax errors,
    /// unknown keys and wrong TOML types. `path` is only used in errors.
    ///
    /// # Errors
    ///
    /// [`ManifestErrorKind::TooLarge`], [`ManifestErrorKind::Syntax`],
    /// [`ManifestErrorKind::UnknownKey`] or [`ManifestErrorKind::WrongType`].
    pub fn parse(text: &str, path: &Path) -> Result<RawManifest, ManifestError> {
        if text.len() as u64 > MAX_MANIFEST_LEN {
            let kind = ManifestErrorKind::TooLarge {
                size: text.len() as u64,
                max: MAX_MANIFEST_LEN,
            };
            return Err(ManifestError::new(path, "", kind));
        }
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_column(text, s.start)).unwrap_or((0, 0));
            let kind = ManifestErrorKind::Syntax {
                line,
                column,
                message: e.message().trim().to_owned(),
            };
            ManifestError::new(path, "", kind)
        })?;
        // Checked here rather than left to `deny_unknown_fields` so the error
        // names the key itself and can suggest the intended one.
        if let Some(key) = table.keys().find(|k| !TOP_LEVEL_KEYS.contains(&k.as_str())) {
            let suggestion = suggest(key, TOP_LEVEL_KEYS).map(str::to_owned);
            return Err(ManifestError::new(
                path,
                key.as_str(),
                ManifestErrorKind::UnknownKey { suggestion },
            ));
        }
        let signing_digest = crate::security::canonical::signing_digest(&table);
        let mut raw: RawManifest = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let field = e.path().to_string();
            let message = e.inner().message().trim().to_owned();
            let kind = match classify_serde_message(message) {
                ManifestErrorKind::UnknownKey { .. } if is_misplaced(&field) => {
                    let key = field.rsplit('.').next().unwrap_or_default().to_owned();
                    ManifestErrorKind::MisplacedKey { key }
                }
                kind => kind,
            };
            ManifestError::new(path, field, kind)
        })?;
        raw.signing_digest = Some(signing_digest);
        Ok(raw)
    }

    /// Validates the raw shape into a [`ModuleManifest`]. `path` is only
    /// used in errors.
    ///
    /// # Errors
    ///
    /// The first rule broken (see the module doc), naming its field.
    pub fn validate(self, path: &Path) -> Result<ModuleManifest, ManifestError> {
        let err = |field: &str, kind| ManifestError::new(path, field, kind);
        let invalid = |field: &str, expected, got: &str| {
            ManifestError::new(
                path,
                field,
                ManifestErrorKind::Invalid {
                    expected,
                    got: got.to_owned(),
                },
            )
        };

        let name = self.name.ok_or_else(|| {
            err(
                "name",
                ManifestErrorKind::Missing {
                    expected: NAME_EXPECTED,
                },
            )
        })?;
        let name = ModuleName::parse(&name).map_err(|kind| err("name", kind))?;
        if name.as_str() == NODE_DEPENDENCY {
            return Err(err("name", ManifestErrorKind::ReservedName));
        }

        let version = self.version.ok_or_else(|| {
            err(
                "version",
                ManifestErrorKind::Missing {
                    expected: VERSION_EXPECTED,
                },
            )
        })?;
        let version = parse_version(&version).map_err(|kind| err("version", kind))?;

        let description = non_empty_opt(self.description, "description", path)?;
        let author = non_empty_opt(self.author, "author", path)?;

        let entry_point = match self.entry_point {
            Some(e) => {
                if !is_valid_entry_point(&e) {
                    return Err(invalid("entry_point", ENTRY_POINT_EXPECTED, &e));
                }
                e
            }
            None => name.as_str().to_owned(),
        };

        let governance = self.governance.map(|g| g.validate(path)).transpose()?;
        let signatures = self
            .signatures
            .map(|s| s.validate(path, governance.as_ref()))
            .transpose()?;
        let binary = self.binary.map(|b| b.validate(path)).transpose()?;

        let mut dependencies = Vec::new();
        for (dep_name, raw) in self.dependencies.unwrap_or_default() {
            let field = format!("dependencies.{dep_name}");
            let dep_name = ModuleName::parse(&dep_name).map_err(|kind| err(&field, kind))?;
            if dep_name == name {
                return Err(err(&field, ManifestErrorKind::SelfDependency));
            }
            let req = parse_version_req(&raw).map_err(|kind| err(&field, kind))?;
            dependencies.push(Dependency {
                name: dep_name,
                req,
                raw,
            });
        }

        let compatibility = self
            .compatibility
            .map(|c| c.validate(path))
            .transpose()?
            .unwrap_or_default();

        let mut capabilities = PermissionSet::empty();
        for (i, cap) in self.capabilities.unwrap_or_default().iter().enumerate() {
            let permission = Permission::from_name(cap).ok_or_else(|| {
                err(
                    &format!("capabilities[{i}]"),
                    ManifestErrorKind::UnknownCapability { name: cap.clone() },
                )
            })?;
            capabilities.insert(permission);
        }

        let publishes = self.publishes.unwrap_or_default();
        if publishes.len() > MAX_PUBLISHES {
            return Err(invalid("publishes", "at most 64 events", &publishes.len().to_string()));
        }
        for (i, event) in publishes.iter().enumerate() {
            if crate::services::modules::publish::declarable(name.as_str(), event).is_err() {
                return Err(invalid(
                    &format!("publishes[{i}]"),
                    "an event a module may publish: a catalogue event that is not a node event, or `<module name>.<Event>`",
                    event,
                ));
            }
        }

        let config_schema = self.config_schema.unwrap_or_default();

        let read_only = read_only_paths(self.resources.as_ref().and_then(|r| r.read_only.as_deref()), path)?;
        let resources = match self.resources {
            None => Resources::default(),
            Some(r) => {
                let positive = |field: &str, v: Option<u64>, max: u64| match v {
                    Some(n) if n == 0 || n > max => Err(invalid(
                        field,
                        "a whole number above 0 within the host's range",
                        &n.to_string(),
                    )),
                    other => Ok(other),
                };
                Resources {
                    memory_bytes: positive("resources.memory_mb", r.memory_mb, 1 << 30)?.map(|mb| mb << 20),
                    max_processes: positive("resources.max_processes", r.max_processes, 1 << 22)?,
                    cpu_percent: positive("resources.cpu_percent", r.cpu_percent.map(u64::from), 100_000)?
                        .map(|p| p as u32),
                    max_open_files: positive("resources.max_open_files", r.max_open_files, 1 << 20)?,
                    disk_bytes: positive("resources.disk_mb", r.disk_mb, 1 << 30)?.map(|mb| mb << 20),
                    storage_bytes: positive("resources.storage_mb", r.storage_mb, 1 << 30)?.map(|mb| mb << 20),
                    storage_keys: positive("resources.storage_keys", r.storage_keys, 1 << 40)?,
                }
            }
        };

        Ok(ModuleManifest {
            name,
            version,
            description,
            author,
            entry_point,
            governance,
            signatures,
            binary,
            dependencies,
            compatibility,
            capabilities,
            publishes,
            config_schema,
            resources,
            read_only,
            signing_digest: self
                .signing_digest
                .unwrap_or_else(|| Err("the manifest was not parsed from TOML text".to_owned())),
        })
    }
}

impl RawGovernance {
    fn validate(self, path: &Path) -> Result<Governance, ManifestError> {
        let err = |field: &str, kind| ManifestError::new(path, field, kind);
        if let Some(key) = self.other.keys().find(|k| TOP_LEVEL_KEYS.contains(&k.as_str())) {
            let kind = ManifestErrorKind::MisplacedKey { key: key.clone() };
            return Err(err(&format!("governance.{key}"), kind));
        }
        let tier = non_empty_opt(self.tier, "governance.tier", path)?;
        let maintainers = match self.maintainers {
            Some(list) => {
                let mut seen = BTreeSet::new();
                for (i, m) in list.iter().enumerate() {
                    let field = format!("governance.maintainers[{i}]");
                    if m.trim().is_empty() {
                        return Err(err(&field, invalid_kind("a maintainer's name", m)));
                    }
                    if !seen.insert(m.as_str()) {
                        return Err(err(&field, ManifestErrorKind::Duplicate { value: m.clone() }));
                    }
                }
                list
            }
            None => Vec::new(),
        };
        let threshold = match self.threshold {
            Some(t) => {
                let threshold: Threshold = t.parse().map_err(|kind| err("governance.threshold", kind))?;
                if !maintainers.is_empty() && threshold.n() as usize != maintainers.len() {
                    let kind = ManifestErrorKind::ThresholdMismatch {
                        threshold,
                        maintainers: maintainers.len(),
                    };
                    return Err(err("governance.threshold", kind));
                }
                Some(threshold)
            }
            None => None,
        };
        Ok(Governance {
            tier,
            maintainers,
            threshold,
            review_period_days: self.review_period_days,
        })
    }
}

impl RawSignatures {
    fn validate(self, path: &Path, governance: Option<&Governance>) -> Result<Signatures, ManifestError> {
        let err = |field: &str, kind| ManifestError::new(path, field, kind);
        let threshold = self.threshold.ok_or_else(|| {
            err(
                "signatures.threshold",
                ManifestErrorKind::Missing {
                    expected: THRESHOLD_EXPECTED,
                },
            )
        })?;
        let threshold: Threshold = threshold.parse().map_err(|kind| err("signatures.threshold", kind))?;
        let listed = governance.map(|g| g.maintainers.as_slice()).unwrap_or_default();
        if !listed.is_empty() && threshold.n() as usize != listed.len() {
            let kind = ManifestErrorKind::ThresholdMismatch {
                threshold,
                maintainers: listed.len(),
            };
            return Err(err("signatures.threshold", kind));
        }
        if let Some(g) = governance.and_then(|g| g.threshold) {
            if g != threshold {
                let kind = ManifestErrorKind::ThresholdsDisagree {
                    governance: g,
                    signatures: threshold,
                };
                return Err(err("signatures.threshold", kind));
            }
        }

        let raw = self.maintainers.unwrap_or_default();
        if raw.len() > threshold.n() as usize {
            let kind = ManifestErrorKind::TooManySignatures {
                count: raw.len(),
                n: threshold.n(),
            };
            return Err(err("signatures.maintainers", kind));
        }
        let mut signatures = Vec::with_capacity(raw.len());
        let mut names = BTreeSet::new();
        let mut keys = BTreeSet::new();
        for (i, s) in raw.into_iter().enumerate() {
            let field = |leaf: &str| format!("signatures.maintainers[{i}].{leaf}");
            let name = s.name.ok_or_else(|| {
                err(
                    &field("name"),
                    ManifestErrorKind::Missing {
                        expected: "the signer's name",
                    },
                )
            })?;
            if name.trim().is_empty() {
                return Err(err(&field("name"), invalid_kind("the signer's name", &name)));
            }
            if !listed.is_empty() && !listed.contains(&name) {
                return Err(err(&field("name"), ManifestErrorKind::NotAMaintainer { name }));
            }
            if !names.insert(name.clone()) {
                return Err(err(&field("name"), ManifestErrorKind::Duplicate { value: name }));
            }
            let key = s
                .key
                .ok_or_else(|| err(&field("key"), ManifestErrorKind::Missing { expected: KEY_EXPECTED }))?;
            let key_bytes = decode_hex(&key)
                .filter(|b| b.len() == 33 && matches!(b[0], 0x02 | 0x03))
                .ok_or_else(|| err(&field("key"), invalid_kind(KEY_EXPECTED, &key)))?;
            let key_bytes: [u8; 33] = key_bytes
                .try_into()
                .map_err(|_| err(&field("key"), invalid_kind(KEY_EXPECTED, &key)))?;
            if !keys.insert(key_bytes) {
                return Err(err(&field("key"), ManifestErrorKind::Duplicate { value: key }));
            }
            let sig = s.signature.ok_or_else(|| {
                err(
                    &field("signature"),
                    ManifestErrorKind::Missing {
                        expected: SIGNATURE_EXPECTED,
                    },
                )
            })?;
            let sig_bytes = decode_hex(&sig)
                .filter(|b| (8..=72).contains(&b.len()))
                .ok_or_else(|| err(&field("signature"), invalid_kind(SIGNATURE_EXPECTED, &sig)))?;
            signatures.push(MaintainerSignature {
                name,
                key: key_bytes,
                signature: sig_bytes,
            });
        }
        Ok(Signatures {
            maintainers: signatures,
            threshold,
        })
    }
}

impl RawBinary {
    fn validate(self, path: &Path) -> Result<BinaryInfo, ManifestError> {
        let hash = match self.hash {
            Some(h) => Some(
                h.parse::<BinaryHash>()
                    .map_err(|kind| ManifestError::new(path, "binary.hash", kind))?,
            ),
            None => None,
        };
        let download_url = match self.download_url {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => Some(url),
            Some(url) => {
                return Err(ManifestError::new(
                    path,
                    "binary.download_url",
                    invalid_kind(URL_EXPECTED, &url),
                ))
            }
            None => None,
        };
        Ok(BinaryInfo {
            hash,
            size: self.size,
            download_url,
        })
    }
}

impl RawCompatibility {
    fn validate(self, path: &Path) -> Result<Compatibility, ManifestError> {
        let version = |field: &str, v: Option<String>| {
            v.map(|v| parse_version(&v).map_err(|kind| ManifestError::new(path, field, kind)))
                .transpose()
        };
        let mut tested_with = Vec::new();
        for (i, v) in self.tested_with.unwrap_or_default().iter().enumerate() {
            let field = format!("compatibility.tested_with[{i}]");
            tested_with.push(parse_version(v).map_err(|kind| ManifestError::new(path, field, kind))?);
        }
        Ok(Compatibility {
            min_consensus_version: version("compatibility.min_consensus_version", self.min_consensus_version)?,
            min_protocol_version: version("compatibility.min_protocol_version", self.min_protocol_version)?,
            min_node_version: version("compatibility.min_node_version", self.min_node_version)?,
            tested_with,
        })
    }
}

// ---------------------------------------------------------------------------
// Validated shape
// ---------------------------------------------------------------------------

const NAME_EXPECTED: &str =
    "a module name: 1 to 64 characters of a-z, 0-9, `-` or `_`, starting with a letter or digit";
const VERSION_EXPECTED: &str = "a semantic version like 1.2.3";
const RANGE_EXPECTED: &str = "a version range like >=1.0.0, ^1.2, ~1.2.3, =1.0.0, * or >=1.0, <2.0";
const THRESHOLD_EXPECTED: &str = "a threshold `M-of-N` with 1 <= M <= N, like 2-of-3";
const HASH_EXPECTED: &str = "`sha256:` followed by 64 hex digits";
const KEY_EXPECTED: &str = "a compressed secp256k1 public key: 66 hex digits starting with 02 or 03";
const SIGNATURE_EXPECTED: &str = "a hex-encoded signature (8 to 72 bytes)";
const ENTRY_POINT_EXPECTED: &str = "a file name inside the module's folder (no `/`, `\\` or `..`)";
const URL_EXPECTED: &str = "an http:// or https:// URL";

/// A validated module name (see the module doc for the rule).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModuleName(String);

impl ModuleName {
    fn parse(s: &str) -> Result<ModuleName, ManifestErrorKind> {
        if is_valid_name(s) {
            Ok(ModuleName(s.to_owned()))
        } else {
            Err(invalid_kind(NAME_EXPECTED, s))
        }
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ModuleName {
    type Err = ManifestErrorKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModuleName::parse(s)
    }
}

impl fmt::Display for ModuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ModuleName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for ModuleName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// A validated `module.toml`.
///
/// Only [`ModuleManifest::from_file`], [`ModuleManifest::from_toml_str`] and
/// [`RawManifest::validate`] make one, so holding one means every rule in the
/// module doc held.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleManifest {
    name: ModuleName,
    version: Version,
    description: Option<String>,
    author: Option<String>,
    entry_point: String,
    governance: Option<Governance>,
    signatures: Option<Signatures>,
    binary: Option<BinaryInfo>,
    dependencies: Vec<Dependency>,
    compatibility: Compatibility,
    capabilities: PermissionSet,
    publishes: Vec<String>,
    config_schema: BTreeMap<String, String>,
    resources: Resources,
    read_only: Vec<PathBuf>,
    signing_digest: Result<[u8; 32], String>,
}

impl ModuleManifest {
    /// Reads and validates `path`, checking its size before reading it.
    ///
    /// # Errors
    ///
    /// [`ManifestErrorKind::Io`], [`ManifestErrorKind::TooLarge`], or any
    /// refusal of [`RawManifest::parse`] and [`RawManifest::validate`].
    pub fn from_file(path: &Path) -> Result<ModuleManifest, ManifestError> {
        let io = |e| ManifestError::new(path, "", ManifestErrorKind::Io(e));
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let too_large = |size| {
            ManifestError::new(
                path,
                "",
                ManifestErrorKind::TooLarge {
                    size,
                    max: MAX_MANIFEST_LEN,
                },
            )
        };
        if len > MAX_MANIFEST_LEN {
            return Err(too_large(len));
        }
        // The metadata can lie (a file growing, a special file): read at most
        // one byte past the limit and check again.
        let mut text = String::new();
        file.take(MAX_MANIFEST_LEN + 1).read_to_string(&mut text).map_err(io)?;
        if text.len() as u64 > MAX_MANIFEST_LEN {
            return Err(too_large(text.len() as u64));
        }
        ModuleManifest::from_toml_str(&text, path)
    }

    /// Parses and validates manifest text; `origin` names it in errors (for
    /// a manual installation, the path the metadata came from).
    ///
    /// # Errors
    ///
    /// Any refusal of [`RawManifest::parse`] and [`RawManifest::validate`].
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<ModuleManifest, ManifestError> {
        RawManifest::parse(text, origin)?.validate(origin)
    }

    /// The module's name.
    pub fn name(&self) -> &ModuleName {
        &self.name
    }

    /// The module's version.
    pub fn version(&self) -> &Version {
        &self.version
    }

    /// `description`, if given.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// `author`, if given.
    pub fn author(&self) -> Option<&str> {
        self.author.as_deref()
    }

    /// The binary's file name inside the module's folder (`entry_point`, or
    /// the module's name when absent).
    pub fn entry_point(&self) -> &str {
        &self.entry_point
    }

    /// `[governance]`, if given.
    pub fn governance(&self) -> Option<&Governance> {
        self.governance.as_ref()
    }

    /// `[signatures]`, if given.
    pub fn signatures(&self) -> Option<&Signatures> {
        self.signatures.as_ref()
    }

    /// The digest its maintainers sign (`crate::security::canonical`), or
    /// why it has none (a float or datetime in the manifest).
    pub fn signing_digest(&self) -> Result<&[u8; 32], &str> {
        self.signing_digest.as_ref().map_err(String::as_str)
    }

    /// `[binary]`, if given.
    pub fn binary(&self) -> Option<&BinaryInfo> {
        self.binary.as_ref()
    }

    /// Every dependency, `blvm-node` included, sorted by name.
    pub fn dependencies(&self) -> &[Dependency] {
        &self.dependencies
    }

    /// The dependencies on other modules (everything but `blvm-node`).
    pub fn module_dependencies(&self) -> impl Iterator<Item = &Dependency> {
        self.dependencies.iter().filter(|d| !d.is_node())
    }

    /// The range the node's version must satisfy (`[dependencies]
    /// "blvm-node"`), if given.
    pub fn node_requirement(&self) -> Option<&Dependency> {
        self.dependencies.iter().find(|d| d.is_node())
    }

    /// `[compatibility]` (every field absent when the section is).
    pub fn compatibility(&self) -> &Compatibility {
        &self.compatibility
    }

    /// The capabilities the module asks for.
    pub fn capabilities(&self) -> PermissionSet {
        self.capabilities
    }

    /// `publishes`: the events the module may publish.
    pub fn publishes(&self) -> &[String] {
        &self.publishes
    }

    /// `[config_schema]`: config key → description.
    pub fn config_schema(&self) -> &BTreeMap<String, String> {
        &self.config_schema
    }

    /// `[resources]`: the limits the module asks to run under.
    pub fn resources(&self) -> Resources {
        self.resources
    }

    /// `[resources] read_only`: the paths outside its folder the module
    /// asks to read; the operator decides whether it may.
    pub fn read_only(&self) -> &[PathBuf] {
        &self.read_only
    }
}

/// The most events `publishes` may list.
const MAX_PUBLISHES: usize = 64;

/// The most paths `[resources] read_only` may list.
pub const MAX_READ_ONLY_PATHS: usize = 64;

/// `[resources] read_only`, checked: absolute, normal, not the root.
fn read_only_paths(raw: Option<&[String]>, path: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let raw = raw.unwrap_or_default();
    let invalid = |i: usize, got: &str| {
        ManifestError::new(
            path,
            format!("resources.read_only[{i}]"),
            ManifestErrorKind::Invalid {
                expected: "an absolute path without `.` or `..` components, not `/`",
                got: got.to_owned(),
            },
        )
    };
    if raw.len() > MAX_READ_ONLY_PATHS {
        return Err(ManifestError::new(
            path,
            "resources.read_only",
            ManifestErrorKind::Invalid {
                expected: "at most 64 paths",
                got: raw.len().to_string(),
            },
        ));
    }
    raw.iter()
        .enumerate()
        .map(|(i, p)| {
            // `/` then non-empty segments, none `.` or `..` (checked on the
            // text: `Path` would quietly drop a `.`).
            let normal = p
                .strip_prefix('/')
                .is_some_and(|rest| rest.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != ".."));
            if normal {
                Ok(PathBuf::from(p))
            } else {
                Err(invalid(i, p))
            }
        })
        .collect()
}

/// `[governance]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Governance {
    /// `tier` (`"application"`, …), recorded, not interpreted.
    pub tier: Option<String>,
    /// The maintainers' names, unique.
    pub maintainers: Vec<String>,
    /// How many maintainers must sign.
    pub threshold: Option<Threshold>,
    /// `review_period_days`.
    pub review_period_days: Option<u32>,
}

/// `[signatures]`, validated in form; whether the signatures verify is
/// decided later, against the operator's keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signatures {
    /// The signatures, each by a different maintainer with a different key.
    pub maintainers: Vec<MaintainerSignature>,
    /// How many must verify.
    pub threshold: Threshold,
}

/// One maintainer's signature over the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintainerSignature {
    /// The maintainer's name.
    pub name: String,
    /// A compressed secp256k1 public key (33 bytes, `02`/`03` prefix); not
    /// yet checked to be on the curve.
    pub key: [u8; 33],
    /// The signature bytes as written (compact or DER; checked by the verifier).
    pub signature: Vec<u8>,
}

/// An `M-of-N` threshold with `1 <= M <= N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Threshold {
    m: u32,
    n: u32,
}

impl Threshold {
    /// `Some` when `1 <= m <= n`.
    pub fn new(m: u32, n: u32) -> Option<Threshold> {
        (1 <= m && m <= n).then_some(Threshold { m, n })
    }

    /// How many signatures are needed.
    pub fn m(&self) -> u32 {
        self.m
    }

    /// Of how many maintainers.
    pub fn n(&self) -> u32 {
        self.n
    }
}

impl FromStr for Threshold {
    type Err = ManifestErrorKind;

    /// Parses `M-of-N`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || invalid_kind(THRESHOLD_EXPECTED, s);
        let (m, n) = s.split_once("-of-").ok_or_else(bad)?;
        let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
        if !digits(m) || !digits(n) {
            return Err(bad());
        }
        let m = m.parse().map_err(|_| bad())?;
        let n = n.parse().map_err(|_| bad())?;
        Threshold::new(m, n).ok_or_else(bad)
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-of-{}", self.m, self.n)
    }
}

/// `[binary]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryInfo {
    /// The sha256 of the binary, if given.
    pub hash: Option<BinaryHash>,
    /// The binary's size in bytes, if given.
    pub size: Option<u64>,
    /// Where the registry serves the binary, if given.
    pub download_url: Option<String>,
}

/// The sha256 of a module binary; written `sha256:<64 hex digits>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BinaryHash(pub [u8; 32]);

impl FromStr for BinaryHash {
    type Err = ManifestErrorKind;

    /// Parses `sha256:<64 hex digits>` (either case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || invalid_kind(HASH_EXPECTED, s);
        let hex = s.strip_prefix("sha256:").ok_or_else(bad)?;
        let bytes = decode_hex(hex).ok_or_else(bad)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        Ok(BinaryHash(bytes))
    }
}

impl fmt::Display for BinaryHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// One `[dependencies]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The module depended on, or `blvm-node` for the node itself.
    pub name: ModuleName,
    /// The range its version must satisfy.
    pub req: VersionReq,
    /// The range as written, for messages.
    pub raw: String,
}

impl Dependency {
    /// Whether this constrains the node's version (`blvm-node`) rather than
    /// naming a module.
    pub fn is_node(&self) -> bool {
        self.name.as_str() == NODE_DEPENDENCY
    }
}

/// `[compatibility]`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compatibility {
    /// The oldest consensus version the module works with.
    pub min_consensus_version: Option<Version>,
    /// The oldest module protocol version the module speaks.
    pub min_protocol_version: Option<Version>,
    /// The oldest node version the module works with.
    pub min_node_version: Option<Version>,
    /// Node versions the author tested with (informational).
    pub tested_with: Vec<Version>,
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn invalid_kind(expected: &'static str, got: &str) -> ManifestErrorKind {
    ManifestErrorKind::Invalid {
        expected,
        got: got.to_owned(),
    }
}

fn non_empty_opt(value: Option<String>, field: &str, path: &Path) -> Result<Option<String>, ManifestError> {
    match value {
        Some(v) if v.trim().is_empty() => Err(ManifestError::new(path, field, invalid_kind("a non-empty string", &v))),
        other => Ok(other),
    }
}

/// Whether `s` is a valid module name (see the module doc).
pub fn is_valid_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    let first_ok = matches!(bytes.next(), Some(b'a'..=b'z' | b'0'..=b'9'));
    first_ok && s.len() <= MAX_NAME_LEN && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'))
}

fn is_valid_entry_point(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s != "."
        && !s.contains("..")
        && !s.contains(['/', '\\', '\0'])
        && !Path::new(s).is_absolute()
}

fn parse_version(s: &str) -> Result<Version, ManifestErrorKind> {
    Version::parse(s).map_err(|_| invalid_kind(VERSION_EXPECTED, s))
}

fn parse_version_req(s: &str) -> Result<VersionReq, ManifestErrorKind> {
    VersionReq::parse(s).map_err(|_| invalid_kind(RANGE_EXPECTED, s))
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// Turns a serde message into a kind: an unknown field inside a section is
/// reported as such, everything else is a type error.
fn classify_serde_message(message: String) -> ManifestErrorKind {
    // serde's wording: "unknown field `hsah`, expected one of `hash`, `size`, ...".
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let known: Vec<&str> = message.split('`').skip(3).step_by(2).collect();
        let unknown = rest.split('`').next().unwrap_or_default();
        return ManifestErrorKind::UnknownKey {
            suggestion: suggest(unknown, &known).map(str::to_owned),
        };
    }
    ManifestErrorKind::WrongType { message }
}

/// Whether `field` (a dotted path) is a top-level key name inside a section.
fn is_misplaced(field: &str) -> bool {
    field
        .rsplit_once('.')
        .is_some_and(|(_, key)| TOP_LEVEL_KEYS.contains(&key))
}

/// The known key closest to `key` within two edits, if any.
fn suggest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, column)
}
