//! The operator's install policy: which maintainers, tiers and review
//! periods a module version must satisfy before it is written into
//! `modules/`.
//!
//! Three checks, in this order, each a typed [`PolicyError`]:
//!
//! 1. **Tier.** The manifest's `[governance] tier` (the registry's signed
//!    [`VersionRecord::tier`] must agree). When [`InstallPolicy::tiers`] is
//!    empty, the operator has set no tier policy and every tier is
//!    accepted with no extra threshold. Otherwise only the tiers listed
//!    are accepted, and a module with no tier counts as tier
//!    [`UNTIERED`], which the operator must list to accept: a tier policy
//!    fails closed.
//! 2. **Review period.** A version younger than its manifest's
//!    `[governance] review_period_days`, counted from the registry's signed
//!    [`VersionRecord::published`], is refused unless the operator
//!    overrides it by that exact name and version.
//! 3. **Maintainer signatures.** Checked by the node's own
//!    [`signatures::verify`] (what the node checks again at load) with a
//!    requirement of the stricter of the manifest's threshold, the tier's
//!    threshold and the operator's [`SignaturePolicy::required`]; a key
//!    not in the operator's keyring counts for nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use blvm_module_host::registry::ModuleManifest;
use blvm_module_host::security::signatures::{self, SignatureError, SignaturePolicy};
use semver::Version;

use crate::layout::VersionRecord;

/// The tier name a module without `[governance] tier` counts as.
pub const UNTIERED: &str = "untiered";

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// What the operator accepts.
#[derive(Debug, Clone)]
pub struct InstallPolicy {
    /// The operator's keyring and the signatures every module needs.
    pub signatures: SignaturePolicy,
    /// Accepted tiers → the maintainer signatures each needs (empty: every
    /// tier, no extra threshold; see the module doc).
    pub tiers: BTreeMap<String, u32>,
    /// Versions installed although inside their review period, by exact
    /// name and version.
    pub review_overrides: BTreeSet<(String, Version)>,
    /// The time the review periods are measured at.
    pub now: SystemTime,
}

/// What the policy found for a version it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The module's tier.
    pub tier: Option<String>,
    /// The operator's names of the keys whose signatures verified.
    pub signers: Vec<String>,
    /// How many signatures were required.
    pub required: u32,
    /// Whether the version is inside its review period and installed by
    /// the operator's override.
    pub review_overridden: bool,
}

/// Why the policy refuses a version.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The operator does not accept the module's tier.
    #[error("{module} {version}: tier `{tier}` is not accepted (accepted: {})", accepted.join(", "))]
    TierNotAccepted {
        /// The module.
        module: String,
        /// The version.
        version: Version,
        /// Its tier ([`UNTIERED`] for none).
        tier: String,
        /// The tiers the operator accepts.
        accepted: Vec<String>,
    },
    /// The registry's record and the manifest name different tiers.
    #[error("{module} {version}: the registry records tier {registry:?} but the manifest says {manifest:?}")]
    TierMismatch {
        /// The module.
        module: String,
        /// The version.
        version: Version,
        /// The manifest's tier.
        manifest: Option<String>,
        /// The registry's signed record's tier.
        registry: Option<String>,
    },
    /// The version is younger than its review period.
    #[error("{module} {version}: published {published}, inside its review period of {review_period_days} day(s) for {remaining_hours} more hour(s); override with {module}@{version}")]
    UnderReview {
        /// The module.
        module: String,
        /// The version.
        version: Version,
        /// When the registry published it.
        published: String,
        /// The manifest's period.
        review_period_days: u32,
        /// Hours until the period ends (rounded up).
        remaining_hours: u64,
    },
    /// The registry's publish date is not an RFC 3339 date.
    #[error("{module} {version}: the registry's publish date {published:?} is not an RFC 3339 date")]
    BadPublishedDate {
        /// The module.
        module: String,
        /// The version.
        version: Version,
        /// The date as signed.
        published: String,
    },
    /// The maintainer signatures do not satisfy the policy.
    #[error("{module} {version}: {source}")]
    Signatures {
        /// The module.
        module: String,
        /// The version.
        version: Version,
        /// What the node's signature check said.
        #[source]
        source: SignatureError,
    },
}

impl InstallPolicy {
    /// A policy trusting `signatures`, with no tier policy and no overrides.
    pub fn new(signatures: SignaturePolicy, now: SystemTime) -> Self {
        Self {
            signatures,
            tiers: BTreeMap::new(),
            review_overrides: BTreeSet::new(),
            now,
        }
    }

    /// Checks `manifest` (verified against the signed targets) and the
    /// registry's `record` of it, in the module doc's order.
    ///
    /// # Errors
    ///
    /// The first check that fails.
    pub fn check(&self, manifest: &ModuleManifest, record: &VersionRecord) -> Result<Approval, PolicyError> {
        let module = manifest.name().to_string();
        let version = manifest.version().clone();
        let governance = manifest.governance();
        let tier = governance.and_then(|g| g.tier.clone());
        if tier != record.tier {
            return Err(PolicyError::TierMismatch {
                module,
                version,
                manifest: tier,
                registry: record.tier.clone(),
            });
        }

        // 1. Tier.
        let tier_threshold = if self.tiers.is_empty() {
            0
        } else {
            let name = tier.as_deref().unwrap_or(UNTIERED);
            match self.tiers.get(name) {
                Some(&threshold) => threshold,
                None => {
                    return Err(PolicyError::TierNotAccepted {
                        module,
                        version,
                        tier: name.to_owned(),
                        accepted: self.tiers.keys().cloned().collect(),
                    })
                }
            }
        };

        // 2. Review period.
        let mut review_overridden = false;
        if let Some(days) = governance.and_then(|g| g.review_period_days).filter(|&d| d > 0) {
            let published = humantime::parse_rfc3339(&record.published).map_err(|_| PolicyError::BadPublishedDate {
                module: module.clone(),
                version: version.clone(),
                published: record.published.clone(),
            })?;
            let ends = published + DAY * days;
            if self.now < ends {
                if self.review_overrides.contains(&(module.clone(), version.clone())) {
                    review_overridden = true;
                } else {
                    let remaining = ends.duration_since(self.now).unwrap_or_default();
                    return Err(PolicyError::UnderReview {
                        module,
                        version,
                        published: record.published.clone(),
                        review_period_days: days,
                        remaining_hours: remaining.as_secs().div_ceil(3600),
                    });
                }
            }
        }

        // 3. Signatures, with the strictest requirement (verify takes the
        // manifest's own threshold into account).
        let policy = SignaturePolicy {
            keyring: self.signatures.keyring.clone(),
            required: self.signatures.required.max(tier_threshold),
        };
        let report = signatures::verify(manifest, &policy).map_err(|source| PolicyError::Signatures {
            module,
            version,
            source,
        })?;
        Ok(Approval {
            tier,
            signers: report.signed_by,
            required: report.required,
            review_overridden,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const PUBLISHED: &str = "2026-12-02T10:00:00Z";

    fn manifest(tier: Option<&str>) -> ModuleManifest {
        let tier = tier.map(|t| format!("tier = \"{t}\"\n")).unwrap_or_default();
        let text = format!("name = \"a\"\nversion = \"1.0.0\"\n\n[governance]\n{tier}review_period_days = 7\n");
        ModuleManifest::from_toml_str(&text, Path::new("a/1.0.0/module.toml")).expect("manifest")
    }

    fn record(tier: Option<&str>, published: &str) -> VersionRecord {
        VersionRecord {
            name: "a".into(),
            version: "1.0.0".into(),
            published: published.into(),
            yanked: false,
            tier: tier.map(str::to_owned),
            publisher: "02".into(),
            binary: crate::layout::binary_target("a", "1.0.0"),
        }
    }

    fn policy_at(now: SystemTime) -> InstallPolicy {
        InstallPolicy::new(SignaturePolicy::default(), now)
    }

    #[test]
    fn the_review_period_ends_exactly_its_days_after_the_signed_publish_date() {
        let published = humantime::parse_rfc3339(PUBLISHED).expect("date");
        let (m, r) = (manifest(None), record(None, PUBLISHED));
        let err = policy_at(published + DAY * 7 - Duration::from_secs(1))
            .check(&m, &r)
            .expect_err("one second early");
        assert!(
            matches!(err, PolicyError::UnderReview { remaining_hours: 1, .. }),
            "{err}"
        );
        policy_at(published + DAY * 7)
            .check(&m, &r)
            .expect("the period is over");
        let err = policy_at(published + DAY * 7)
            .check(&m, &record(None, "last tuesday"))
            .expect_err("no date");
        assert!(matches!(err, PolicyError::BadPublishedDate { .. }), "{err}");
    }

    #[test]
    fn without_a_tier_policy_any_tier_passes_but_the_record_must_agree_with_the_manifest() {
        let later = humantime::parse_rfc3339(PUBLISHED).expect("date") + DAY * 30;
        let approval = policy_at(later)
            .check(
                &manifest(Some("experimental")),
                &record(Some("experimental"), PUBLISHED),
            )
            .expect("no tier policy");
        assert_eq!(approval.tier.as_deref(), Some("experimental"));
        assert_eq!(approval.required, 0);
        let err = policy_at(later)
            .check(&manifest(Some("experimental")), &record(Some("core"), PUBLISHED))
            .expect_err("the registry lies about the tier");
        assert!(matches!(err, PolicyError::TierMismatch { .. }), "{err}");
    }
}
