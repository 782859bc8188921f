//! Noise XX glue: the seeded resolver, the signed handshake payload, and
//! chunked transport encryption.
//!
//! Pattern `Noise_XX_25519_ChaChaPoly_BLAKE2s`, prologue = the 6-byte
//! preamble. Message 1 (`-> e`) has an empty payload; messages 2
//! (`<- e, ee, s, es`) and 3 (`-> s, se`) carry a [`NoiseHandshakePayload`]:
//! the sender's Ed25519 signature over its Noise static key, and its `Hello`.

use bytes::{Bytes, BytesMut};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use snow::params::{CipherChoice, DHChoice, HashChoice, NoiseParams};
use snow::resolvers::{CryptoResolver, DefaultResolver, RingResolver};
use snow::types::{Cipher, Dh, Hash, Random};

use crate::identity::{BadKeyOrSig, Identity, NOISE_STATIC_SIGNATURE_CONTEXT, PublicKey};
use crate::wire::{Hello, NoiseHandshakePayload, PROTOCOL_VERSION};
use crate::{NodeId, ProtocolError};

/// The Noise protocol name.
pub(crate) const NOISE_PATTERN: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
/// Largest Noise message (handshake or transport), including the tag.
pub(crate) const NOISE_MAX_MESSAGE: usize = 65_535;
/// AEAD tag length.
pub(crate) const NOISE_TAG_LEN: usize = 16;
/// Plaintext bytes per transport chunk.
pub(crate) const NOISE_MAX_CHUNK: usize = NOISE_MAX_MESSAGE - NOISE_TAG_LEN;

pub(crate) fn params() -> NoiseParams {
    // The name is a constant known to parse; a failure here is a build bug
    // that the first handshake test catches.
    NOISE_PATTERN
        .parse()
        .unwrap_or_else(|_| unreachable!("valid Noise pattern"))
}

/// Supplies snow with a per-handshake ChaCha20 stream instead of the OS RNG,
/// so that handshakes are reproducible from the node seed, and with ring's
/// AEAD. (ring's own resolver would draw from the OS RNG; only its cipher is
/// used.)
pub(crate) struct SeededResolver {
    seed: [u8; 32],
}

impl SeededResolver {
    pub(crate) fn new(seed: [u8; 32]) -> Self {
        SeededResolver { seed }
    }
}

struct SeededRandom(ChaCha20Rng);

impl Random for SeededRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SeededRandom(ChaCha20Rng::from_seed(self.seed))))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        // ring's assembly ChaCha20-Poly1305 is about 9x faster per small
        // message than the portable one here (0.5 µs against 4.3 µs for a
        // 64-byte encrypt + decrypt, `benches/README.md`); same bytes out.
        RingResolver
            .resolve_cipher(choice)
            .or_else(|| DefaultResolver.resolve_cipher(choice))
    }
}

/// The X25519 public key for a static secret.
pub(crate) fn static_public_key(secret: &[u8; 32]) -> [u8; 32] {
    curve25519_dalek::MontgomeryPoint::mul_base_clamped(*secret).to_bytes()
}

/// The bytes an identity signs to vouch for a Noise static key.
pub(crate) fn signed_message(static_public: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(NOISE_STATIC_SIGNATURE_CONTEXT.len() + 32);
    message.extend_from_slice(NOISE_STATIC_SIGNATURE_CONTEXT);
    message.extend_from_slice(static_public);
    message
}

/// This node's payload for handshake messages 2 and 3.
pub(crate) fn signed_payload(identity: &Identity, hello: &Hello) -> Bytes {
    let static_public = static_public_key(&identity.noise_static_secret());
    let payload = NoiseHandshakePayload {
        signature: identity.sign(&signed_message(&static_public)),
        hello: hello.clone(),
    };
    let mut out = BytesMut::new();
    payload.encode(&mut out);
    out.freeze()
}

/// Checks a peer's handshake payload against the static key Noise proved it
/// holds; returns its hello and authenticated id.
pub(crate) fn verify_payload(
    payload: Bytes,
    remote_static: Option<&[u8]>,
) -> Result<(NodeId, Hello), ProtocolError> {
    let payload = NoiseHandshakePayload::decode(payload)?;
    check_version(payload.hello.version)?;
    let remote_static = remote_static.ok_or(ProtocolError::HandshakeFailed)?;
    let identity: PublicKey = payload.hello.identity;
    identity
        .verify(&signed_message(remote_static), &payload.signature)
        .map_err(|e| match e {
            BadKeyOrSig::Key => ProtocolError::BadIdentityKey,
            BadKeyOrSig::Signature => ProtocolError::BadSignature,
        })?;
    Ok((identity.node_id(), payload.hello))
}

pub(crate) fn check_version(theirs: u8) -> Result<(), ProtocolError> {
    if theirs == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(ProtocolError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs,
        })
    }
}

/// On-wire length of a body of `plain_len` bytes after chunked encryption.
pub(crate) fn encrypted_len(plain_len: usize) -> usize {
    let chunks = plain_len.div_ceil(NOISE_MAX_CHUNK).max(1);
    plain_len + chunks * NOISE_TAG_LEN
}

/// The transport phase of a Noise session: the two ChaCha20-Poly1305
/// cipher states `Split()` gives at the end of the handshake, run here on
/// `ring` directly rather than through `snow::TransportState`.
///
/// The bytes are the ones `snow` would produce (same keys, nonce layout
/// `0u32 || n as u64 little-endian`, empty associated data; checked against
/// `snow` in the tests), but a frame is sealed in place in the outgoing
/// buffer and opened in place in the received one: `snow` wants separate
/// input and output slices, which cost a zero-filled buffer and a copy per
/// chunk each way.
pub(crate) struct NoiseTransport {
    send: CipherState,
    recv: CipherState,
    /// The buffers of large frames, made at the first one: boxed, as most
    /// sessions never move a large frame and a node holds many sessions
    /// (8 bytes here, not the two recyclers' 64).
    recyclers: Option<Box<Recyclers>>,
}

/// A session's two [`Recycler`]s.
#[derive(Default)]
struct Recyclers {
    /// Large frames sealed lately, their buffers to seal into again.
    sealed: Recycler,
    /// Large bodies opened lately, their buffers to open into again.
    opened: Recycler,
}

/// A frame or body at least this long is sealed or opened in a buffer
/// recycled from an earlier one ([`Recycler`]); a smaller one gets a
/// buffer of its own, as `malloc` serves it from its caches for less than
/// the recycler's bookkeeping.
pub(crate) const RECYCLE_MIN: usize = 16 * 1024;

/// How many of its last buffers a [`Recycler`] watches.
pub(crate) const RECYCLED: usize = 8;

/// A frame or body longer than this gets a buffer of its own, never a
/// recycled one, and its buffer is not kept: a peer's largest frames
/// (up to `max_frame_len`, 16 MiB by default) must not stay pinned by a
/// session after the application dropped them.
pub(crate) const RECYCLE_MAX: usize = 128 * 1024;

/// Cap on the bytes a [`Recycler`] watches (eight 64 KiB frames): what a
/// session may keep alive past its frames' lives is at most this much a
/// direction.
pub(crate) const RECYCLED_BYTES: usize = 512 * 1024 + 8 * 1024;

/// The buffers of the last [`RECYCLED`] large frames (or bodies) of one
/// direction, each watched through a clone of its `Bytes`: once every
/// other holder has dropped it (the adapter has written the frame, the
/// application has dropped the payload) the buffer is reused for the next
/// frame instead of a fresh allocation.
///
/// Why: a 64 KiB buffer freed goes back to the system often enough
/// (glibc trims the top of its heap) that each new one is faulted in and
/// zeroed by the kernel again, 16 page faults a message each way; the
/// loopback bench's mio 64 KiB Noise case spent about a fifth of its time
/// there (`benches/README.md`). A buffer is reused only when nobody else
/// holds any part of it, so a payload the application keeps is never
/// written over, and only when it is at most a little larger than what it
/// is reused for, so a small frame never pins a large buffer. At most
/// [`RECYCLED`] buffers and [`RECYCLED_BYTES`] are kept per direction,
/// none longer than [`RECYCLE_MAX`] (a peer's 16 MiB frames are not kept
/// alive past their use), and only on a session that moved frames of
/// [`RECYCLE_MIN`] bytes or more.
#[derive(Default)]
struct Recycler {
    kept: std::collections::VecDeque<Bytes>,
}

impl Recycler {
    /// An empty buffer with room for `len` bytes: a kept one nobody else
    /// holds any more, else a new one of exactly `len` bytes.
    fn take(&mut self, len: usize) -> BytesMut {
        if len > RECYCLE_MAX {
            return BytesMut::with_capacity(len);
        }
        // A buffer that nobody else holds but does not fit is let go.
        while let Some(at) = self.kept.iter().position(Bytes::is_unique) {
            if let Some(kept) = self.kept.remove(at)
                && let Ok(mut buf) = kept.try_into_mut()
                && fits_snugly(buf.capacity(), len)
            {
                buf.clear();
                return buf;
            }
        }
        BytesMut::with_capacity(len)
    }

    /// Watches `frame`'s buffer, to reuse once nobody else holds it; the
    /// oldest watched buffer is let go.
    fn keep(&mut self, frame: &Bytes) {
        if frame.len() > RECYCLE_MAX {
            return;
        }
        if self.kept.len() == RECYCLED {
            self.kept.pop_front();
        }
        while self.kept.iter().map(Bytes::len).sum::<usize>() + frame.len() > RECYCLED_BYTES {
            self.kept.pop_front();
        }
        self.kept.push_back(frame.clone());
    }
}

/// Whether a buffer of `capacity` bytes may hold `len`: room enough, and
/// not so much more that the frame (counted by its length in the write
/// queues' budgets) holds far more memory than it says.
fn fits_snugly(capacity: usize, len: usize) -> bool {
    capacity >= len && capacity - len <= len / 4
}

/// One direction's key and nonce counter.
struct CipherState {
    key: ring::aead::LessSafeKey,
    n: u64,
}

/// The nonce counter reached 2^64 - 1, which Noise reserves: the session
/// cannot carry another message.
#[derive(Debug)]
pub(crate) struct NonceExhausted;

impl CipherState {
    fn new(key: &[u8; 32]) -> Self {
        let key = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, key)
            .unwrap_or_else(|_| unreachable!("a 32-byte key fits ChaCha20-Poly1305"));
        CipherState {
            key: ring::aead::LessSafeKey::new(key),
            n: 0,
        }
    }

    /// The next nonce in Noise's ChaChaPoly layout; each is used once.
    fn next_nonce(&mut self) -> Result<ring::aead::Nonce, NonceExhausted> {
        if self.n == u64::MAX {
            return Err(NonceExhausted);
        }
        let mut bytes = [0u8; 12];
        bytes[4..].copy_from_slice(&self.n.to_le_bytes());
        self.n += 1;
        Ok(ring::aead::Nonce::assume_unique_for_key(bytes))
    }
}

impl NoiseTransport {
    /// The transport keys of a finished handshake (`None` if it is not
    /// finished): the initiator sends with the first key of the split, the
    /// responder with the second.
    pub(crate) fn from_handshake(mut handshake: snow::HandshakeState) -> Option<Self> {
        if !handshake.is_handshake_finished() {
            return None;
        }
        let (first, second) = handshake.dangerously_get_raw_split();
        let (send, recv) = if handshake.is_initiator() {
            (first, second)
        } else {
            (second, first)
        };
        Some(NoiseTransport {
            send: CipherState::new(&send),
            recv: CipherState::new(&recv),
            recyclers: None,
        })
    }

    fn recyclers(&mut self) -> &mut Recyclers {
        self.recyclers.get_or_insert_default()
    }

    /// An empty buffer for a sealed frame of `len` bytes (length prefix
    /// included): recycled from an earlier frame when it is large.
    pub(crate) fn frame_buffer(&mut self, len: usize) -> BytesMut {
        if len >= RECYCLE_MIN {
            self.recyclers().sealed.take(len)
        } else {
            BytesMut::with_capacity(len)
        }
    }

    /// The sealed frame written into a [`NoiseTransport::frame_buffer`],
    /// ready to send; a large one's buffer is watched to be reused.
    pub(crate) fn sealed_frame(&mut self, frame: BytesMut) -> Bytes {
        let frame = frame.freeze();
        if frame.len() >= RECYCLE_MIN {
            self.recyclers().sealed.keep(&frame);
        }
        frame
    }
}

/// Appends `body` to `out` as Noise transport messages of at most
/// [`NOISE_MAX_MESSAGE`] bytes, each sealed in place: the plaintext is
/// copied once, into `out`, and encrypted there. An empty body still makes
/// one message (just a tag).
pub(crate) fn encrypt_chunks(
    transport: &mut NoiseTransport,
    body: &[u8],
    out: &mut BytesMut,
) -> Result<(), NonceExhausted> {
    let mut chunks = body.chunks(NOISE_MAX_CHUNK).peekable();
    if chunks.peek().is_none() {
        return encrypt_one(transport, &[], out);
    }
    for chunk in chunks {
        encrypt_one(transport, chunk, out)?;
    }
    Ok(())
}

fn encrypt_one(
    transport: &mut NoiseTransport,
    chunk: &[u8],
    out: &mut BytesMut,
) -> Result<(), NonceExhausted> {
    let nonce = transport.send.next_nonce()?;
    let start = out.len();
    out.extend_from_slice(chunk);
    let tag = transport
        .send
        .key
        .seal_in_place_separate_tag(nonce, ring::aead::Aad::empty(), &mut out[start..])
        .unwrap_or_else(|_| unreachable!("a chunk is far below ChaCha20-Poly1305's limit"));
    out.extend_from_slice(tag.as_ref());
    Ok(())
}

/// Seals `out[start..]`, a plaintext written there already, in place as
/// Noise transport messages: what [`encrypt_chunks`] appends of the same
/// plaintext, without copying it in. Each chunk but the first moves right
/// by the tags before it (for a 64 KiB message, the few bytes past the
/// first chunk). On `Err` (no nonce left) `out` is as it was.
pub(crate) fn seal_from(
    transport: &mut NoiseTransport,
    out: &mut BytesMut,
    start: usize,
) -> Result<(), NonceExhausted> {
    let plain = out.len() - start;
    let chunks = plain.div_ceil(NOISE_MAX_CHUNK).max(1);
    // Noise refuses the last nonce: check them all before anything moves.
    if transport.send.n.checked_add(chunks as u64).is_none() {
        return Err(NonceExhausted);
    }
    out.resize(start + plain + chunks * NOISE_TAG_LEN, 0);
    // Last chunk first, so that no chunk is written over before it moved.
    for chunk in (1..chunks).rev() {
        let from = start + chunk * NOISE_MAX_CHUNK;
        let len = (plain - chunk * NOISE_MAX_CHUNK).min(NOISE_MAX_CHUNK);
        out.copy_within(from..from + len, from + chunk * NOISE_TAG_LEN);
    }
    for chunk in 0..chunks {
        let at = start + chunk * NOISE_MAX_MESSAGE;
        let len = plain
            .saturating_sub(chunk * NOISE_MAX_CHUNK)
            .min(NOISE_MAX_CHUNK);
        let nonce = transport.send.next_nonce()?;
        let tag = transport
            .send
            .key
            .seal_in_place_separate_tag(nonce, ring::aead::Aad::empty(), &mut out[at..at + len])
            .unwrap_or_else(|_| unreachable!("a chunk is far below ChaCha20-Poly1305's limit"));
        out[at + len..at + len + NOISE_TAG_LEN].copy_from_slice(tag.as_ref());
    }
    Ok(())
}

/// Opens a frame of Noise transport messages (each [`NOISE_MAX_MESSAGE`]
/// bytes but the last) into the plaintext body, in place: in the frame's
/// own buffer when nothing else holds it (a frame the reader reassembled),
/// else in one copy of it (for a large frame, into a recycled buffer).
pub(crate) fn decrypt_chunks(
    transport: &mut NoiseTransport,
    frame: Bytes,
) -> Result<Bytes, ProtocolError> {
    let (mut buf, recycled) = match frame.try_into_mut() {
        Ok(buf) => (buf, false),
        Err(frame) if frame.len() < RECYCLE_MIN => {
            return open_one_copied(transport, &frame);
        }
        Err(frame) => {
            let mut buf = transport.recyclers().opened.take(frame.len());
            buf.extend_from_slice(&frame);
            (buf, true)
        }
    };
    let total = buf.len();
    // Where the next message starts, and where its plaintext goes (each
    // message's plaintext moves left over the tags before it).
    let (mut read, mut written) = (0, 0);
    loop {
        let len = (total - read).min(NOISE_MAX_MESSAGE);
        if len < NOISE_TAG_LEN {
            return Err(ProtocolError::DecryptFailed);
        }
        let nonce = transport
            .recv
            .next_nonce()
            .map_err(|_| ProtocolError::DecryptFailed)?;
        let plain = transport
            .recv
            .key
            .open_in_place(nonce, ring::aead::Aad::empty(), &mut buf[read..read + len])
            .map_err(|_| ProtocolError::DecryptFailed)?
            .len();
        if read != written {
            buf.copy_within(read..read + plain, written);
        }
        read += len;
        written += plain;
        if read == total {
            break;
        }
    }
    buf.truncate(written);
    let body = buf.freeze();
    if recycled {
        transport.recyclers().opened.keep(&body);
    }
    Ok(body)
}

/// [`decrypt_chunks`] for a frame of one message whose buffer is shared
/// (a slice of the driver's read, the usual small message): its
/// ciphertext copied into a buffer of the plaintext's length, opened there
/// with the tag read beside it. A buffer of exactly its length becomes a
/// `Bytes` as it is; the copy of the whole frame, tag included, and
/// truncated after opening, cost `bytes` a shared header (an allocation
/// and a free more per message).
fn open_one_copied(transport: &mut NoiseTransport, frame: &[u8]) -> Result<Bytes, ProtocolError> {
    let plain_len = frame
        .len()
        .checked_sub(NOISE_TAG_LEN)
        .ok_or(ProtocolError::DecryptFailed)?;
    let tag =
        ring::aead::Tag::try_from(&frame[plain_len..]).map_err(|_| ProtocolError::DecryptFailed)?;
    let nonce = transport
        .recv
        .next_nonce()
        .map_err(|_| ProtocolError::DecryptFailed)?;
    let mut plain = frame[..plain_len].to_vec();
    transport
        .recv
        .key
        .open_in_place_separate_tag(nonce, ring::aead::Aad::empty(), tag, &mut plain, 0..)
        .map_err(|_| ProtocolError::DecryptFailed)?;
    Ok(Bytes::from(plain))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same keys as `t`, both nonces back at 0: a second receiver (or
    /// sender) for the same stream.
    fn fresh_copy(t: &NoiseTransport) -> NoiseTransport {
        NoiseTransport {
            send: CipherState {
                key: t.send.key.clone(),
                n: 0,
            },
            recv: CipherState {
                key: t.recv.key.clone(),
                n: 0,
            },
            recyclers: None,
        }
    }

    /// A finished XX handshake between two fixed keys and seeds: the same
    /// arguments give the same transport keys every time.
    /// Both ends of a finished handshake, as transports.
    fn transports() -> (NoiseTransport, NoiseTransport) {
        let (i, r) = handshake();
        let finished = |state| NoiseTransport::from_handshake(state).expect("finished");
        (finished(i), finished(r))
    }

    fn handshake() -> (snow::HandshakeState, snow::HandshakeState) {
        const FIRST: [u8; 32] = [1; 32];
        const SECOND: [u8; 32] = [2; 32];
        let build = |secret: &'static [u8; 32], seed: [u8; 32]| {
            snow::Builder::with_resolver(params(), Box::new(SeededResolver::new(seed)))
                .local_private_key(secret)
                .and_then(|b| b.prologue(b"ringmesh test"))
                .expect("builder")
        };
        let mut initiator = build(&FIRST, [3; 32]).build_initiator().expect("initiator");
        let mut responder = build(&SECOND, [4; 32])
            .build_responder()
            .expect("responder");
        let mut message = vec![0u8; NOISE_MAX_MESSAGE];
        let mut payload = vec![0u8; NOISE_MAX_MESSAGE];
        let (mut from, mut to) = (&mut initiator, &mut responder);
        while !(from.is_handshake_finished() && to.is_handshake_finished()) {
            let len = from.write_message(&[], &mut message).expect("write");
            to.read_message(&message[..len], &mut payload)
                .expect("read");
            core::mem::swap(&mut from, &mut to);
        }
        (initiator, responder)
    }

    /// What `snow` makes of `body`, chunked as [`encrypt_chunks`] chunks.
    fn snow_encrypt(transport: &mut snow::TransportState, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut message = vec![0u8; NOISE_MAX_MESSAGE];
        let chunks: Vec<&[u8]> = if body.is_empty() {
            vec![&[]]
        } else {
            body.chunks(NOISE_MAX_CHUNK).collect()
        };
        for chunk in chunks {
            let len = transport.write_message(chunk, &mut message).expect("seal");
            out.extend_from_slice(&message[..len]);
        }
        out
    }

    fn snow_decrypt(transport: &mut snow::TransportState, frame: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut message = vec![0u8; NOISE_MAX_MESSAGE];
        for chunk in frame.chunks(NOISE_MAX_MESSAGE) {
            let len = transport.read_message(chunk, &mut message).expect("open");
            out.extend_from_slice(&message[..len]);
        }
        out
    }

    /// Bodies of several sizes, one or more chunks, in sequence (so that
    /// the nonces move on as `snow`'s do).
    fn bodies() -> Vec<Vec<u8>> {
        [
            0,
            1,
            1000,
            NOISE_MAX_CHUNK,
            NOISE_MAX_CHUNK + 1,
            150_000,
            17,
        ]
        .into_iter()
        .map(|len| (0..len).map(|i| (i * 7 + len) as u8).collect())
        .collect()
    }

    #[test]
    fn in_place_transport_makes_the_bytes_snow_makes_and_reads_snows() {
        let (ours_i, ours_r) = handshake();
        let (snow_i, snow_r) = handshake();
        let mut ours_i = NoiseTransport::from_handshake(ours_i).expect("finished");
        let mut ours_r = NoiseTransport::from_handshake(ours_r).expect("finished");
        let mut snow_i = snow_i.into_transport_mode().expect("finished");
        let mut snow_r = snow_r.into_transport_mode().expect("finished");
        for body in bodies() {
            // Initiator to responder: ours seals what snow seals, and
            // snow's responder reads ours.
            let mut frame = BytesMut::new();
            encrypt_chunks(&mut ours_i, &body, &mut frame).expect("seal");
            assert_eq!(encrypted_len(body.len()), frame.len());
            assert_eq!(&frame[..], &snow_encrypt(&mut snow_i, &body)[..]);
            assert_eq!(snow_decrypt(&mut snow_r, &frame), body);
            // Responder to initiator: ours opens what snow sealed, from a
            // shared buffer and from one it owns alone.
            let sealed = Bytes::from(snow_encrypt(&mut snow_r, &body));
            let mut ours = BytesMut::new();
            encrypt_chunks(&mut ours_r, &body, &mut ours).expect("seal");
            assert_eq!(&ours[..], &sealed[..]);
            let held = sealed.clone();
            let opened = decrypt_chunks(&mut ours_i, sealed).expect("open");
            assert_eq!(&opened[..], &body[..]);
            drop(held);
        }
    }

    #[test]
    fn a_frame_that_is_cut_short_or_altered_does_not_open() {
        let (mut i, r) = transports();
        let mut frame = BytesMut::new();
        encrypt_chunks(&mut i, &[5; 100_000], &mut frame).expect("seal");
        let frame = frame.freeze();
        // Empty, shorter than a tag, a last chunk shorter than a tag, one
        // flipped bit.
        let mut flipped = frame.to_vec();
        flipped[70_000] ^= 1;
        for bad in [
            Bytes::new(),
            frame.slice(..10),
            frame.slice(..NOISE_MAX_MESSAGE + 5),
            Bytes::from(flipped),
        ] {
            let mut r = fresh_copy(&r);
            assert!(matches!(
                decrypt_chunks(&mut r, bad),
                Err(ProtocolError::DecryptFailed)
            ));
        }
    }

    #[test]
    fn sealing_in_place_makes_the_bytes_encrypt_chunks_makes() {
        let (mut chunks, _) = transports();
        let mut in_place = fresh_copy(&chunks);
        for len in [
            0,
            1,
            64,
            1_000,
            NOISE_MAX_CHUNK,
            NOISE_MAX_CHUNK + 1,
            65_540,
            2 * NOISE_MAX_CHUNK,
            2 * NOISE_MAX_CHUNK + 7,
            150_000,
        ] {
            let body: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
            let mut expected = BytesMut::from(&b"head"[..]);
            encrypt_chunks(&mut chunks, &body, &mut expected).expect("seal");
            let mut sealed = BytesMut::from(&b"head"[..]);
            sealed.extend_from_slice(&body);
            seal_from(&mut in_place, &mut sealed, 4).expect("seal");
            assert_eq!(sealed, expected, "a body of {len} bytes");
        }
    }

    /// Seals `body` as `encode_prepared` does: into the transport's frame
    /// buffer, behind a 4-byte head.
    fn seal_frame(t: &mut NoiseTransport, body: &[u8]) -> Bytes {
        let mut out = t.frame_buffer(4 + encrypted_len(body.len()));
        out.extend_from_slice(b"head");
        out.extend_from_slice(body);
        seal_from(t, &mut out, 4).expect("seal");
        t.sealed_frame(out)
    }

    /// What `body` seals to, head included, on a transport without
    /// recycled buffers.
    fn sealed_fresh(t: &mut NoiseTransport, body: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::from(&b"head"[..]);
        encrypt_chunks(t, body, &mut out).expect("seal");
        out.to_vec()
    }

    #[test]
    fn a_recycled_sealing_buffer_holds_only_the_new_frame() {
        let (mut ours, _) = transports();
        let mut fresh = fresh_copy(&ours);
        let first = seal_frame(&mut ours, &[0xAA; 100_000]);
        assert_eq!(&first[..], &sealed_fresh(&mut fresh, &[0xAA; 100_000])[..]);
        let first_at = first.as_ptr();
        drop(first);
        // Shorter: in the first frame's buffer, with none of its bytes
        // left over (the frame is exactly what a fresh buffer gets).
        let second = seal_frame(&mut ours, &[0x55; 90_000]);
        assert_eq!(second.as_ptr(), first_at, "the dropped buffer is reused");
        assert_eq!(&second[..], &sealed_fresh(&mut fresh, &[0x55; 90_000])[..]);
        // While the second is held (not written yet), the next frame gets
        // a buffer of its own and the second is left as it was.
        let copy = second.to_vec();
        let third = seal_frame(&mut ours, &[0x33; 90_000]);
        assert_ne!(third.as_ptr(), second.as_ptr());
        assert_eq!(&third[..], &sealed_fresh(&mut fresh, &[0x33; 90_000])[..]);
        assert_eq!(&second[..], &copy[..]);
        drop((second, third));
        // Larger than every kept buffer: a new one, the right bytes.
        let body: Vec<u8> = (0..300_000).map(|i| (i % 251) as u8).collect();
        let fourth = seal_frame(&mut ours, &body);
        assert_eq!(&fourth[..], &sealed_fresh(&mut fresh, &body)[..]);
        // Much smaller than the kept buffers (still recycled-size): not
        // in one of them, which it would pin.
        drop(fourth);
        let fifth = seal_frame(&mut ours, &[7; RECYCLE_MIN]);
        assert_eq!(&fifth[..], &sealed_fresh(&mut fresh, &[7; RECYCLE_MIN])[..]);
        assert!(ours.recyclers().sealed.kept.len() <= RECYCLED);
    }

    #[test]
    fn the_largest_frames_are_never_kept_and_kept_bytes_are_capped() {
        let (mut sender, mut receiver) = transports();
        let kept = |t: &mut NoiseTransport| {
            let recyclers = t.recyclers();
            let sealed: usize = recyclers.sealed.kept.iter().map(Bytes::len).sum();
            let opened: usize = recyclers.opened.kept.iter().map(Bytes::len).sum();
            (sealed, opened)
        };
        // A peer's frames of 1 MiB, opened from a shared read and dropped
        // by the application: none of their buffers stays with the session.
        for n in 0..4u8 {
            let frame = seal_frame(&mut sender, &vec![n; 1 << 20]);
            let read = frame.clone();
            let opened = decrypt_chunks(&mut receiver, frame.slice(4..)).expect("open");
            assert_eq!(opened.len(), 1 << 20);
            drop((read, opened));
        }
        assert_eq!(kept(&mut sender), (0, 0));
        assert_eq!(kept(&mut receiver), (0, 0));
        // Many frames just under the size cap, all held at once: the
        // session watches at most RECYCLED_BYTES of them a direction.
        let mut held = Vec::new();
        for n in 0..12u8 {
            let frame = seal_frame(&mut sender, &vec![n; RECYCLE_MAX - 4096]);
            let read = frame.clone();
            held.push(decrypt_chunks(&mut receiver, frame.slice(4..)).expect("open"));
            held.push(read);
            let (sealed, _) = kept(&mut sender);
            let (_, opened) = kept(&mut receiver);
            assert!(sealed <= RECYCLED_BYTES && opened <= RECYCLED_BYTES);
            assert!(sealed > 0 && opened > 0, "frames under the cap are kept");
        }
    }

    #[test]
    fn small_frames_keep_no_recycled_buffers() {
        let (mut sender, mut receiver) = transports();
        for len in [0, 64, RECYCLE_MIN - 100] {
            let frame = seal_frame(&mut sender, &vec![1; len]);
            let read = frame.clone();
            let opened = decrypt_chunks(&mut receiver, frame.slice(4..)).expect("open");
            assert_eq!(opened.len(), len);
            drop(read);
        }
        assert!(sender.recyclers.is_none() && receiver.recyclers.is_none());
    }

    #[test]
    fn a_recycled_opening_buffer_never_overwrites_a_held_body() {
        let (mut sender, mut receiver) = transports();
        let bodies: Vec<Vec<u8>> = [100_000, 100_000, 90_000, 120_000, 200_000, 95_000]
            .iter()
            .enumerate()
            .map(|(n, &len)| (0..len).map(|i| (i * 3 + n * 101) as u8).collect())
            .collect();
        let mut held = Vec::new();
        let mut addresses = Vec::new();
        for (n, body) in bodies.iter().enumerate() {
            let mut frame = BytesMut::new();
            encrypt_chunks(&mut sender, body, &mut frame).expect("seal");
            // Shared, as a slice of a driver's read is.
            let frame = frame.freeze();
            let read = frame.clone();
            let opened = decrypt_chunks(&mut receiver, frame).expect("open");
            drop(read);
            assert_eq!(&opened[..], &body[..], "body {n}");
            addresses.push(opened.as_ptr());
            // The application keeps every other payload (a slice of the
            // body), and drops the rest.
            if n % 2 == 0 {
                held.push((n, opened.slice(10..)));
            }
        }
        for (n, payload) in &held {
            assert_eq!(&payload[..], &bodies[*n][10..], "held body {n}");
        }
        // Body 1 was dropped at once: body 2 (shorter) opened in its buffer.
        assert_eq!(addresses[2], addresses[1]);
        assert!(receiver.recyclers().opened.kept.len() <= RECYCLED);
    }

    #[test]
    fn a_small_frame_in_a_shared_buffer_altered_does_not_open() {
        let (mut i, r) = transports();
        let mut frame = BytesMut::new();
        encrypt_chunks(&mut i, &[5; 100], &mut frame).expect("seal");
        let frame = frame.freeze();
        // A bit flipped in the ciphertext, one in the tag; each frame
        // held twice, as a slice of a driver's read is.
        for at in [40, 110] {
            let mut flipped = frame.to_vec();
            flipped[at] ^= 1;
            let flipped = Bytes::from(flipped);
            let held = flipped.clone();
            let mut r = fresh_copy(&r);
            assert!(matches!(
                decrypt_chunks(&mut r, flipped),
                Err(ProtocolError::DecryptFailed)
            ));
            drop(held);
        }
        // Unaltered, it opens.
        let mut r = r;
        let held = frame.clone();
        assert_eq!(
            &decrypt_chunks(&mut r, frame).expect("open")[..],
            &[5; 100][..]
        );
        drop(held);
    }

    #[test]
    fn the_last_nonce_is_never_used() {
        let (mut i, _) = transports();
        i.send.n = u64::MAX - 1;
        let mut out = BytesMut::new();
        encrypt_chunks(&mut i, b"last", &mut out).expect("nonce 2^64 - 2 is fine");
        assert!(encrypt_chunks(&mut i, b"one more", &mut out).is_err());
    }

    #[test]
    fn an_unfinished_handshake_has_no_transport() {
        let state = snow::Builder::with_resolver(params(), Box::new(SeededResolver::new([3; 32])))
            .local_private_key(&[1; 32])
            .expect("key")
            .build_initiator()
            .expect("initiator");
        assert!(NoiseTransport::from_handshake(state).is_none());
    }
}
