//! Delegating cgroup v2 controllers to the modules' groups, on the real
//! kernel (issue 5: limits in cgroup v2 where its controllers are usable).
//!
//! The node's own group must enable a controller for its children, which
//! the kernel refuses while the group holds processes: the node moves
//! itself into its leaf, unless other processes share its group. Each
//! scenario runs in a re-executed copy of this binary that first moves
//! itself into a fresh group of its own, so no other test is moved.
//!
//! The controller used is whichever the v2 hierarchy offers: on the hybrid
//! hosts this suite runs on that is `hugetlb` (memory, pids and cpu are
//! bound to v1 hierarchies there and are tested in `sandbox.rs`); on a
//! unified host it is `memory`. The delegation code is the same for all.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use blvm_module_host::sandbox::{delegate_controllers, NODE_LEAF};

/// Set to the scenario's name when this binary is re-executed to run it.
const SCENARIO_ENV: &str = "BLVM_IT_CGROUP_V2_SCENARIO";

/// Mount point of the v2 hierarchy, from `/proc/self/mountinfo`.
fn v2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_ascii_whitespace().next()? != "cgroup2" {
            return None;
        }
        left.split_ascii_whitespace().nth(4).map(PathBuf::from)
    })
}

/// A controller the v2 root offers, preferring one that limits modules.
fn offered_controller(mount: &Path) -> Option<String> {
    let offered = std::fs::read_to_string(mount.join("cgroup.controllers")).ok()?;
    let offered: Vec<&str> = offered.split_ascii_whitespace().collect();
    ["memory", "pids", "cpu"]
        .into_iter()
        .find(|c| offered.contains(c))
        .or_else(|| offered.first().copied())
        .map(str::to_owned)
}

/// Runs `scenario` in a re-executed copy of this binary and returns its
/// `KEY value` lines; `None` when this host cannot run it (said why).
/// One scenario at a time: each turns the controller on at the root of the
/// hierarchy and off again when done, which would pull it from under a
/// scenario running beside it. Not only in this process: another run of
/// this suite on the host (CI runs suites side by side) shares the root,
/// so the turn is also an exclusive `flock` on the hierarchy's root
/// directory, held until the scenario's process has undone everything.
fn run_scenario(scenario: &str) -> Option<Vec<String>> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: cgroup delegation needs root");
        return None;
    }
    let mount = v2_mount().expect("these hosts mount cgroup v2 (DESIGN.md, Sandbox)");
    if offered_controller(&mount).is_none() {
        eprintln!("cgroup v2 at {} offers no controller at all", mount.display());
        return None;
    }
    let root = std::fs::File::open(&mount).expect("the hierarchy's root directory");
    rustix::fs::flock(&root, rustix::fs::FlockOperation::LockExclusive).expect("flock on the hierarchy's root");
    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", scenario, "--nocapture", "--test-threads=1"])
        .env(SCENARIO_ENV, scenario)
        .stdin(Stdio::null())
        .output()
        .expect("scenario process");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{scenario} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.split_once("RESULT ").map(|(_, r)| r.to_owned()))
        .collect();
    eprintln!("{scenario}: {lines:?}");
    Some(lines)
}

fn value<'a>(lines: &'a [String], key: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {key} in {lines:?}"))
}

/// The scenario's side: puts this process into `<mount>/blvm-v2-test-<pid>`
/// (with `companion` too, if given), delegates the controller to
/// `<that>/blvm-modules`, prints what happened, and undoes it all.
fn delegation_scenario(companion: bool) {
    let mount = v2_mount().expect("v2 mount");
    let controller = offered_controller(&mount).expect("offered controller");
    let root_control = mount.join("cgroup.subtree_control");
    let was_enabled =
        std::fs::read_to_string(&root_control).is_ok_and(|t| t.split_whitespace().any(|c| c == controller));
    let own = mount.join(format!("blvm-v2-test-{}", std::process::id()));
    std::fs::create_dir(&own).expect("own group");
    std::fs::write(own.join("cgroup.procs"), std::process::id().to_string()).expect("join own group");
    let mut sharer = companion.then(|| {
        let child = Command::new("sleep").arg("600").spawn().expect("sleep");
        std::fs::write(own.join("cgroup.procs"), child.id().to_string()).expect("move companion");
        child
    });
    let parent = own.join("blvm-modules");
    std::fs::create_dir(&parent).expect("modules group");

    let delegation = delegate_controllers(&parent, &[controller.as_str()]);

    let own_line = std::fs::read_to_string("/proc/self/cgroup").expect("own cgroup");
    let own_v2 = own_line
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("")
        .to_owned();
    let module_group = parent.join("module-0");
    std::fs::create_dir(&module_group).expect("module group");
    let module_controllers = std::fs::read_to_string(module_group.join("cgroup.controllers")).unwrap_or_default();
    println!("RESULT controller {controller}");
    println!("RESULT enabled {}", delegation.enabled.join(","));
    println!("RESULT moved {}", delegation.moved_node);
    println!("RESULT node_cgroup {own_v2}");
    println!("RESULT module_controllers {}", module_controllers.trim());
    println!(
        "RESULT reason {}",
        delegation.unavailable.first().map(|(_, r)| r.as_str()).unwrap_or("-")
    );

    // Undo: everyone back to the root, controllers off bottom-up, groups gone.
    if let Some(child) = sharer.as_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
    std::fs::write(mount.join("cgroup.procs"), std::process::id().to_string()).expect("back to root");
    let _ = std::fs::remove_dir(&module_group);
    let off = format!("-{controller}");
    let _ = std::fs::write(parent.join("cgroup.subtree_control"), &off);
    let _ = std::fs::write(own.join("cgroup.subtree_control"), &off);
    for dir in [parent, own.join(NODE_LEAF), own] {
        let _ = std::fs::remove_dir(dir);
    }
    if !was_enabled {
        // Fails (harmlessly) if another group below the root uses it now.
        let _ = std::fs::write(root_control, off);
    }
}

#[test]
fn node_alone_in_its_cgroup_moves_into_its_leaf_and_hands_the_controller_to_module_groups() {
    const NAME: &str =
        "cgroup_v2::node_alone_in_its_cgroup_moves_into_its_leaf_and_hands_the_controller_to_module_groups";
    if std::env::var(SCENARIO_ENV).as_deref() == Ok(NAME) {
        return delegation_scenario(false);
    }
    let Some(lines) = run_scenario(NAME) else { return };
    let controller = value(&lines, "controller");
    assert_eq!(value(&lines, "enabled"), controller, "{lines:?}");
    assert_eq!(value(&lines, "moved"), "true", "{lines:?}");
    assert!(
        value(&lines, "node_cgroup").ends_with(&format!("/{NODE_LEAF}")),
        "{lines:?}"
    );
    assert!(
        value(&lines, "module_controllers").split(' ').any(|c| c == controller),
        "a module's group has the controller: {lines:?}"
    );
}

#[test]
fn controller_is_refused_with_the_reason_when_other_processes_share_the_nodes_cgroup() {
    const NAME: &str = "cgroup_v2::controller_is_refused_with_the_reason_when_other_processes_share_the_nodes_cgroup";
    if std::env::var(SCENARIO_ENV).as_deref() == Ok(NAME) {
        return delegation_scenario(true);
    }
    let Some(lines) = run_scenario(NAME) else { return };
    assert_eq!(value(&lines, "enabled"), "", "{lines:?}");
    assert!(value(&lines, "reason").contains("other processes share"), "{lines:?}");
    assert!(value(&lines, "module_controllers").is_empty(), "{lines:?}");
}
