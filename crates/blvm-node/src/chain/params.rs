//! Network parameters the chain needs beyond [`bitcoin::params::Params`]:
//! soft-fork activation heights, the subsidy halving interval and the
//! `bitcoinconsensus` script flags in force at a height.
//!
//! rust-bitcoin's `Params` carries BIP16/34/65/66 and the proof-of-work
//! constants but not CSV, segwit or taproot heights, and it leaves BIP34 off
//! on regtest; Bitcoin Core's `chainparams.cpp` is the source for the rest.

use bitcoin::params::Params;
use bitcoin::{Block, Network};

/// `bitcoinconsensus` flag: evaluate P2SH subscripts (BIP16).
pub const VERIFY_P2SH: u32 = 1 << 0;
/// `bitcoinconsensus` flag: strict DER signatures (BIP66).
pub const VERIFY_DERSIG: u32 = 1 << 2;
/// `bitcoinconsensus` flag: NULLDUMMY (BIP147).
pub const VERIFY_NULLDUMMY: u32 = 1 << 4;
/// `bitcoinconsensus` flag: OP_CHECKLOCKTIMEVERIFY (BIP65).
pub const VERIFY_CHECKLOCKTIMEVERIFY: u32 = 1 << 9;
/// `bitcoinconsensus` flag: OP_CHECKSEQUENCEVERIFY (BIP112).
pub const VERIFY_CHECKSEQUENCEVERIFY: u32 = 1 << 10;
/// `bitcoinconsensus` flag: segregated witness (BIP141/143).
pub const VERIFY_WITNESS: u32 = 1 << 11;

/// The consensus parameters of one network, as the chain uses them.
#[derive(Debug, Clone)]
pub struct ChainParams {
    /// rust-bitcoin's parameters (proof of work, BIP16 time, BIP34/65/66 heights).
    pub params: Params,
    /// First height at which the coinbase must start with the height (BIP34).
    pub bip34_height: u32,
    /// First height at which P2SH is enforced; Core enforces it by block time
    /// (`params.bip16_time`), this is the height that time first reached and
    /// serves [`ChainParams::script_flags`], which only knows a height.
    pub bip16_height: u32,
    /// First height of BIP68/112/113 (relative lock times, CSV, median-time locks).
    pub csv_height: u32,
    /// First height of segwit (BIP141/143/147).
    pub segwit_height: u32,
    /// First height of taproot (BIP341/342). Recorded but not enforced: see
    /// [`ChainParams::script_flags`].
    pub taproot_height: u32,
    /// Blocks between subsidy halvings (150 on regtest).
    pub subsidy_halving_interval: u32,
}

impl ChainParams {
    /// The parameters of `network`.
    pub fn new(network: Network) -> ChainParams {
        let params = Params::new(network);
        match network {
            Network::Bitcoin => ChainParams {
                params,
                bip34_height: 227_931,
                bip16_height: 173_805,
                csv_height: 419_328,
                segwit_height: 481_824,
                taproot_height: 709_632,
                subsidy_halving_interval: 210_000,
            },
            Network::Testnet => ChainParams {
                params,
                bip34_height: 21_111,
                bip16_height: 514,
                csv_height: 770_112,
                segwit_height: 834_624,
                taproot_height: 2_011_968,
                subsidy_halving_interval: 210_000,
            },
            // Testnet4 and signet have every soft fork buried at height 1,
            // like regtest below.
            Network::Testnet4 | Network::Signet => Self::all_from_one(params, 210_000),
            // Core's regtest activates BIP34/65/66 and CSV at height 1 and
            // segwit from genesis; rust-bitcoin's REGTEST keeps BIP34 off,
            // which would let a regtest miner omit the height.
            _ => Self::all_from_one(params, 150),
        }
    }

    fn all_from_one(mut params: Params, halving: u32) -> ChainParams {
        params.bip34_height = 1;
        params.bip65_height = 1;
        params.bip66_height = 1;
        ChainParams {
            params,
            bip34_height: 1,
            bip16_height: 0,
            csv_height: 1,
            segwit_height: 0,
            taproot_height: 1,
            subsidy_halving_interval: halving,
        }
    }

    /// The network these parameters are for.
    pub fn network(&self) -> Network {
        self.params.network
    }

    /// The genesis block of the network.
    pub fn genesis(&self) -> Block {
        bitcoin::blockdata::constants::genesis_block(self.params.network)
    }

    /// The four magic bytes that open every record of a `blk*.dat` file.
    pub fn magic(&self) -> [u8; 4] {
        self.params.network.magic().to_bytes()
    }

    /// The block subsidy at `height`, in satoshis.
    pub fn subsidy(&self, height: u32) -> u64 {
        let halvings = height / self.subsidy_halving_interval;
        // Shifting a u64 by 64 or more is undefined in Core and a panic here.
        if halvings >= 64 {
            return 0;
        }
        (50 * 100_000_000u64) >> halvings
    }

    /// Script flags for a block at `height`, as Core's `GetBlockScriptFlags`
    /// with P2SH decided by height ([`ChainParams::bip16_height`]).
    ///
    /// Taproot is never included: rust-bitcoin 0.32 links libbitcoinconsensus
    /// 25.1, whose API has no taproot flag (it refuses unknown flags), so
    /// witness v1 spends are accepted as the anyone-can-spend upgrade path
    /// they are for a pre-taproot node.
    pub fn script_flags(&self, height: u32) -> u32 {
        self.flags(height, height >= self.bip16_height)
    }

    /// Script flags for a block at `height` with timestamp `time`; P2SH by
    /// time, as Core decided it before burying BIP16.
    pub fn script_flags_at(&self, height: u32, time: u32) -> u32 {
        self.flags(height, time >= self.params.bip16_time || height >= self.bip16_height)
    }

    fn flags(&self, height: u32, p2sh: bool) -> u32 {
        let mut flags = 0;
        if p2sh {
            flags |= VERIFY_P2SH;
        }
        if height >= self.params.bip66_height {
            flags |= VERIFY_DERSIG;
        }
        if height >= self.params.bip65_height {
            flags |= VERIFY_CHECKLOCKTIMEVERIFY;
        }
        if height >= self.csv_height {
            flags |= VERIFY_CHECKSEQUENCEVERIFY;
        }
        if height >= self.segwit_height {
            flags |= VERIFY_WITNESS | VERIFY_NULLDUMMY;
        }
        flags
    }
}
