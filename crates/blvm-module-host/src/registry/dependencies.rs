//! Dependency resolution: which modules can load, in which order, and why
//! the others cannot.
//!
//! [`resolve`] works in four named steps, each failing modules by name:
//!
//! 1. **Duplicates**: two manifests with one name both fail (discovery
//!    already refuses this; the resolver does not trust its caller).
//! 2. **Direct dependencies**: a dependency that is not among the modules is
//!    [`ResolutionErrorKind::Missing`]; one whose version is outside the
//!    range is [`ResolutionErrorKind::Unsatisfied`]. `blvm-node` is skipped
//!    here: it is checked against the node's version by
//!    [`super::compatibility::check_compatibility`].
//! 3. **Cycles**: every module on a cycle fails with
//!    [`ResolutionErrorKind::Cycle`], naming the cycle from that module
//!    round to it again (the shortest one, ties broken by name).
//! 4. **Order**: the rest is sorted topologically, dependencies first;
//!    among modules ready at the same time the smallest name comes first,
//!    so the order is the same on every run. A module with a failed
//!    dependency fails with [`ResolutionErrorKind::DependencyFailed`],
//!    which carries the dependency's own reason; unrelated modules load.
//!
//! A module with several problems reports the first in that order; within a
//! step, dependencies are looked at by name.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use super::manifest::ModuleManifest;

/// The outcome of [`resolve`]: a load order for the modules that can load,
/// and a reason for each that cannot. Every module given appears in exactly
/// one of the two.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Names in load order: each after everything it depends on.
    pub order: Vec<String>,
    /// Modules that cannot load, by name.
    pub failed: BTreeMap<String, ResolutionError>,
}

/// Why one module cannot load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("module `{module}` cannot load: {kind}")]
pub struct ResolutionError {
    /// The module that cannot load.
    pub module: String,
    /// Why.
    pub kind: ResolutionErrorKind,
}

/// Why a module cannot load.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResolutionErrorKind {
    /// Another manifest declares the same name.
    Duplicate,
    /// A dependency that is not installed.
    Missing {
        /// The dependency's name.
        dependency: String,
        /// The range required, as written.
        required: String,
    },
    /// A dependency whose version is outside the range.
    Unsatisfied {
        /// The dependency's name.
        dependency: String,
        /// The range required, as written.
        required: String,
        /// The version installed.
        found: semver::Version,
    },
    /// The module is on a dependency cycle.
    Cycle {
        /// The modules on the cycle in dependency order, starting and ending
        /// with this module.
        cycle: Vec<String>,
    },
    /// A dependency (direct) cannot load.
    DependencyFailed {
        /// The dependency's name.
        dependency: String,
        /// Why it cannot load.
        cause: Box<ResolutionErrorKind>,
    },
    /// The module was refused before resolution (by discovery,
    /// verification or compatibility); only ever a [`Self::DependencyFailed`] cause.
    Excluded {
        /// The earlier refusal, as text.
        reason: String,
    },
}

impl fmt::Display for ResolutionErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolutionErrorKind::Duplicate => f.write_str("another module declares the same name"),
            ResolutionErrorKind::Missing { dependency, required } => {
                write!(f, "depends on `{dependency}` {required}, which is not installed")
            }
            ResolutionErrorKind::Unsatisfied {
                dependency,
                required,
                found,
            } => {
                write!(
                    f,
                    "depends on `{dependency}` {required}, but version {found} is installed"
                )
            }
            ResolutionErrorKind::Cycle { cycle } => write!(f, "dependency cycle: {}", cycle.join(" -> ")),
            ResolutionErrorKind::DependencyFailed { dependency, cause } => {
                write!(f, "depends on `{dependency}`, which failed: {cause}")
            }
            ResolutionErrorKind::Excluded { reason } => f.write_str(reason),
        }
    }
}

/// Resolves `modules` (see the module doc).
pub fn resolve<'a>(modules: impl IntoIterator<Item = &'a ModuleManifest>) -> Resolution {
    resolve_with_failures(modules, &BTreeMap::new())
}

/// Resolves `modules`, knowing that the modules in `excluded` (name →
/// reason) were refused earlier, so that their dependents say why rather
/// than calling them missing. A manifest whose name is in `excluded` is
/// skipped, and does not appear in the result.
pub fn resolve_with_failures<'a>(
    modules: impl IntoIterator<Item = &'a ModuleManifest>,
    excluded: &BTreeMap<String, String>,
) -> Resolution {
    let mut resolution = Resolution::default();
    let mut failed: BTreeMap<String, ResolutionErrorKind> = BTreeMap::new();

    // Step 1: index by name, failing duplicates.
    let mut by_name: BTreeMap<&str, &ModuleManifest> = BTreeMap::new();
    let mut duplicates = BTreeSet::new();
    for m in modules {
        let name = m.name().as_str();
        if excluded.contains_key(name) {
            continue;
        }
        if by_name.insert(name, m).is_some() {
            duplicates.insert(name);
        }
    }
    for name in duplicates {
        by_name.remove(name);
        failed.insert(name.to_owned(), ResolutionErrorKind::Duplicate);
    }

    // Edges to modules that are present (or duplicated: those fail the
    // dependent in step 4 with the duplicate as cause).
    let deps_of = |m: &ModuleManifest| -> Vec<String> { m.module_dependencies().map(|d| d.name.to_string()).collect() };

    // Step 2: direct dependencies.
    for (&name, m) in &by_name {
        for dep in m.module_dependencies() {
            let dep_name = dep.name.as_str();
            if excluded.contains_key(dep_name) || failed.contains_key(dep_name) && !by_name.contains_key(dep_name) {
                continue; // reported as DependencyFailed in step 4
            }
            match by_name.get(dep_name) {
                None => {
                    let kind = ResolutionErrorKind::Missing {
                        dependency: dep_name.to_owned(),
                        required: dep.raw.clone(),
                    };
                    failed.insert(name.to_owned(), kind);
                    break;
                }
                Some(found) if !dep.req.matches(found.version()) => {
                    let kind = ResolutionErrorKind::Unsatisfied {
                        dependency: dep_name.to_owned(),
                        required: dep.raw.clone(),
                        found: found.version().clone(),
                    };
                    failed.insert(name.to_owned(), kind);
                    break;
                }
                Some(_) => {}
            }
        }
    }

    // Step 3: cycles, over every present module (a cycle is reported even
    // when some member also failed step 2).
    let graph: BTreeMap<&str, Vec<String>> = by_name.iter().map(|(&n, m)| (n, deps_of(m))).collect();
    for (name, cycle) in find_cycles(&graph) {
        failed.entry(name).or_insert(ResolutionErrorKind::Cycle { cycle });
    }

    // Step 4: Kahn's algorithm over the modules not yet failed, smallest
    // name first. Every cycle has failed in step 3, so these form a DAG;
    // edges into modules that already failed are not waited on (their
    // outcome is final) but still fail the dependent below.
    let already_failed: BTreeSet<String> = failed.keys().cloned().collect();
    let mut waiting_on: BTreeMap<&str, usize> = BTreeMap::new();
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (&name, deps) in graph.iter().filter(|(n, _)| !already_failed.contains(**n)) {
        let mut count = 0;
        for dep in deps {
            if let Some((&dep_key, _)) = graph.get_key_value(dep.as_str()) {
                if !already_failed.contains(dep_key) {
                    count += 1;
                    dependents.entry(dep_key).or_default().push(name);
                }
            }
        }
        waiting_on.insert(name, count);
    }
    let mut ready: BTreeSet<&str> = waiting_on.iter().filter(|(_, &c)| c == 0).map(|(&n, _)| n).collect();
    while let Some(name) = ready.pop_first() {
        // Dependencies are sorted by name, so the first failed one is named.
        let cause = graph[name].iter().find_map(|dep| {
            let cause = match excluded.get(dep.as_str()) {
                Some(reason) => ResolutionErrorKind::Excluded { reason: reason.clone() },
                None => failed.get(dep.as_str())?.clone(),
            };
            Some((dep.clone(), cause))
        });
        match cause {
            Some((dependency, cause)) => {
                let kind = ResolutionErrorKind::DependencyFailed {
                    dependency,
                    cause: Box::new(cause),
                };
                failed.insert(name.to_owned(), kind);
            }
            None => resolution.order.push(name.to_owned()),
        }
        for &dependent in dependents.get(name).map(Vec::as_slice).unwrap_or_default() {
            if let Some(count) = waiting_on.get_mut(dependent) {
                *count -= 1;
                if *count == 0 {
                    ready.insert(dependent);
                }
            }
        }
    }

    resolution.failed = failed
        .into_iter()
        .map(|(module, kind)| (module.clone(), ResolutionError { module, kind }))
        .collect();
    resolution
}

/// For every module on a cycle, the shortest cycle through it (breadth-first,
/// neighbours by name), as `[module, …, module]`.
fn find_cycles(graph: &BTreeMap<&str, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    let mut cycles = BTreeMap::new();
    for &start in graph.keys() {
        let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        let mut closing = None;
        'search: while let Some(node) = queue.pop_front() {
            let mut next: Vec<&str> = graph[node]
                .iter()
                .map(String::as_str)
                .filter(|d| graph.contains_key(d))
                .collect();
            next.sort_unstable();
            for dep in next {
                if dep == start {
                    closing = Some(node);
                    break 'search;
                }
                if !parent.contains_key(dep) {
                    parent.insert(dep, node);
                    queue.push_back(dep);
                }
            }
        }
        if let Some(mut node) = closing {
            // Walk back from the node that closes the cycle to `start`.
            let mut path = vec![start.to_owned(), node.to_owned()];
            while node != start {
                node = parent[node];
                path.push(node.to_owned());
            }
            path.reverse();
            cycles.insert(start.to_owned(), path);
        }
    }
    cycles
}
