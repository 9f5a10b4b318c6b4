//! Noise over TCP: the handshake (responder for the module, initiator for
//! clients such as the tests'), then SV2 frames in both directions,
//! encrypted by `codec_sv2` with the states `noise_sv2` derived.
//!
//! A [`Reader`] reads exactly what the decoder asks for, one window at a
//! time, and hands the decryption state back and forth with it: a read
//! abandoned half-way would lose that state, so a reader must never be a
//! branch of a `select!` that can be cancelled. [`Reader::spawn`] runs it
//! on a task of its own that sends whole frames into a channel, which is
//! safe to wait on anywhere.
//!
//! A frame whose payload is longer than [`MAX_FRAME`] is refused as its
//! bytes arrive, before more than that is buffered.

use std::time::Duration;

use binary_sv2::{GetSize, Serialize};
use codec_sv2::{
    Decoded, Decrypted, Handshake, InitiatorSent, NoiseDecoder, NoiseEncoder, TransportDecryptState,
    TransportEncryptState,
};
use framing_sv2::framing::MessageFrame;
use noise_sv2::{
    Initiator, Responder, AEAD_MAC_LEN, ELLSWIFT_ENCODING_SIZE, INITIATOR_EXPECTED_HANDSHAKE_MESSAGE_SIZE,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::Error;

/// The longest frame payload accepted, bytes: far above any client
/// message of the Template Distribution Protocol (a `SubmitSolution`
/// carries a coinbase of at most 64 KiB).
pub const MAX_FRAME: usize = 128 * 1024;
/// How long a peer has to complete the Noise handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write may wait for a peer that does not read: after it,
/// the connection fails (and only that client's task ends).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// An SV2 frame header: extension type (2), message type (1), length (3).
pub const HEADER_LEN: usize = 6;
/// Plaintext bytes per Noise chunk of a payload.
const CHUNK: usize = 65_535 - AEAD_MAC_LEN;

/// The most encrypted bytes a frame of [`MAX_FRAME`] payload bytes takes
/// on the wire: the header with its MAC, and a MAC per chunk.
pub const fn max_encrypted_frame() -> usize {
    HEADER_LEN + AEAD_MAC_LEN + MAX_FRAME + MAX_FRAME.div_ceil(CHUNK) * AEAD_MAC_LEN
}

/// One decrypted frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The extension type (0: none), channel bit included.
    pub ext_type: u16,
    /// The message type.
    pub msg_type: u8,
    /// The message.
    pub payload: Vec<u8>,
}

impl Frame {
    /// The frame as it travelled before encryption: header, then payload.
    pub fn to_bytes(&self) -> Vec<u8> {
        let len = (self.payload.len() as u32).to_le_bytes();
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.extend_from_slice(&self.ext_type.to_le_bytes());
        out.push(self.msg_type);
        out.extend_from_slice(&len[..3]);
        out.extend_from_slice(&self.payload);
        out
    }
}

/// The receiving half of a connection after the handshake.
pub struct Reader {
    stream: OwnedReadHalf,
    decoder: NoiseDecoder,
    state: Option<TransportDecryptState>,
}

/// The sending half of a connection after the handshake.
pub struct Writer {
    stream: OwnedWriteHalf,
    encoder: NoiseEncoder,
    state: TransportEncryptState,
}

impl Reader {
    /// The next frame.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] at the end of the stream, [`Error::FrameTooLarge`],
    /// [`Error::Codec`] when decryption fails; the reader is then useless.
    pub async fn next(&mut self) -> Result<Frame, Error> {
        let mut read = 0usize;
        loop {
            let window = self.decoder.writable();
            let n = window.len();
            match self.stream.read_exact(window).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(Error::Closed),
                Err(e) => return Err(e.into()),
            }
            read += n;
            if read > max_encrypted_frame() {
                return Err(Error::FrameTooLarge { limit: MAX_FRAME });
            }
            let state = self.state.take().ok_or(Error::Closed)?;
            match self.decoder.next_transport_frame(state)? {
                Decrypted::Frame(mut frame, state) => {
                    self.state = Some(state);
                    let header = frame.header();
                    if header.payload_length() > MAX_FRAME {
                        return Err(Error::FrameTooLarge { limit: MAX_FRAME });
                    }
                    return Ok(Frame {
                        ext_type: header.ext_type(),
                        msg_type: header.msg_type(),
                        payload: frame.payload().to_vec(),
                    });
                }
                Decrypted::Incomplete(_, state) => self.state = Some(state),
            }
        }
    }

    /// Reads on a task of its own until the stream ends or fails, sending
    /// each frame, then the error that ended it, into the channel
    /// returned (which holds `depth` frames; the task waits when it is
    /// full, so a slow consumer slows its peer, never the module).
    pub fn spawn(mut self, depth: usize) -> mpsc::Receiver<Result<Frame, Error>> {
        let (tx, rx) = mpsc::channel(depth.max(1));
        tokio::spawn(async move {
            loop {
                let next = self.next().await;
                let end = next.is_err();
                if tx.send(next).await.is_err() || end {
                    return;
                }
            }
        });
        rx
    }
}

impl Writer {
    /// Encrypts and sends `message` as a frame of `msg_type` (no
    /// extension, no channel bit); returns the bytes written.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] for a message too long for a frame, the socket's
    /// (`TimedOut` after [`WRITE_TIMEOUT`]).
    pub async fn send<M: Serialize + GetSize>(&mut self, msg_type: u8, message: M) -> Result<usize, Error> {
        let frame = MessageFrame::from_message(message, msg_type, 0, false).map_err(|e| Error::Encode {
            what: "frame",
            why: format!("{e:?}"),
        })?;
        let bytes: Vec<u8> = self.encoder.encode_transport(frame, &mut self.state)?;
        tokio::time::timeout(WRITE_TIMEOUT, self.stream.write_all(&bytes))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "the peer does not read"))??;
        Ok(bytes.len())
    }

    /// Sends bytes as they are (for tests of what a peer does with
    /// garbage), after the handshake.
    ///
    /// # Errors
    ///
    /// The socket's.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        Ok(self.stream.write_all(bytes).await?)
    }

    /// Sends a frame that claims `payload_len` bytes of payload and sends
    /// them all, encrypted as a well-behaved peer would (for tests of the
    /// frame limit).
    ///
    /// # Errors
    ///
    /// The socket's, or the codec's.
    pub async fn send_payload(&mut self, msg_type: u8, payload: Vec<u8>) -> Result<(), Error> {
        let payload: binary_sv2::B016MOwned = binary_sv2::B016MOwned::new(payload).map_err(|e| Error::Encode {
            what: "payload",
            why: format!("{e:?}"),
        })?;
        self.send(msg_type, payload).await.map(drop)
    }
}

async fn read_handshake<R: codec_sv2::ExpectsHandshakeMessage>(
    stream: &mut TcpStream,
    decoder: &mut NoiseDecoder,
) -> Result<Vec<u8>, Error> {
    loop {
        let window = decoder.writable();
        match stream.read_exact(window).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(Error::Closed),
            Err(e) => return Err(e.into()),
        }
        if let Decoded::Frame(message) = decoder.next_handshake_frame::<R>()? {
            return Ok(message.payload().to_vec());
        }
    }
}

fn split(stream: TcpStream, decoder: NoiseDecoder, transport: codec_sv2::Transport) -> (Reader, Writer) {
    let (encrypt, decrypt) = transport.split();
    let (read, write) = stream.into_split();
    (
        Reader {
            stream: read,
            decoder,
            state: Some(decrypt),
        },
        Writer {
            stream: write,
            encoder: NoiseEncoder::new(),
            state: encrypt,
        },
    )
}

/// The responder's side of the handshake, within [`HANDSHAKE_TIMEOUT`].
///
/// # Errors
///
/// [`Error::HandshakeTimeout`], [`Error::Closed`], the codec's (a first
/// message that is no ElligatorSwift key).
pub async fn accept(mut stream: TcpStream, responder: Box<Responder>) -> Result<(Reader, Writer), Error> {
    let handshake = async {
        let mut decoder = NoiseDecoder::new();
        let first = read_handshake::<Responder>(&mut stream, &mut decoder).await?;
        let first: [u8; ELLSWIFT_ENCODING_SIZE] = first
            .as_slice()
            .try_into()
            .map_err(|_| Error::Codec("short handshake message".into()))?;
        let (answer, transport) = Handshake::responder(responder).step_1(first)?;
        let bytes = NoiseEncoder::new().encode_handshake(answer);
        stream.write_all(bytes.as_ref()).await?;
        Ok::<_, Error>((decoder, transport))
    };
    let (decoder, transport) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| Error::HandshakeTimeout(HANDSHAKE_TIMEOUT))??;
    Ok(split(stream, decoder, transport))
}

/// The initiator's side of the handshake: checks the responder's
/// certificate against `authority` (its x-only key) when given.
///
/// # Errors
///
/// [`Error::HandshakeTimeout`], [`Error::Closed`], the codec's (a wrong
/// authority, an expired certificate).
pub async fn connect(mut stream: TcpStream, authority: Option<[u8; 32]>) -> Result<(Reader, Writer), Error> {
    let handshake = async {
        let initiator = match authority {
            Some(key) => Initiator::from_raw_k(key).map_err(|e| Error::Key(format!("{e:?}")))?,
            None => Initiator::without_pk().map_err(|e| Error::Key(format!("{e:?}")))?,
        };
        let (first, sent) = Handshake::initiator(initiator).step_0()?;
        let bytes = NoiseEncoder::new().encode_handshake(first);
        stream.write_all(bytes.as_ref()).await?;
        let mut decoder = NoiseDecoder::new();
        let answer = read_handshake::<InitiatorSent>(&mut stream, &mut decoder).await?;
        let answer: [u8; INITIATOR_EXPECTED_HANDSHAKE_MESSAGE_SIZE] = answer
            .as_slice()
            .try_into()
            .map_err(|_| Error::Codec("short handshake message".into()))?;
        let transport = sent.step_2(answer)?;
        Ok::<_, Error>((decoder, transport))
    };
    let (decoder, transport) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| Error::HandshakeTimeout(HANDSHAKE_TIMEOUT))??;
    Ok(split(stream, decoder, transport))
}
