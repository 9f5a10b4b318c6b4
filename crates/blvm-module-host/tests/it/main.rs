//! Integration tests of the module host: real module processes over a real
//! Unix socket, answered from real mainnet blocks. One test binary, so the
//! suite links once.

mod support;

mod auth;
mod cgroup_v2;
mod concurrency;
mod cpu;
mod events;
mod filesystem;
mod isolation;
mod kernel_surface;
mod lifecycle_events;
mod liveness;
mod logs;
mod manager;
mod metrics;
mod modules;
mod neighbours;
mod permissions;
mod privileges;
mod rate;
mod reach;
mod sandbox;
mod scripts;
mod sdk;
mod signatures;
mod slots;
mod storage;
mod timers;
