//! The messages Bitcoin Core's ZMQ notifiers send (`doc/zmq.md`), and the
//! per-notifier sequence numbers.
//!
//! Every message has three parts: the topic, the body, and the notifier's
//! message counter as 4 bytes little-endian, which starts at 0 and counts
//! every message that notifier sent (so a subscriber sees a gap when it
//! missed one). Hashes are sent in the order Core prints them (the
//! reverse of their internal byte order).

/// A notification topic, as `-zmqpub<topic>` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Topic {
    /// Hash of each new tip.
    HashBlock,
    /// The serialized block of each new tip.
    RawBlock,
    /// Txid of each transaction entering the mempool or in a connected or
    /// disconnected block.
    HashTx,
    /// The serialized transaction (with witness), on the same occasions.
    RawTx,
    /// Block connections and disconnections, mempool acceptances and
    /// removals, with a label.
    Sequence,
}

impl Topic {
    /// Every topic.
    pub const ALL: [Topic; 5] = [
        Topic::HashBlock,
        Topic::RawBlock,
        Topic::HashTx,
        Topic::RawTx,
        Topic::Sequence,
    ];

    /// The topic's name: the message's first part.
    pub fn name(self) -> &'static str {
        match self {
            Topic::HashBlock => "hashblock",
            Topic::RawBlock => "rawblock",
            Topic::HashTx => "hashtx",
            Topic::RawTx => "rawtx",
            Topic::Sequence => "sequence",
        }
    }

    /// The config key naming its endpoints: Core's option without `-zmq`.
    pub fn config_key(self) -> String {
        format!("pub{}", self.name())
    }
}

/// What a `sequence` message says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceLabel {
    /// `C`: a block was connected.
    BlockConnected,
    /// `D`: a block was disconnected.
    BlockDisconnected,
    /// `A`: a transaction was accepted into the mempool, with the mempool
    /// sequence number.
    Accepted(u64),
    /// `R`: a transaction left the mempool for a reason other than a
    /// block, with the mempool sequence number.
    Removed(u64),
}

/// A hash (internal byte order) as Core sends it: reversed.
pub fn reversed(hash: &[u8; 32]) -> [u8; 32] {
    let mut out = *hash;
    out.reverse();
    out
}

/// The body of a `sequence` message: the hash (reversed), the label, and
/// for `A` and `R` the mempool sequence number, 8 bytes little-endian.
pub fn sequence_body(hash: &[u8; 32], label: SequenceLabel) -> Vec<u8> {
    let mut body = reversed(hash).to_vec();
    match label {
        SequenceLabel::BlockConnected => body.push(b'C'),
        SequenceLabel::BlockDisconnected => body.push(b'D'),
        SequenceLabel::Accepted(seq) => {
            body.push(b'A');
            body.extend_from_slice(&seq.to_le_bytes());
        }
        SequenceLabel::Removed(seq) => {
            body.push(b'R');
            body.extend_from_slice(&seq.to_le_bytes());
        }
    }
    body
}

/// One notifier: a topic on one endpoint, with its message counter.
#[derive(Debug, Clone)]
pub struct Notifier {
    /// What it publishes.
    pub topic: Topic,
    /// Index of its socket (one per endpoint, shared by the topics there).
    pub socket: usize,
    next: u32,
}

impl Notifier {
    /// A notifier of `topic` on socket `socket`, at counter 0.
    pub fn new(topic: Topic, socket: usize) -> Notifier {
        Notifier { topic, socket, next: 0 }
    }

    /// The three parts of its next message with `body`; advances its
    /// counter (wrapping, as Core's `uint32_t` does).
    pub fn message(&mut self, body: Vec<u8>) -> [Vec<u8>; 3] {
        let seq = self.next;
        self.next = self.next.wrapping_add(1);
        [self.topic.name().as_bytes().to_vec(), body, seq.to_le_bytes().to_vec()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_bodies_carry_the_reversed_hash_the_label_and_the_mempool_sequence_for_a_and_r() {
        let mut hash = [0u8; 32];
        hash[0] = 0xaa;
        hash[31] = 0x01;
        let connected = sequence_body(&hash, SequenceLabel::BlockConnected);
        assert_eq!(
            (connected.len(), connected[0], connected[31], connected[32]),
            (33, 0x01, 0xaa, b'C')
        );
        assert_eq!(sequence_body(&hash, SequenceLabel::BlockDisconnected)[32], b'D');
        let accepted = sequence_body(&hash, SequenceLabel::Accepted(0x0102));
        assert_eq!(accepted.len(), 41);
        assert_eq!(&accepted[32..], &[b'A', 0x02, 0x01, 0, 0, 0, 0, 0, 0]);
        assert_eq!(sequence_body(&hash, SequenceLabel::Removed(7))[32], b'R');
    }

    #[test]
    fn each_notifier_counts_its_own_messages_from_zero_little_endian() {
        let mut block = Notifier::new(Topic::HashBlock, 0);
        let mut tx = Notifier::new(Topic::HashTx, 0);
        assert_eq!(block.message(vec![1])[2], [0, 0, 0, 0]);
        assert_eq!(tx.message(vec![2])[2], [0, 0, 0, 0]);
        let second = block.message(vec![3]);
        assert_eq!(second[0], b"hashblock");
        assert_eq!(second[2], [1, 0, 0, 0]);
        assert_eq!(Topic::RawTx.config_key(), "pubrawtx");
    }
}
