//! `blvm-module install|update|remove|rollback|search|list`: the operator's
//! side of the registry, on a `modules/` directory.
//!
//! Each command that reads the registry first refreshes the trusted
//! metadata (`--state-dir`, starting from `--root` on the first run), then
//! calls [`crate::client`]. `--registry` is a directory repository (a
//! registry's data directory or an offline bundle of it); `open_repository`
//! is where other kinds of repository plug in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context;
use blvm_module_host::registry::NodeVersions;
use blvm_module_host::security::SignaturePolicy;
use semver::{Version, VersionReq};

use crate::client::{
    self, ChangeKind, DirectoryRepository, DownloadOptions, HttpRepository, InstallPolicy, Registry, Report,
    Repository, TrustedState,
};

/// Where modules live.
#[derive(Debug, clap::Args)]
pub struct ModulesArgs {
    /// The node's modules directory.
    #[arg(long, default_value = "modules")]
    pub modules_dir: PathBuf,
}

/// Which registry, and how it is trusted.
#[derive(Debug, clap::Args)]
pub struct RegistryArgs {
    /// The registry: a directory holding `metadata/` and `targets/` (a
    /// registry's data directory or an offline bundle of it).
    #[arg(long, value_name = "DIR")]
    pub registry: String,
    /// The registry's trusted root file (used on the first run; later runs
    /// start from the root stored in --state-dir).
    #[arg(long, value_name = "FILE")]
    pub root: PathBuf,
    /// Where the trusted metadata is kept between runs.
    #[arg(long, value_name = "DIR", default_value = "registry")]
    pub state_dir: PathBuf,
}

/// The operator's install policy.
#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    /// A trusted maintainer key, `NAME=HEX` (repeatable).
    #[arg(long = "trust", value_name = "NAME=HEX")]
    pub trust: Vec<String>,
    /// Signatures from trusted keys every module needs.
    #[arg(long, default_value_t = 0)]
    pub required: u32,
    /// An accepted tier and the signatures it needs, `TIER[=THRESHOLD]`
    /// (repeatable; none given: every tier). `untiered` accepts modules
    /// without a tier.
    #[arg(long = "accept-tier", value_name = "TIER[=THRESHOLD]")]
    pub accept_tier: Vec<String>,
    /// Install this version although it is inside its review period,
    /// `NAME@VERSION` (repeatable).
    #[arg(long = "allow-young", value_name = "NAME@VERSION")]
    pub allow_young: Vec<String>,
    /// The node version modules are checked against.
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    pub node_version: Version,
}

/// What `install` and `update` work with: the registry, the operator's
/// policy and the modules directory.
#[derive(Debug, clap::Args)]
pub struct InstallTarget {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub modules: ModulesArgs,
}

impl InstallTarget {
    /// Refreshes the registry's metadata and runs `op` (the installer's
    /// `install` or `update`) with the policy, then prints its report.
    fn run(
        &self,
        op: impl FnOnce(
            &Registry<'_, dyn Repository>,
            &InstallPolicy,
            &NodeVersions,
            &std::path::Path,
        ) -> Result<Report, client::InstallError>,
    ) -> anyhow::Result<()> {
        let (repo, state) = refreshed(&self.registry)?;
        let registry = Registry {
            repo: repo.as_ref(),
            state: &state,
        };
        let report = op(
            &registry,
            &policy(&self.policy)?,
            &node_versions(&self.policy),
            &self.modules.modules_dir,
        )?;
        print(&report);
        Ok(())
    }
}

/// `install`.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// The module.
    pub name: String,
    /// A semver range (default: the newest version; the lock file then
    /// pins its major version).
    #[arg(default_value = "*")]
    pub range: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub target: InstallTarget,
}

/// `update`.
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// The module.
    pub name: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub target: InstallTarget,
}

/// `remove`.
#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// The module.
    pub name: String,
    /// Remove it even though other installed modules depend on it.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub modules: ModulesArgs,
}

/// `rollback`.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The module.
    pub name: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub modules: ModulesArgs,
}

/// `search`.
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// A substring of the name or description (empty: everything).
    #[arg(default_value = "")]
    pub query: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub registry: RegistryArgs,
}

/// `list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub modules: ModulesArgs,
}

/// The repository `--registry` names.
fn open_repository(registry: &str) -> anyhow::Result<Box<dyn Repository>> {
    if registry.starts_with("http://") || registry.starts_with("https://") {
        // A progress bar on a terminal, plain lines otherwise.
        let repo = HttpRepository::new(registry, DownloadOptions::default())
            .with_context(|| format!("--registry {registry}"))?;
        return Ok(Box::new(repo));
    }
    Ok(Box::new(DirectoryRepository::new(registry)))
}

/// Opens the trusted state and refreshes it from the registry.
fn refreshed(args: &RegistryArgs) -> anyhow::Result<(Box<dyn Repository>, TrustedState)> {
    let repo = open_repository(&args.registry)?;
    let now = SystemTime::now();
    let mut state = TrustedState::open(&args.state_dir, &args.root, now)?;
    state.refresh(repo.as_ref(), now)?;
    Ok((repo, state))
}

fn policy(args: &PolicyArgs) -> anyhow::Result<InstallPolicy> {
    let keyring = crate::maintainer::keyring_of(&args.trust)?;
    let mut tiers = BTreeMap::new();
    for entry in &args.accept_tier {
        let (tier, threshold) = match entry.split_once('=') {
            Some((tier, n)) => (
                tier,
                n.parse()
                    .with_context(|| format!("--accept-tier {entry}: the threshold is a number"))?,
            ),
            None => (entry.as_str(), 0),
        };
        tiers.insert(tier.to_owned(), threshold);
    }
    let mut review_overrides = BTreeSet::new();
    for entry in &args.allow_young {
        let (name, version) = entry
            .split_once('@')
            .with_context(|| format!("--allow-young {entry}: expected NAME@VERSION"))?;
        let version =
            Version::parse(version).with_context(|| format!("--allow-young {entry}: not a semantic version"))?;
        review_overrides.insert((name.to_owned(), version));
    }
    Ok(InstallPolicy {
        signatures: SignaturePolicy {
            keyring,
            required: args.required,
        },
        tiers,
        review_overrides,
        now: SystemTime::now(),
    })
}

fn node_versions(args: &PolicyArgs) -> NodeVersions {
    NodeVersions::new(args.node_version.clone(), args.node_version.clone())
}

fn print(report: &Report) {
    for change in &report.changes {
        let what = match &change.kind {
            ChangeKind::Installed { version } => format!("installed {version}"),
            ChangeKind::Updated { old, new } => format!("updated {old} -> {new}"),
            ChangeKind::Removed { version } => format!("removed {version}"),
            ChangeKind::Unchanged { version } => format!("{version} already installed"),
        };
        let signers = if change.signers.is_empty() {
            "unsigned".to_owned()
        } else {
            format!("signed by {}", change.signers.join(", "))
        };
        let tier = change.tier.as_deref().unwrap_or(client::UNTIERED);
        let young = if change.review_overridden {
            ", inside its review period by override"
        } else {
            ""
        };
        println!("{}: {what} (tier {tier}, {signers}{young})", change.name);
    }
}

/// `install NAME [RANGE]`.
///
/// # Errors
///
/// Whatever refused the install, in one line.
pub fn install(args: InstallArgs) -> anyhow::Result<()> {
    let req = VersionReq::parse(&args.range).with_context(|| format!("{:?} is not a semver range", args.range))?;
    args.target.run(|registry, policy, node, modules_dir| {
        client::install(registry, policy, node, modules_dir, &args.name, &req)
    })
}

/// `update NAME`.
///
/// # Errors
///
/// Whatever refused the update, in one line.
pub fn update(args: UpdateArgs) -> anyhow::Result<()> {
    args.target
        .run(|registry, policy, node, modules_dir| client::update(registry, policy, node, modules_dir, &args.name))
}

/// `remove NAME`.
///
/// # Errors
///
/// Whatever refused the removal, in one line.
pub fn remove(args: RemoveArgs) -> anyhow::Result<()> {
    print(&client::remove(&args.modules.modules_dir, &args.name, args.force)?);
    Ok(())
}

/// `rollback NAME`.
///
/// # Errors
///
/// Whatever refused the rollback, in one line.
pub fn rollback(args: RollbackArgs) -> anyhow::Result<()> {
    print(&client::rollback(&args.modules.modules_dir, &args.name)?);
    Ok(())
}

/// `search [QUERY]`.
///
/// # Errors
///
/// A registry whose metadata is refused.
pub fn search(args: SearchArgs) -> anyhow::Result<()> {
    let (repo, state) = refreshed(&args.registry)?;
    let registry = Registry {
        repo: repo.as_ref(),
        state: &state,
    };
    for hit in client::search(&registry, &args.query) {
        println!("{}: {}", hit.name, hit.description.as_deref().unwrap_or(""));
        for v in &hit.versions {
            println!(
                "  {}{} (tier {}, published {})",
                v.version,
                if v.yanked { " yanked" } else { "" },
                v.tier.as_deref().unwrap_or(client::UNTIERED),
                v.published
            );
        }
    }
    Ok(())
}

/// `list`.
///
/// # Errors
///
/// A lock file that cannot be read.
pub fn list(args: ListArgs) -> anyhow::Result<()> {
    let (modules, errors) = client::list(&args.modules.modules_dir)?;
    for m in &modules {
        let origin = match &m.locked {
            Some(entry) => format!(
                "from {}, range {}, tier {}, signed by {}",
                entry.current.registry,
                entry.requested,
                entry.current.tier.as_deref().unwrap_or(client::UNTIERED),
                if entry.current.signers.is_empty() {
                    "nobody".to_owned()
                } else {
                    entry.current.signers.join(", ")
                }
            ),
            None => "installed by hand".to_owned(),
        };
        let previous = if m.has_previous { ", previous version kept" } else { "" };
        println!("{} {} ({origin}{previous})", m.name, m.version);
    }
    for e in errors {
        println!("refused: {e}");
    }
    Ok(())
}
