//! A module that never connects: the manager must kill it at the
//! handshake deadline.

fn main() {
    loop {
        std::thread::park();
    }
}
