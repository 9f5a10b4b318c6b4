//! The API a module sees: the backend seam, the hub that routes requests
//! to it, the event bus and its durable path.

pub mod backend;
pub mod directory;
pub mod durable;
pub mod events;
pub mod hub;
mod routes;
