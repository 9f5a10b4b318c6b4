//! `blvm-module`: the module maintainer's command line (keygen, pack,
//! sign, verify offline; publish and yank to a registry) and the
//! operator's (install, update, remove, rollback, search, list; see
//! `blvm_registry::cli::install`).

use std::path::PathBuf;
use std::process::ExitCode;

use blvm_module_host::security::SignaturePolicy;
use blvm_registry::{cli, maintainer, publish};
use clap::Parser;

/// `blvm-module`: make, pin, sign and check module manifests.
#[derive(Debug, Parser)]
#[command(name = "blvm-module", version, about)]
enum Cli {
    /// Make a maintainer key: the secret goes to FILE (0600, never over an
    /// existing file); the public key is printed for operators'
    /// `[trust.keys]`.
    Keygen {
        /// Where to write the secret key.
        file: PathBuf,
    },
    /// Fill the manifest's `[binary] hash` and `size` from its binary.
    Pack {
        /// The module's `module.toml`.
        manifest: PathBuf,
        /// The binary (default: the manifest's `entry_point` beside it).
        #[arg(long)]
        binary: Option<PathBuf>,
    },
    /// Sign a manifest: prints the `[signatures] maintainers` entry to add,
    /// or with `--write` adds it. Each maintainer signs the same file;
    /// signatures cover all of it but `[signatures]`.
    Sign(maintainer::SignArgs),
    /// Check a manifest's form and signatures as a node trusting these keys
    /// would.
    Verify {
        /// The module's `module.toml`.
        manifest: PathBuf,
        /// A trusted key, `NAME=HEX` (repeatable).
        #[arg(long = "trust", value_name = "NAME=HEX")]
        trust: Vec<String>,
        /// Signatures from trusted keys required whatever the manifest says.
        #[arg(long, default_value_t = 0)]
        required: u32,
    },
    /// Publish a module version to a registry: the manifest and its binary,
    /// signed with your key (the first publish of a name claims it).
    Publish {
        /// The registry, `http://HOST:PORT`.
        #[arg(long)]
        registry: String,
        /// The secret key file from `keygen`.
        #[arg(long)]
        key: PathBuf,
        /// The module's `module.toml`.
        manifest: PathBuf,
        /// The binary (default: the manifest's `entry_point` beside it).
        #[arg(long)]
        binary: Option<PathBuf>,
    },
    /// Yank a published version: it stays downloadable for lock files that
    /// pin it, but is no longer picked by new installs.
    Yank {
        /// The registry, `http://HOST:PORT`.
        #[arg(long)]
        registry: String,
        /// The secret key file from `keygen`.
        #[arg(long)]
        key: PathBuf,
        /// The module's name.
        name: String,
        /// The version.
        version: String,
    },
    /// Install a module (and what it depends on) from a registry.
    Install(cli::install::InstallArgs),
    /// Update a module within the range its lock entry pins.
    Update(cli::install::UpdateArgs),
    /// Remove an installed module.
    Remove(cli::install::RemoveArgs),
    /// Bring back the version installed before the last install or update.
    Rollback(cli::install::RollbackArgs),
    /// Search a registry's signed modules.
    Search(cli::install::SearchArgs),
    /// List the installed modules.
    List(cli::install::ListArgs),
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("blvm-module: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli {
        Cli::Keygen { file } => {
            let public = maintainer::keygen(&file)?;
            println!("secret key written to {} (keep it private)", file.display());
            println!("public key: {public}");
        }
        Cli::Pack { manifest, binary } => {
            let packed = maintainer::pack(&manifest, binary.as_deref())?;
            println!(
                "{}: [binary] hash = \"{}\", size = {}",
                manifest.display(),
                packed.hash,
                packed.size
            );
        }
        Cli::Sign(args) => println!("{}", maintainer::run_sign(&args)?),
        Cli::Verify {
            manifest,
            trust,
            required,
        } => {
            let keyring = maintainer::keyring_of(&trust)?;
            println!(
                "{}",
                maintainer::verify(&manifest, &SignaturePolicy { keyring, required })?
            );
        }
        Cli::Publish {
            registry,
            key,
            manifest,
            binary,
        } => {
            let record = publish::publish(&registry, &key, &manifest, binary.as_deref())?;
            println!(
                "published {} {} at {} (publisher {})",
                record.name, record.version, record.published, record.publisher
            );
        }
        Cli::Yank {
            registry,
            key,
            name,
            version,
        } => {
            let record = publish::yank(&registry, &key, &name, &version)?;
            println!("yanked {} {}", record.name, record.version);
        }
        Cli::Install(args) => cli::install::install(args)?,
        Cli::Update(args) => cli::install::update(args)?,
        Cli::Remove(args) => cli::install::remove(args)?,
        Cli::Rollback(args) => cli::install::rollback(args)?,
        Cli::Search(args) => cli::install::search(args)?,
        Cli::List(args) => cli::install::list(args)?,
    }
    Ok(())
}
