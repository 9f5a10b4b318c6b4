//! The API a module sees: the backend seam, the hub that routes requests
//! to it, and the event bus.

pub mod backend;
pub mod directory;
pub mod events;
pub mod hub;
mod routes;
