//! Resolution: which version of a module, and of each module it depends
//! on, to install.
//!
//! The candidates are the signed targets ([`Catalog`]): every manifest
//! target `N/V/module.toml` whose signed [`VersionRecord`] names the same
//! `N` and `V`. For each requested name and range the resolver takes the
//! highest version that is in range, not yanked, and whose manifest is
//! compatible with the node ([`check_compatibility`]); then, depth first,
//! the `[dependencies]` of that manifest. Those come only from the
//! manifest's bytes, downloaded and checked against the signed hash
//! ([`Repository::fetch_target`]): a dependency added anywhere else (the
//! REST API, a tampered file) is never seen (the extraneous-dependencies
//! attack).
//!
//! A dependency already installed at a version in range is kept. The
//! resolver is greedy (no backtracking): when the version chosen for one
//! module does not satisfy another's range, resolution stops with
//! [`ResolveError::Conflict`] naming both, and the operator picks ranges.

// A ResolveError carries every field an operator needs to act (module,
// version, range, what was found). It is built once per command and
// travels a few frames before `InstallError` boxes it, so its size costs
// nothing here, and boxing its fields would only make matching clumsier.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::path::Path;

use blvm_module_host::registry::manifest::MAX_MANIFEST_LEN;
use blvm_module_host::registry::{check_compatibility, CompatibilityError, ModuleManifest, NodeVersions};
use semver::{Version, VersionReq};

use super::repository::Repository;
use crate::layout::{self, VersionRecord};
use crate::tuf::{TargetInfo, TrustedMetadata, VerifyError};

/// One published version: the registry's signed record and the signed
/// facts of its manifest target.
#[derive(Debug, Clone)]
pub struct Published {
    /// The version.
    pub version: Version,
    /// What the registry signed about it.
    pub record: VersionRecord,
    /// The manifest target's signed length and hash.
    pub manifest: TargetInfo,
}

/// Every published version in the signed targets, by module name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    modules: BTreeMap<String, BTreeMap<Version, Published>>,
}

impl Catalog {
    /// The versions `trusted`'s targets list (none before a refresh).
    /// Targets that are not manifests, and manifests whose record is
    /// missing or names another module or version, are left out.
    pub fn from_trusted(trusted: &TrustedMetadata) -> Catalog {
        let mut modules: BTreeMap<String, BTreeMap<Version, Published>> = BTreeMap::new();
        let Some(targets) = trusted.targets() else {
            return Catalog::default();
        };
        for path in targets.targets.keys() {
            let Some((name, version)) = layout::parse_manifest_target(path) else {
                continue;
            };
            let Ok(info) = trusted.target(path) else { continue };
            let Some(record) = VersionRecord::from_custom(info.custom()) else {
                tracing::warn!(target = %path, "manifest target without a version record: skipped");
                continue;
            };
            let Ok(parsed) = Version::parse(version) else {
                tracing::warn!(target = %path, "manifest target with a version that is not semver: skipped");
                continue;
            };
            if record.name != name || record.version != version {
                tracing::warn!(target = %path, "version record names another module or version: skipped");
                continue;
            }
            modules.entry(name.to_owned()).or_default().insert(
                parsed.clone(),
                Published {
                    version: parsed,
                    record,
                    manifest: info,
                },
            );
        }
        Catalog { modules }
    }

    /// The published versions of `name`, oldest first.
    pub fn versions(&self, name: &str) -> Option<&BTreeMap<Version, Published>> {
        self.modules.get(name)
    }

    /// Every module name with its versions, by name.
    pub fn modules(&self) -> impl Iterator<Item = (&str, &BTreeMap<Version, Published>)> {
        self.modules.iter().map(|(n, v)| (n.as_str(), v))
    }
}

/// A module already in `modules/`, as resolution sees it.
#[derive(Debug, Clone)]
pub struct Installed {
    /// Its version.
    pub version: Version,
    /// Its module dependencies: name, range, range as written.
    pub dependencies: Vec<(String, VersionReq, String)>,
}

impl Installed {
    /// The installed view of `manifest`.
    pub fn of(manifest: &ModuleManifest) -> Installed {
        Installed {
            version: manifest.version().clone(),
            dependencies: manifest
                .module_dependencies()
                .map(|d| (d.name.to_string(), d.req.clone(), d.raw.clone()))
                .collect(),
        }
    }
}

/// A version chosen for installation, with its verified manifest.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The chosen version and its signed facts.
    pub published: Published,
    /// The manifest's bytes, as signed.
    pub manifest_bytes: Vec<u8>,
    /// The manifest, parsed from those bytes.
    pub manifest: ModuleManifest,
    /// The range it was chosen for, as written.
    pub requested: String,
    /// The module whose dependency it is (`None` for the one asked for).
    pub required_by: Option<String>,
}

impl Resolved {
    /// The module's name.
    pub fn name(&self) -> &str {
        self.manifest.name().as_str()
    }
}

/// Why no installable set of versions was found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The registry has no module of this name.
    #[error("the registry has no module `{name}`")]
    NoSuchModule {
        /// The name.
        name: String,
    },
    /// No published, unyanked version is in range.
    #[error("`{name}` has no unyanked version matching {required} (published: {})", format_available(.available))]
    NoVersionInRange {
        /// The module.
        name: String,
        /// The range.
        required: String,
        /// Every published version and whether it is yanked.
        available: Vec<(Version, bool)>,
    },
    /// Every version in range is incompatible with this node.
    #[error("no version of `{name}` matching {required} runs on this node: {}", errors.iter().map(|e| format!("{}: {}", e.0, e.1.kind)).collect::<Vec<_>>().join("; "))]
    Incompatible {
        /// The module.
        name: String,
        /// The range.
        required: String,
        /// Each version tried and why it cannot run.
        errors: Vec<(Version, CompatibilityError)>,
    },
    /// The dependencies go round in a cycle.
    #[error("dependency cycle: {}", cycle.join(" -> "))]
    Cycle {
        /// The modules on it, first and last the same.
        cycle: Vec<String>,
    },
    /// Two modules need versions of one module no single version satisfies.
    #[error("`{by}` needs `{name}` {required}, but version {chosen} is chosen{}", chosen_for.as_ref().map(|m| format!(" for `{m}`")).unwrap_or_default())]
    Conflict {
        /// The module depended on.
        name: String,
        /// The version chosen or installed.
        chosen: Version,
        /// Who it was chosen for (`None`: the operator's request, or the
        /// installed version).
        chosen_for: Option<String>,
        /// The range not satisfied.
        required: String,
        /// The module needing it.
        by: String,
    },
    /// The manifest target could not be fetched or is not the signed one.
    #[error("{name} {version}: manifest: {source}")]
    Manifest {
        /// The module.
        name: String,
        /// The version.
        version: Version,
        /// Why.
        #[source]
        source: VerifyError,
    },
    /// The signed manifest is not a valid manifest of this module version.
    #[error("{name} {version}: the signed manifest is refused: {reason}")]
    BadManifest {
        /// The module.
        name: String,
        /// The version.
        version: Version,
        /// Why.
        reason: String,
    },
}

fn format_available(available: &[(Version, bool)]) -> String {
    if available.is_empty() {
        return "none".to_owned();
    }
    available
        .iter()
        .map(|(v, yanked)| {
            if *yanked {
                format!("{v} (yanked)")
            } else {
                v.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resolves `name` in range `req` (written `raw`) and its dependencies
/// against `catalog`, for a node of versions `node` with `installed`
/// modules. Returns the versions to install, dependencies first; a
/// dependency kept at its installed version is not in the list.
///
/// # Errors
///
/// [`ResolveError`], naming the module and range that failed.
pub fn resolve<R: Repository + ?Sized>(
    repo: &R,
    catalog: &Catalog,
    node: &NodeVersions,
    installed: &BTreeMap<String, Installed>,
    name: &str,
    req: &VersionReq,
    raw: &str,
) -> Result<Vec<Resolved>, ResolveError> {
    let mut resolver = Resolver {
        repo,
        catalog,
        node,
        installed,
        chosen: BTreeMap::new(),
        order: Vec::new(),
        stack: Vec::new(),
    };
    resolver.visit(name, req, raw, None)?;
    let Resolver { mut chosen, order, .. } = resolver;
    Ok(order.iter().filter_map(|n| chosen.remove(n)).collect())
}

struct Resolver<'a, R: ?Sized> {
    repo: &'a R,
    catalog: &'a Catalog,
    node: &'a NodeVersions,
    installed: &'a BTreeMap<String, Installed>,
    chosen: BTreeMap<String, Resolved>,
    order: Vec<String>,
    stack: Vec<String>,
}

impl<R: Repository + ?Sized> Resolver<'_, R> {
    fn visit(&mut self, name: &str, req: &VersionReq, raw: &str, by: Option<&str>) -> Result<(), ResolveError> {
        if let Some(at) = self.stack.iter().position(|n| n == name) {
            let mut cycle = self.stack[at..].to_vec();
            cycle.push(name.to_owned());
            return Err(ResolveError::Cycle { cycle });
        }
        if let Some(chosen) = self.chosen.get(name) {
            if req.matches(&chosen.published.version) {
                return Ok(());
            }
            return Err(ResolveError::Conflict {
                name: name.to_owned(),
                chosen: chosen.published.version.clone(),
                chosen_for: chosen.required_by.clone(),
                required: raw.to_owned(),
                by: by.unwrap_or("the request").to_owned(),
            });
        }
        if let (Some(_), Some(installed)) = (by, self.installed.get(name)) {
            if req.matches(&installed.version) {
                return Ok(());
            }
        }
        let resolved = self.pick(name, req, raw, by)?;
        // An installed module that stays must still find its dependency
        // in range once this version replaces the installed one.
        for (dependent, module) in self.installed {
            if self.chosen.contains_key(dependent) || self.stack.contains(dependent) || dependent == name {
                continue;
            }
            if let Some((_, dep_req, dep_raw)) = module.dependencies.iter().find(|(n, ..)| n == name) {
                if !dep_req.matches(&resolved.published.version) {
                    return Err(ResolveError::Conflict {
                        name: name.to_owned(),
                        chosen: resolved.published.version.clone(),
                        chosen_for: by.map(str::to_owned),
                        required: dep_raw.clone(),
                        by: dependent.clone(),
                    });
                }
            }
        }
        self.stack.push(name.to_owned());
        let dependencies: Vec<_> = resolved.manifest.module_dependencies().cloned().collect();
        for dep in &dependencies {
            self.visit(dep.name.as_str(), &dep.req, &dep.raw, Some(name))?;
        }
        self.stack.pop();
        self.order.push(name.to_owned());
        self.chosen.insert(name.to_owned(), resolved);
        Ok(())
    }

    /// The highest unyanked version in range whose manifest runs here.
    fn pick(&self, name: &str, req: &VersionReq, raw: &str, by: Option<&str>) -> Result<Resolved, ResolveError> {
        let versions = self
            .catalog
            .versions(name)
            .ok_or_else(|| ResolveError::NoSuchModule { name: name.to_owned() })?;
        let mut incompatible = Vec::new();
        for published in versions
            .values()
            .rev()
            .filter(|p| !p.record.yanked && req.matches(&p.version))
        {
            let (manifest_bytes, manifest) = fetch_manifest(self.repo, name, published)?;
            match check_compatibility(&manifest, self.node) {
                Ok(()) => {
                    return Ok(Resolved {
                        published: published.clone(),
                        manifest_bytes,
                        manifest,
                        requested: raw.to_owned(),
                        required_by: by.map(str::to_owned),
                    })
                }
                Err(e) => incompatible.push((published.version.clone(), e)),
            }
        }
        if incompatible.is_empty() {
            return Err(ResolveError::NoVersionInRange {
                name: name.to_owned(),
                required: raw.to_owned(),
                available: versions
                    .values()
                    .map(|p| (p.version.clone(), p.record.yanked))
                    .collect(),
            });
        }
        Err(ResolveError::Incompatible {
            name: name.to_owned(),
            required: raw.to_owned(),
            errors: incompatible,
        })
    }
}

/// The manifest of `published`, downloaded, checked against the signed
/// length and hash, parsed, and naming module `name` and its version.
///
/// # Errors
///
/// [`ResolveError::Manifest`] for a download that failed or is not the
/// signed bytes, [`ResolveError::BadManifest`] for signed bytes that are
/// not this version's valid manifest.
pub fn fetch_manifest<R: Repository + ?Sized>(
    repo: &R,
    name: &str,
    published: &Published,
) -> Result<(Vec<u8>, ModuleManifest), ResolveError> {
    let bad = |reason: String| ResolveError::BadManifest {
        name: name.to_owned(),
        version: published.version.clone(),
        reason,
    };
    if published.manifest.length() > MAX_MANIFEST_LEN {
        return Err(bad(format!(
            "{} bytes, more than a manifest may have",
            published.manifest.length()
        )));
    }
    let bytes = repo
        .fetch_target(&published.manifest)
        .map_err(|source| ResolveError::Manifest {
            name: name.to_owned(),
            version: published.version.clone(),
            source,
        })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| bad("not UTF-8".to_owned()))?;
    let manifest =
        ModuleManifest::from_toml_str(text, Path::new(published.manifest.path())).map_err(|e| bad(e.to_string()))?;
    if manifest.name().as_str() != name || manifest.version() != &published.version {
        return Err(bad(format!("it declares {} {}", manifest.name(), manifest.version())));
    }
    Ok((bytes, manifest))
}
