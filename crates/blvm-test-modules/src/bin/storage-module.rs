//! A module that exercises module storage through the SDK, driven by the
//! test with `module_call` invocations: the method is a command, the
//! params its space-separated arguments (keys and values are text), the
//! answer one line of text. A refused request answers `ERR <code>
//! <capability>` and the module keeps serving.
//!
//! - `put <tree> <key> <value>` → `OK <generation>`
//! - `get <tree> <key>` → `VALUE <value> <generation>` or `NONE`
//! - `delete <tree> <key>` → `OK <existed>`
//! - `fill <tree> <n> <size>`: n puts of `k<i>` (5 digits), `size`-byte
//!   values, stopping at the first error → `OK <n>` or `ERR ... AT <i>`
//! - `batch <tree> <n> <size>`: the same as one atomic batch → `APPLIED`
//! - `batch-die <tree> <n> <size>`: sends that batch and SIGKILLs itself
//!   while it is being written (no answer)
//! - `cas <tree> <key> <expected generation> <value>` → `APPLIED
//!   <generation>` or `CONFLICT <indices>`
//! - `scan <tree> <limit> [prefix]`: pages through everything with the
//!   cursor → `PAGES <pages> KEYS <k1,k2,...>`
//! - `trees` → `TREES <t1,t2,...>`; `create <tree>`, `drop <tree>` → `OK
//!   <changed>`; `usage` → `USAGE <bytes> <keys> <max_bytes> <max_keys>`

use blvm_sdk::protocol::methods::invocation::{ModuleCall, ModuleCallResult};
use blvm_sdk::protocol::methods::storage::{BatchOp, BatchOpKind, Scan};
use blvm_sdk::{ModuleIntegration, NodeApiIpc, SdkError};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    let integration = ModuleIntegration::from_env().await?;
    let api = integration.node_api();
    let mut invocations = integration.invocation_receiver()?;
    println!("STORAGE READY");
    loop {
        tokio::select! {
            _ = integration.shutdown_requested() => return Ok(()),
            inv = invocations.recv() => {
                let Some(inv) = inv else { return Ok(()) };
                let call: ModuleCall = inv.params()?;
                let args = String::from_utf8_lossy(&call.params).into_owned();
                let args: Vec<&str> = args.split(' ').filter(|a| !a.is_empty()).collect();
                let answer = match command(&api, &call.method, &args).await {
                    Ok(text) => text,
                    Err(SdkError::Remote(e)) => {
                        format!("ERR {} {}", e.code, e.capability.unwrap_or_default())
                    }
                    Err(e) => format!("ERR {e}"),
                };
                inv.respond(&ModuleCallResult { result: answer.into_bytes() })?;
            }
        }
    }
}

fn arg<'a>(args: &[&'a str], i: usize) -> &'a str {
    args.get(i).copied().unwrap_or_default()
}

fn number(args: &[&str], i: usize) -> u64 {
    arg(args, i).parse().unwrap_or(0)
}

fn puts(tree: &str, n: u64, size: u64) -> Vec<BatchOp> {
    (0..n)
        .map(|i| BatchOp {
            op: BatchOpKind::Put,
            tree: tree.into(),
            key: format!("k{i:05}").into_bytes(),
            value: Some(vec![b'v'; size as usize]),
            expect_generation: None,
        })
        .collect()
}

async fn command(api: &NodeApiIpc, method: &str, args: &[&str]) -> Result<String, SdkError> {
    let tree = arg(args, 0);
    Ok(match method {
        "put" => {
            let generation = api
                .storage_put(tree, arg(args, 1).as_bytes(), arg(args, 2).as_bytes())
                .await?;
            format!("OK {generation}")
        }
        "get" => match api.storage_get(tree, arg(args, 1).as_bytes()).await? {
            Some((value, generation)) => format!("VALUE {} {generation}", String::from_utf8_lossy(&value)),
            None => "NONE".into(),
        },
        "delete" => format!("OK {}", api.storage_delete(tree, arg(args, 1).as_bytes()).await?),
        "fill" => {
            let (n, size) = (number(args, 1), number(args, 2));
            for (i, op) in puts(tree, n, size).into_iter().enumerate() {
                let value = op.value.unwrap_or_default();
                if let Err(SdkError::Remote(e)) = api.storage_put(tree, &op.key, &value).await {
                    return Ok(format!("ERR {} AT {i}", e.code));
                }
            }
            format!("OK {n}")
        }
        "batch" => {
            let r = api.storage_batch(puts(tree, number(args, 1), number(args, 2))).await?;
            if r.applied {
                "APPLIED".into()
            } else {
                format!("CONFLICT {:?}", r.conflicts)
            }
        }
        "batch-die" => {
            let ops = puts(tree, number(args, 1), number(args, 2));
            let api = api.clone();
            // The request's first bytes are written when the task first
            // runs; the rest (a frame of megabytes) is still going out
            // when the process dies.
            tokio::spawn(async move { api.storage_batch(ops).await });
            tokio::task::yield_now().await;
            // SAFETY: kill(2) on our own pid has no memory effects.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            unreachable!("SIGKILL is not caught")
        }
        "cas" => {
            let op = BatchOp {
                op: BatchOpKind::Put,
                tree: tree.into(),
                key: arg(args, 1).as_bytes().to_vec(),
                value: Some(arg(args, 3).as_bytes().to_vec()),
                expect_generation: Some(number(args, 2)),
            };
            let r = api.storage_batch(vec![op]).await?;
            if r.applied {
                format!("APPLIED {}", r.generations.first().copied().unwrap_or(0))
            } else {
                format!("CONFLICT {:?}", r.conflicts)
            }
        }
        "scan" => {
            let mut scan = Scan {
                tree: tree.into(),
                limit: Some(number(args, 1) as u32),
                prefix: args.get(2).map(|p| p.as_bytes().to_vec()),
                ..Scan::default()
            };
            let (mut pages, mut keys) = (0, Vec::new());
            loop {
                let page = api.storage_scan(&scan).await?;
                pages += 1;
                keys.extend(
                    page.entries
                        .iter()
                        .map(|e| String::from_utf8_lossy(&e.key).into_owned()),
                );
                match page.cursor {
                    Some(c) => scan.cursor = Some(c),
                    None => break,
                }
            }
            format!("PAGES {pages} KEYS {}", keys.join(","))
        }
        "trees" => format!("TREES {}", api.storage_list_trees().await?.join(",")),
        "create" => format!("OK {}", api.storage_create_tree(tree).await?),
        "drop" => format!("OK {}", api.storage_drop_tree(tree).await?),
        "usage" => {
            let u = api.storage_usage().await?;
            format!("USAGE {} {} {} {}", u.bytes, u.keys, u.max_bytes, u.max_keys)
        }
        other => format!("ERR unknown command {other}"),
    })
}
