//! A Stratum V2 client nobody here wrote: the reference implementation's
//! pool (`pool_sv2` 0.7.0 from crates.io, the SRI pool role), configured
//! as its operators configure it for a local Template Provider
//! (`[template_provider_type.Sv2Tp]` with the module's address and
//! authority key), connects to the `stratum-v2` module, completes the
//! Noise handshake and setup, sends its coinbase constraints and takes
//! the module's templates and tips as the data it starts serving miners
//! with. Outside CI the test is skipped when `pool_sv2` is not installed;
//! in CI (`CI` set) it fails.

mod harness;
mod sv2;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Instant;

use serde_json::json;
use sv2::{payee, start};

use harness::{free_port, DEADLINE};

/// What `.ci/run` installs it with.
const INSTALL: &str = "command -v pool_sv2 || cargo install pool_sv2 --version 0.7.0 --locked";

/// `pool_sv2` on the `PATH` or in cargo's bin directory.
fn pool_binary() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let candidates = std::iter::once(PathBuf::from("pool_sv2")).chain(home.map(|h| h.join("bin/pool_sv2")));
    for candidate in candidates {
        let runs = Command::new(&candidate)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if runs {
            return Some(candidate);
        }
    }
    None
}

struct Pool {
    child: Child,
    lines: Receiver<String>,
    log: Vec<String>,
}

impl Pool {
    /// Waits for a line of the pool's log with `needle`.
    #[track_caller]
    fn wait(&mut self, needle: &str) -> String {
        if let Some(l) = self.log.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("pool_sv2 never logged `{needle}`; its log:\n{}", self.log.join("\n")),
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_reference_pool_connects_to_the_module_and_takes_its_templates_and_tips() {
    let Some(binary) = pool_binary() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "pool_sv2 is missing: run .ci/run's install step, `{INSTALL}`"
        );
        eprintln!("skipping the pool_sv2 test: pool_sv2 is not installed; install it with `{INSTALL}`");
        return;
    };
    let mut n = start("sv2-pool", "", |m| m);
    n.wait_listening();
    n.mine(20);
    let status = n.status();
    let key = status["authority_public_key"]
        .as_str()
        .expect("the module's key")
        .to_owned();

    // The pool's own authority pair is the one of its example configs
    // (`config-examples/*/pool-config-local-sv2-tp-example.toml`); the
    // template provider's key is the module's.
    let config = format!(
        "authority_public_key = \"9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72\"\n\
         authority_secret_key = \"mkDLTBBRxdBv998612qipDYoTK3YUrqLe8uWw7gu3iXbSrn2n\"\n\
         cert_validity_sec = 3600\n\
         listen_address = \"127.0.0.1:{pool_port}\"\n\
         coinbase_reward_script = \"addr({payee})\"\n\
         server_id = 1\n\
         pool_signature = \"blvm stratum-v2 test\"\n\
         shares_per_minute = 6.0\n\
         share_batch_size = 10\n\
         [template_provider_type.Sv2Tp]\n\
         address = \"{tp}\"\n\
         public_key = \"{key}\"\n",
        pool_port = free_port(),
        payee = payee(),
        tp = n.listen,
    );
    let path = n.dir.join("pool-config.toml");
    std::fs::write(&path, config).expect("pool config");
    let mut child = Command::new(&binary)
        .arg("-c")
        .arg(&path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("pool_sv2 starts");
    let lines = harness::lines_of(child.stdout.take().expect("stdout"));
    let mut pool = Pool {
        child,
        lines,
        log: Vec::new(),
    };

    // Noise with the module's key pinned, SetupConnection, constraints,
    // then the future template and the tip it builds on.
    pool.wait("Received: NewTemplate(");
    pool.wait(&format!(
        "Received: SetNewPrevHash {{ template_id: 1, prev_hash: U256({})",
        n.tip()
    ));
    pool.wait("target: U256(7fffff0000000000000000000000000000000000000000000000000000000000)");
    pool.wait("Required template data received, ready to accept connections");
    let status = n.status();
    println!("stratumv2_status with pool_sv2 connected: {status}");
    let clients = status["clients"].as_array().expect("clients");
    assert_eq!(clients.len(), 1, "{status:#}");
    let client = &clients[0];
    assert_eq!(client["setup"], json!(true), "{status:#}");
    assert_eq!(client["protocol_version"], json!(2));
    assert!(
        client["coinbase_output_max_additional_size"].as_u64().is_some(),
        "{status:#}"
    );
    assert!(client["templates_sent"].as_u64().is_some_and(|t| t >= 1), "{status:#}");

    // A new block reaches the pool as a new tip (the pool prints a U256
    // reversed, as Core prints hashes; the target above as a number).
    let mined = n.mine(1).remove(0);
    pool.wait(&format!("prev_hash: U256({mined})"));
    let status = n.status();
    assert!(
        status["clients"][0]["templates_sent"].as_u64().is_some_and(|t| t >= 2),
        "{status:#}"
    );
    drop(pool);
    n.node.stop();
}
