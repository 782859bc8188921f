//! Sessions: the per-connection handshake and the framing, encryption and
//! compression of everything after it.
//!
//! A [`Session`] is itself sans-IO: bytes in, [`SessionOutput`]s out. The
//! node owns one per connection and decides what to do with a session that
//! is established (check the expected id, refuse self-connections).
//!
//! ```text
//! plaintext:  -> preamble, Hello frame          <- preamble, Hello frame
//! noise XX:   -> preamble, [e]                  <- preamble
//!             <- [e, ee, s, es, payload]        -> [s, se, payload]
//! ```
//!
//! In both modes each side sends its preamble at once, and a side whose peer
//! announces another version or security mode closes with a specific reason:
//! a Noise node never continues in plaintext.

pub(crate) mod config;
mod noise;

pub use config::SessionConfig;

pub(crate) use crate::wire::Grant;
pub(crate) use noise::NOISE_PATTERN;

use core::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};

use crate::config::{MIN_MAX_FRAME_LEN, Security};
use crate::identity::Identity;
use crate::rng::Rng;
use crate::wire::{
    Capabilities, DecodeError, FLAG_COMPRESSED, Hello, LENGTH_PREFIX_LEN, MAX_LISTEN_ADDRS,
    Message, PREAMBLE_LEN, PROTOCOL_VERSION, Preamble, decode_body, encode_body, encode_frame,
    frame_header, put_frame_header, split_payload,
};
use crate::wire::{FrameReader, Next, app_frame_len};
use crate::{Config, Direction, NodeId, ProtocolError};

/// What every session of a node shares: built once in `Node::new`.
pub(crate) struct SessionContext {
    pub(crate) security: Security,
    pub(crate) hello: Hello,
    /// Our signed handshake payload (Noise mode only).
    noise_payload: Bytes,
    /// Our preamble and `Hello` frame, the same on every connection
    /// (plaintext mode only).
    plaintext_opening: Bytes,
    noise_static_secret: [u8; 32],
    pub(crate) max_frame_len: u32,
    compression_threshold: usize,
    preamble: [u8; PREAMBLE_LEN],
}

impl SessionContext {
    /// `run_nonce` names this run of the node in its `Hello`
    /// ([`Hello::run_nonce`]).
    pub(crate) fn new(config: &Config, identity: &Identity, run_nonce: u64) -> Self {
        let mut capabilities = if config.session.compression {
            Capabilities::LZ4
        } else {
            Capabilities::NONE
        };
        if config.chord.is_some() {
            capabilities = capabilities
                .union(Capabilities::CHORD)
                .union(Capabilities::ROUTE_ACK);
        }
        if config.dht.is_some() {
            capabilities = capabilities.union(Capabilities::DHT);
        }
        if config.sync.is_some() {
            capabilities = capabilities.union(Capabilities::SYNC);
        }
        if config.blobs.is_some() {
            capabilities = capabilities.union(Capabilities::BLOBS);
        }
        if config.reach.is_some() {
            capabilities = capabilities.union(Capabilities::REACH);
        }
        if config.relay.is_some() {
            capabilities = capabilities.union(Capabilities::RELAY);
        }
        let hello = Hello {
            version: PROTOCOL_VERSION,
            identity: identity.public_key(),
            run_nonce,
            capabilities,
            max_frame_len: config.session.max_frame_len,
            listen_addrs: config.listen_addrs.clone(),
        };
        let preamble = Preamble::new(PROTOCOL_VERSION, config.security).to_bytes();
        let mut context = SessionContext {
            security: config.security,
            hello,
            noise_payload: Bytes::new(),
            plaintext_opening: Bytes::new(),
            noise_static_secret: identity.noise_static_secret(),
            max_frame_len: config.session.max_frame_len,
            compression_threshold: config.session.compression_threshold,
            preamble,
        };
        context.seal(identity);
        context
    }

    /// Prepares what every handshake sends of `hello`: the signed Noise
    /// payload, or the plaintext opening.
    fn seal(&mut self, identity: &Identity) {
        match self.security {
            Security::Noise => self.noise_payload = noise::signed_payload(identity, &self.hello),
            Security::Plaintext => {
                let mut out = BytesMut::from(&self.preamble[..]);
                encode_frame(&Message::Hello(self.hello.clone()), None, &mut out);
                self.plaintext_opening = out.freeze();
            }
        }
    }

    /// Adds `addr` to what this node's `Hello` announces, for the sessions
    /// opened from now on. Returns false, changing nothing, when it is
    /// already announced or the `Hello` holds [`MAX_LISTEN_ADDRS`] already.
    pub(crate) fn announce(&mut self, identity: &Identity, addr: SocketAddr) -> bool {
        let addrs = &mut self.hello.listen_addrs;
        if addrs.contains(&addr) || addrs.len() >= MAX_LISTEN_ADDRS {
            return false;
        }
        addrs.push(addr);
        self.seal(identity);
        true
    }
}

/// What a session produced from its input.
#[derive(Debug)]
pub(crate) enum SessionOutput {
    /// Bytes for the wire (handshake messages).
    Send(Bytes),
    /// The handshake completed.
    Established(Box<Established>),
    /// A message arrived on the established session.
    Message { message: Message, compressed: bool },
}

/// What one [`Session::on_bytes`] call produced, in order: on the caller's
/// stack, not the heap, for the usual one or two (a read is most often one
/// frame; a `Hello` gives `Established`, a Noise handshake message a
/// `Send` too). A `Vec` made per read cost a `malloc` and a `free` per
/// frame; one kept per connection or node would hold its room in every
/// one of a simulation's million idle nodes.
pub(crate) type SessionOutputs = smallvec::SmallVec<[SessionOutput; 2]>;

/// Who the peer turned out to be.
#[derive(Debug)]
pub(crate) struct Established {
    pub(crate) peer: NodeId,
    pub(crate) hello: Hello,
    pub(crate) capabilities: Capabilities,
}

/// Why an outgoing message was not framed. The session is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EncodeError {
    NotEstablished,
    /// The frame, or the message once decompressed (`len` is then the
    /// decompressed length), would exceed the peer's `max_frame_len`.
    TooLarge {
        len: usize,
        max: u32,
    },
    Crypto,
}

/// Why [`Session::on_bytes`] stopped.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer broke the protocol: the connection must close.
    Protocol(ProtocolError),
    /// The receive budget has no room for what this read needs (a partial
    /// frame's buffer, or, with `decompressing`, a payload to decompress:
    /// the frame is kept in the session). `rest` is the input not consumed
    /// yet; once room is made, call `on_bytes` again with it.
    OverBudget { rest: Bytes, decompressing: bool },
}

impl<E: Into<ProtocolError>> From<E> for ReadError {
    fn from(error: E) -> Self {
        ReadError::Protocol(error.into())
    }
}

enum State {
    /// The peer's preamble is not complete yet (what came of it is in
    /// [`Pending::preamble`]): the handshake has not read a frame.
    Opening(Handshake),
    Handshake(Handshake),
    Established(Transport),
}

enum Handshake {
    Plaintext,
    Noise(Box<snow::HandshakeState>),
}

enum Transport {
    Plaintext,
    Noise(Box<noise::NoiseTransport>),
}

/// One connection's protocol state, from preamble to close.
pub(crate) struct Session {
    state: State,
    frames: FrameReader,
    /// The cap on the frames `frames` reads: the handshake's until the
    /// session is established, then the node's (kept here, where it packs
    /// with `peer_max_frame_len`, rather than in the reader: a session is
    /// 48 bytes, and a node holds one per connection).
    max_frame_len: u32,
    /// What waits for receive budget, and a preamble that came in pieces;
    /// boxed, as both are rare and a node holds many sessions (the
    /// preamble inline took 7 bytes of every session, and a connection
    /// 120 bytes where it is now 112, the allocator's 112-byte class).
    pending: Option<Box<Pending>>,
    /// Features both sides offered; known once established.
    pub(crate) capabilities: Capabilities,
    /// The peer's frame cap; known once established.
    peer_max_frame_len: u32,
}

/// What a session keeps while it waits for receive budget, or for the
/// rest of the peer's preamble.
#[derive(Default)]
struct Pending {
    /// A decrypted frame body waiting for budget to decompress into.
    body: Option<Bytes>,
    /// Input that arrived while `body` waited (see
    /// [`Session::keep_input`]).
    input: Bytes,
    /// The peer's preamble as far as it came, while the session is
    /// [`State::Opening`]; not counted by [`Session::held`] (it was not
    /// when it lived in the session itself).
    preamble: PartialPreamble,
}

/// The first bytes of a preamble (see [`Pending::preamble`]).
#[derive(Default, Clone, Copy)]
struct PartialPreamble {
    bytes: [u8; PREAMBLE_LEN],
    /// Bytes received so far (at most [`PREAMBLE_LEN`]).
    len: u8,
}

/// A frame's error as the read returns it: stopped for budget while
/// decompressing, the read keeps `rest` (the input after that frame) for
/// the next call.
fn keeping(error: ReadError, rest: Bytes) -> ReadError {
    match error {
        ReadError::OverBudget { .. } => ReadError::OverBudget {
            rest,
            decompressing: true,
        },
        error => error,
    }
}

/// Cap on frames before the session is established: a handshake message is
/// at most one Noise message, and an unauthenticated peer must not make us
/// buffer more.
const HANDSHAKE_MAX_FRAME_LEN: u32 = noise::NOISE_MAX_MESSAGE as u32;

impl Session {
    /// Opens a session on a fresh connection; returns it and the bytes to
    /// send right away.
    pub(crate) fn start(
        ctx: &SessionContext,
        direction: Direction,
        rng: &mut Rng,
    ) -> Result<(Session, Bytes), ProtocolError> {
        let (handshake, opening) = match ctx.security {
            Security::Plaintext => (Handshake::Plaintext, ctx.plaintext_opening.clone()),
            Security::Noise => {
                let mut seed = [0u8; 32];
                rng.fill(&mut seed);
                let builder = snow::Builder::with_resolver(
                    noise::params(),
                    Box::new(noise::SeededResolver::new(seed)),
                )
                .local_private_key(&ctx.noise_static_secret)
                .and_then(|b| b.prologue(&ctx.preamble))
                .map_err(|_| ProtocolError::HandshakeFailed)?;
                let mut state = match direction {
                    Direction::Outbound => builder.build_initiator(),
                    Direction::Inbound => builder.build_responder(),
                }
                .map_err(|_| ProtocolError::HandshakeFailed)?;
                let mut out = BytesMut::with_capacity(128);
                out.put_slice(&ctx.preamble);
                if direction == Direction::Outbound {
                    write_handshake(&mut state, &[], &mut out)?;
                }
                (Handshake::Noise(Box::new(state)), out.freeze())
            }
        };
        let session = Session {
            state: State::Opening(handshake),
            frames: FrameReader::new(),
            max_frame_len: HANDSHAKE_MAX_FRAME_LEN.min(ctx.max_frame_len),
            pending: None,
            capabilities: Capabilities::NONE,
            peer_max_frame_len: 0,
        };
        Ok((session, opening))
    }

    /// Bytes this session holds between reads: its partial frame's buffer,
    /// and a frame body and input waiting for budget.
    pub(crate) fn held(&self) -> usize {
        self.frames.held()
            + self
                .pending
                .as_ref()
                .map_or(0, |p| p.body.as_ref().map_or(0, Bytes::len) + p.input.len())
    }

    /// Whether a frame waits for budget to be decompressed.
    pub(crate) fn is_waiting(&self) -> bool {
        self.pending.as_ref().is_some_and(|p| p.body.is_some())
    }

    /// Keeps `rest` (input not consumed when the read stopped for budget)
    /// to be read first at the next [`Session::on_bytes`].
    pub(crate) fn keep_input(&mut self, rest: Bytes) {
        if rest.is_empty() && self.pending.is_none() {
            return;
        }
        self.pending.get_or_insert_default().input = rest;
    }

    /// Consumes bytes from the stream, asking `grant` before it holds a
    /// partial frame or decompresses a payload. On a protocol error the
    /// connection must close; outputs pushed before any error are still
    /// valid.
    pub(crate) fn on_bytes(
        &mut self,
        ctx: &SessionContext,
        mut input: Bytes,
        grant: &mut dyn Grant,
        out: &mut SessionOutputs,
    ) -> Result<(), ReadError> {
        // The rare arms (input kept while waiting for budget, the preamble)
        // live out of line: this is the path of every read, and its code's
        // footprint in the instruction cache counts in a round trip.
        let mut preamble = PartialPreamble::default();
        if let Some(pending) = self.pending.take() {
            (input, preamble) = self.resume_pending(ctx, *pending, input, grant, out)?;
        }
        if matches!(self.state, State::Opening(_))
            && !self.read_preamble(ctx, &mut input, preamble)?
        {
            return Ok(());
        }
        loop {
            let next = self
                .frames
                .next_frame(&mut input, self.max_frame_len, grant)
                .map_err(|e| ProtocolError::FrameTooLarge {
                    len: e.len,
                    max: e.max,
                })?;
            match next {
                Next::Frame(frame) => {
                    if let Err(error) = self.on_frame(ctx, frame, grant, out) {
                        return Err(keeping(error, input));
                    }
                }
                Next::NeedMore => return Ok(()),
                Next::OverBudget => {
                    return Err(ReadError::OverBudget {
                        rest: input,
                        decompressing: false,
                    });
                }
            }
        }
    }

    /// What waited for receive budget, taken up again before `input`: a
    /// frame body first, then the input kept, joined to the new one.
    /// Returns the input to read on.
    #[cold]
    #[inline(never)]
    fn resume_pending(
        &mut self,
        ctx: &SessionContext,
        pending: Pending,
        input: Bytes,
        grant: &mut dyn Grant,
        out: &mut SessionOutputs,
    ) -> Result<(Bytes, PartialPreamble), ReadError> {
        let Pending {
            body,
            input: kept,
            preamble,
        } = pending;
        let input = if kept.is_empty() {
            input
        } else if input.is_empty() {
            kept
        } else {
            let mut joined = BytesMut::with_capacity(kept.len() + input.len());
            joined.extend_from_slice(&kept);
            joined.extend_from_slice(&input);
            joined.freeze()
        };
        if let Some(body) = body
            && let Err(error) = self.on_body(ctx, body, grant, out)
        {
            return Err(keeping(error, input));
        }
        Ok((input, preamble))
    }

    /// Takes what `input` holds of the peer's preamble (`preamble`: what
    /// came of it before). Returns whether it is whole: then the session
    /// reads handshake frames from now on, checked after, as before (a
    /// session that refused it reads no more preamble, and its connection
    /// closes); else what came is kept for the next read.
    #[cold]
    #[inline(never)]
    fn read_preamble(
        &mut self,
        ctx: &SessionContext,
        input: &mut Bytes,
        mut preamble: PartialPreamble,
    ) -> Result<bool, ReadError> {
        let have = usize::from(preamble.len);
        let take = (PREAMBLE_LEN - have).min(input.len());
        preamble.bytes[have..have + take].copy_from_slice(&input.split_to(take));
        let have = have + take;
        // At most PREAMBLE_LEN (6): fits a byte.
        preamble.len = have as u8;
        if have < PREAMBLE_LEN {
            if have > 0 {
                self.pending.get_or_insert_default().preamble = preamble;
            }
            return Ok(false);
        }
        let State::Opening(handshake) =
            core::mem::replace(&mut self.state, State::Handshake(Handshake::Plaintext))
        else {
            unreachable!("the caller checked the state")
        };
        self.state = State::Handshake(handshake);
        check_preamble(ctx, preamble.bytes)?;
        Ok(true)
    }

    /// An established session's frame body, decrypted: decompressed (within
    /// the budget) and decoded. Over budget, the body is kept for the next
    /// call.
    fn on_body(
        &mut self,
        ctx: &SessionContext,
        body: Bytes,
        grant: &mut dyn Grant,
        out: &mut SessionOutputs,
    ) -> Result<(), ReadError> {
        // Only what was negotiated: a peer that did not offer LZ4 must not
        // send it either.
        let lz4 = self.capabilities.contains(Capabilities::LZ4);
        // A compressed body: flags, tag, the decompressed length (u32 LE),
        // the block. The payload it claims is asked of the budget before
        // it is allocated (`decode_body` refuses a claim over the cap, or
        // one LZ4 cannot make from the block, before allocating).
        if lz4
            && body.len() >= 6
            && body[0] & FLAG_COMPRESSED != 0
            && let plain_len = u32::from_le_bytes([body[2], body[3], body[4], body[5]])
            && plain_len <= ctx.max_frame_len
            && !grant.try_grow(plain_len as usize)
        {
            return Err(self.wait_for_budget(body));
        }
        // Matched, not unwrapped with `?` into locals first: every move of
        // a `Message` (176 bytes) is a `memcpy` call.
        match decode_body(body, lz4, ctx.max_frame_len) {
            Ok((Message::Hello(_), _)) => Err(unexpected_hello()),
            Ok((message, compressed)) => {
                out.push(SessionOutput::Message {
                    message,
                    compressed,
                });
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Keeps a compressed body until the budget has room to decompress it.
    #[cold]
    #[inline(never)]
    fn wait_for_budget(&mut self, body: Bytes) -> ReadError {
        self.pending.get_or_insert_default().body = Some(body);
        ReadError::OverBudget {
            rest: Bytes::new(),
            decompressing: true,
        }
    }

    fn on_frame(
        &mut self,
        ctx: &SessionContext,
        frame: Bytes,
        grant: &mut dyn Grant,
        out: &mut SessionOutputs,
    ) -> Result<(), ReadError> {
        match &mut self.state {
            State::Opening(_) => unreachable!("frames are read once the preamble is complete"),
            State::Established(transport) => {
                let body = match transport {
                    Transport::Plaintext => frame,
                    Transport::Noise(t) => noise::decrypt_chunks(t, frame)?,
                };
                self.on_body(ctx, body, grant, out)
            }
            State::Handshake(Handshake::Plaintext) => {
                let (message, _) = decode_body(frame, false, ctx.max_frame_len)?;
                let Message::Hello(hello) = message else {
                    return Err(ProtocolError::UnexpectedMessage(message.name()).into());
                };
                noise::check_version(hello.version)?;
                let peer = hello.identity.node_id();
                Ok(self.establish(ctx, Transport::Plaintext, peer, hello, out)?)
            }
            State::Handshake(Handshake::Noise(state)) => {
                let mut payload = vec![0u8; frame.len()];
                let len = state
                    .read_message(&frame, &mut payload)
                    .map_err(|_| ProtocolError::HandshakeFailed)?;
                payload.truncate(len);
                if !state.is_handshake_finished() && !state.is_initiator() {
                    // Responder read `-> e`; answer `<- e, ee, s, es`.
                    if !payload.is_empty() {
                        return Err(ProtocolError::HandshakeFailed.into());
                    }
                    let mut reply = BytesMut::new();
                    write_handshake(state, &ctx.noise_payload, &mut reply)?;
                    out.push(SessionOutput::Send(reply.freeze()));
                    return Ok(());
                }
                let (peer, hello) =
                    noise::verify_payload(Bytes::from(payload), state.get_remote_static())?;
                if !state.is_handshake_finished() {
                    // Initiator read `<- e, ee, s, es`; finish with `-> s, se`.
                    let mut reply = BytesMut::new();
                    write_handshake(state, &ctx.noise_payload, &mut reply)?;
                    out.push(SessionOutput::Send(reply.freeze()));
                }
                let State::Handshake(Handshake::Noise(state)) =
                    core::mem::replace(&mut self.state, State::Handshake(Handshake::Plaintext))
                else {
                    unreachable!("matched above")
                };
                let transport = noise::NoiseTransport::from_handshake(*state)
                    .ok_or(ProtocolError::HandshakeFailed)?;
                Ok(self.establish(ctx, Transport::Noise(Box::new(transport)), peer, hello, out)?)
            }
        }
    }

    fn establish(
        &mut self,
        ctx: &SessionContext,
        transport: Transport,
        peer: NodeId,
        hello: Hello,
        out: &mut SessionOutputs,
    ) -> Result<(), ProtocolError> {
        if hello.max_frame_len < MIN_MAX_FRAME_LEN {
            // A peer that accepts almost nothing could not even be told
            // goodbye; refuse it now rather than fail every send later.
            return Err(DecodeError::OutOfRange {
                field: "max_frame_len",
                value: u64::from(hello.max_frame_len),
            }
            .into());
        }
        self.state = State::Established(transport);
        self.max_frame_len = ctx.max_frame_len;
        self.capabilities = ctx.hello.capabilities.intersect(hello.capabilities);
        self.peer_max_frame_len = hello.max_frame_len;
        out.push(SessionOutput::Established(Box::new(Established {
            peer,
            capabilities: self.capabilities,
            hello,
        })));
        Ok(())
    }

    /// The largest encoded message (tag and flags not counted) this session
    /// can send whether or not it compresses: the peer's cap less the
    /// frame's overhead. `None` before the handshake completed.
    pub(crate) fn max_message_len(&self) -> Option<usize> {
        let State::Established(transport) = &self.state else {
            return None;
        };
        let cap = self.peer_max_frame_len as usize;
        let body = match transport {
            Transport::Plaintext => cap,
            // Each Noise chunk of up to NOISE_MAX_MESSAGE bytes carries a
            // tag: at most this much plaintext fits in `cap`.
            Transport::Noise(_) => {
                let chunks = cap.div_ceil(noise::NOISE_MAX_MESSAGE).max(1);
                cap.saturating_sub(chunks * noise::NOISE_TAG_LEN)
            }
        };
        Some(body.saturating_sub(2))
    }

    /// Frames (compressing and encrypting as negotiated) a message for an
    /// established session; returns the wire bytes and whether the body was
    /// compressed. The encoding work is cached in `prepared`: the body is encoded (and compressed) once however many
    /// sessions send it; in plaintext mode the whole frame is built once and
    /// every session sends the same buffer.
    ///
    /// With `passthrough`, a plaintext frame that is not compressed and
    /// ends with an application payload of at least
    /// [`PAYLOAD_PASSTHROUGH_MIN`] bytes comes as its head and the payload
    /// itself ([`Encoded::tail`]), not copied: the same bytes on the wire.
    pub(crate) fn encode_prepared(
        &mut self,
        ctx: &SessionContext,
        prepared: &mut Prepared<'_>,
        passthrough: bool,
    ) -> Result<Encoded, EncodeError> {
        let State::Established(transport) = &mut self.state else {
            return Err(EncodeError::NotEstablished);
        };
        let compress = self
            .capabilities
            .contains(Capabilities::LZ4)
            .then_some(ctx.compression_threshold);
        let variant = usize::from(compress.is_some());
        if passthrough
            && compress.is_none()
            && matches!(transport, Transport::Plaintext)
            && let Some((head, tail)) = prepared.split()
        {
            let len = head.len() - LENGTH_PREFIX_LEN + tail.len();
            fits(len, self.peer_max_frame_len)?;
            return Ok(Encoded {
                bytes: head,
                tail: Some(tail),
                compressed: false,
            });
        }
        // An application message to this session only, over Noise: its
        // body is encoded straight into the frame it is sealed in, without
        // a plaintext frame first (an allocation, a copy and a free a
        // message; for a 64 KiB message, 16 page faults more often than
        // not). The bytes are those of the path below.
        if prepared.once
            && let Transport::Noise(t) = transport
            && let Some(frame_len) = app_frame_len(prepared.message)
            && compress.is_none_or(|threshold| frame_len - LENGTH_PREFIX_LEN - 2 < threshold)
        {
            let len = noise::encrypted_len(frame_len - LENGTH_PREFIX_LEN);
            fits(len, self.peer_max_frame_len)?;
            let mut out = t.frame_buffer(LENGTH_PREFIX_LEN + len);
            put_frame_header(&mut out, len as u32);
            encode_body(prepared.message, None, &mut out);
            noise::seal_from(t, &mut out, LENGTH_PREFIX_LEN).map_err(|_| EncodeError::Crypto)?;
            return Ok(Encoded {
                bytes: t.sealed_frame(out),
                tail: None,
                compressed: false,
            });
        }
        let (frame, compressed) = prepared.frame(variant, compress);
        let compressed = *compressed;
        let body = &frame[LENGTH_PREFIX_LEN..];
        if compressed {
            // The receiver checks the decompressed length against its cap
            // too: a message that compresses into a frame it accepts may
            // still be one it refuses (and closes the connection for).
            let plain = u32::from_le_bytes([body[2], body[3], body[4], body[5]]);
            fits(plain as usize, self.peer_max_frame_len)?;
        }
        match transport {
            Transport::Plaintext => {
                let len = body.len();
                fits(len, self.peer_max_frame_len)?;
                let bytes = prepared.hand_over(variant);
                Ok(Encoded {
                    bytes,
                    tail: None,
                    compressed,
                })
            }
            Transport::Noise(t) => {
                let len = noise::encrypted_len(body.len());
                fits(len, self.peer_max_frame_len)?;
                let mut out = t.frame_buffer(LENGTH_PREFIX_LEN + len);
                put_frame_header(&mut out, len as u32);
                noise::encrypt_chunks(t, body, &mut out).map_err(|_| EncodeError::Crypto)?;
                Ok(Encoded {
                    bytes: t.sealed_frame(out),
                    tail: None,
                    compressed,
                })
            }
        }
    }
}

/// `Ok` if a frame body of `len` bytes is within the peer's cap `max`.
fn fits(len: usize, max: u32) -> Result<(), EncodeError> {
    if len > max as usize {
        return Err(EncodeError::TooLarge { len, max });
    }
    Ok(())
}

/// The smallest application payload that
/// [`Session::encode_prepared`] hands over as its own buffer instead of
/// copying it into the frame: below it, a copy costs less than the extra
/// buffer the transport writes.
pub(crate) const PAYLOAD_PASSTHROUGH_MIN: usize = 8 * 1024;

/// A frame encoded for one session.
pub(crate) struct Encoded {
    /// The frame's bytes; when `tail` is set, the frame's head only.
    pub(crate) bytes: Bytes,
    /// The application payload that ends the frame, sent right after
    /// `bytes` without having been copied into it.
    pub(crate) tail: Option<Bytes>,
    /// Whether the body was compressed.
    pub(crate) compressed: bool,
}

/// A message on its way to one or more sessions, with the encodings made so
/// far. Variant 0 is the frame without compression, variant 1 the frame for
/// sessions that negotiated LZ4 (its body compressed if that pays). A
/// frame is encoded once, behind the room for its length prefix: a
/// plaintext session sends it as it is, a Noise session encrypts its body.
pub(crate) struct Prepared<'a> {
    message: &'a Message,
    /// Each variant's plaintext frame (length prefix, then the body), and
    /// whether its body was compressed.
    frames: [Option<(Bytes, bool)>; 2],
    /// The uncompressed plaintext frame as its head and the payload that
    /// ends it, if the message ends with one of at least
    /// [`PAYLOAD_PASSTHROUGH_MIN`] bytes.
    split: Option<Option<(Bytes, Bytes)>>,
    /// Made for one session ([`Prepared::once`]): a plaintext session
    /// takes the frame instead of sharing it.
    once: bool,
}

impl<'a> Prepared<'a> {
    pub(crate) fn new(message: &'a Message) -> Self {
        Prepared {
            message,
            frames: [None, None],
            split: None,
            once: false,
        }
    }

    /// As [`Prepared::new`], for a message that goes to one session only:
    /// a plaintext session hands the frame over as it is, where sharing it
    /// (a `Bytes` clone, for the next session) cost the buffer's
    /// conversion to a shared one, an allocation and a free more per
    /// message. A second encoding of the same variant encodes again.
    pub(crate) fn once(message: &'a Message) -> Self {
        Prepared {
            once: true,
            ..Prepared::new(message)
        }
    }

    /// The uncompressed plaintext frame as its head (frame header, flags,
    /// tag and the fields before the payload) and the payload, when the
    /// message ends with an application payload worth not copying.
    fn split(&mut self) -> Option<(Bytes, Bytes)> {
        let message = self.message;
        self.split
            .get_or_insert_with(|| {
                let (head, tail) = split_payload(message, PAYLOAD_PASSTHROUGH_MIN)?;
                // The head encoded behind its length prefix, which counts
                // the payload that follows it.
                let mut out = BytesMut::with_capacity(FRAME_CAPACITY);
                put_frame_header(&mut out, 0);
                encode_body(&head, None, &mut out);
                let len = u32::try_from(out.len() - LENGTH_PREFIX_LEN + tail.len()).ok()?;
                out[..LENGTH_PREFIX_LEN].copy_from_slice(&frame_header(len));
                Some((out.freeze(), tail))
            })
            .clone()
    }

    /// A variant's plaintext frame and whether its body was compressed,
    /// encoded on first use.
    fn frame(&mut self, variant: usize, compress: Option<usize>) -> &(Bytes, bool) {
        let message = self.message;
        self.frames[variant].get_or_insert_with(|| {
            // An application message's exact room when it is not
            // compressed: a buffer filled to its capacity becomes a `Bytes`
            // without the shared header `bytes` allocates for one with
            // room to spare (a `malloc` and a `free` per message). Else
            // room for a small message at once (a ping): grown from
            // nothing, its buffer was reallocated two or three times.
            let room = app_frame_len(message)
                .filter(|&len| {
                    compress.is_none_or(|threshold| len - LENGTH_PREFIX_LEN - 2 < threshold)
                })
                .unwrap_or(FRAME_CAPACITY);
            let mut frame = BytesMut::with_capacity(room);
            let compressed = encode_frame(message, compress, &mut frame);
            (fit(frame), compressed)
        })
    }

    /// A variant's frame, made already ([`Prepared::frame`]), for one
    /// session: taken if the message goes to no other
    /// ([`Prepared::once`]), else shared.
    fn hand_over(&mut self, variant: usize) -> Bytes {
        let frame = &mut self.frames[variant];
        let bytes = if self.once {
            frame.take().map(|(bytes, _)| bytes)
        } else {
            frame.as_ref().map(|(bytes, _)| bytes.clone())
        };
        bytes.expect("the frame is made before it is handed over")
    }

    /// The length of the message's encoding, uncompressed (flags and tag
    /// not counted): what a receiver checks against its cap once it has
    /// decompressed. Encodes the uncompressed variant if it is not made.
    pub(crate) fn message_len(&mut self) -> usize {
        self.frame(0, None).0.len() - LENGTH_PREFIX_LEN - 2
    }
}

/// The first allocation of a message's frame: length prefix, flags, tag, a
/// request's id and a 64-byte payload fit.
const FRAME_CAPACITY: usize = LENGTH_PREFIX_LEN + 128;

/// An encoded frame as it will be queued: as it is when its buffer is
/// about its size, copied into one that is when the buffer grew well past
/// it. A queued frame is counted by its length (the write queues' byte
/// budgets, the simulator's frames in flight), and a buffer grown by
/// doubling may hold up to twice that: a mid-size message would then cost
/// twice what the budget says. The copy happens only for frames past
/// [`FRAME_CAPACITY`], once per message and variant, whatever the number
/// of peers it goes to.
fn fit(frame: BytesMut) -> Bytes {
    if frame.capacity() - frame.len() > frame.len() / 4 + FRAME_CAPACITY {
        Bytes::copy_from_slice(&frame)
    } else {
        frame.freeze()
    }
}

/// A second `Hello` on an established session.
#[cold]
#[inline(never)]
fn unexpected_hello() -> ReadError {
    ProtocolError::UnexpectedMessage("Hello").into()
}

fn check_preamble(ctx: &SessionContext, theirs: [u8; PREAMBLE_LEN]) -> Result<(), ProtocolError> {
    let theirs = Preamble::from_bytes(theirs).ok_or(ProtocolError::BadMagic)?;
    noise::check_version(theirs.version)?;
    let ours = ctx.security.wire_code();
    if theirs.security != ours {
        return Err(ProtocolError::SecurityMismatch {
            ours,
            theirs: theirs.security,
        });
    }
    Ok(())
}

fn write_handshake(
    state: &mut snow::HandshakeState,
    payload: &[u8],
    out: &mut BytesMut,
) -> Result<(), ProtocolError> {
    // An XX message adds at most an ephemeral key (32), an encrypted static
    // key (32 + 16) and the payload's tag (16).
    let mut message = vec![0u8; (payload.len() + 128).min(noise::NOISE_MAX_MESSAGE)];
    let len = state
        .write_message(payload, &mut message)
        .map_err(|_| ProtocolError::HandshakeFailed)?;
    put_frame_header(out, len as u32);
    out.put_slice(&message[..len]);
    Ok(())
}

#[cfg(test)]
mod tests;
