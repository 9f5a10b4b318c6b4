//! miner (being written).
