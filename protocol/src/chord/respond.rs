//! Answering the chord messages (spec/chord.md §8), and the replies to the
//! ring's requests.

use super::ring;
use super::{Chord, Finger, Pointer, RingCall, RingObserver};
use crate::NodeId;
use crate::cx::Cx;
use crate::rpc::Done;
use crate::wire::{
    ChordFindSuccessor, ChordFindSuccessorReply, ChordGetState, ChordReplyKind, ChordState, Message,
};
use smallvec::SmallVec;

impl Chord {
    /// A chord request (`ChordGetState`, `ChordNotify`,
    /// `ChordFindSuccessor`, `ChordRoute`) from `from`. Replies go to `from`'s current
    /// connection. No request changes the ring at once (a notifier is
    /// checked first, §6.3), so the observer is not told here.
    pub(crate) fn on_request(
        &mut self,
        cx: &mut dyn Cx,
        _obs: &mut dyn RingObserver,
        from: NodeId,
        message: Message,
    ) {
        match message {
            Message::ChordGetState(ChordGetState { req }) => {
                let member = self.is_member();
                let state = ChordState {
                    req,
                    member,
                    pred: self.pred.as_ref().map(Finger::pointer).filter(|_| member),
                    succs: if member {
                        self.succs.iter().map(Finger::pointer).collect()
                    } else {
                        Vec::new()
                    },
                };
                let _ = cx.send(from, &Message::ChordState(state));
            }
            Message::ChordNotify(_) => self.on_notify(cx, from),
            Message::ChordRoute(route) => self.on_route(cx, from, route),
            Message::ChordFindSuccessor(ChordFindSuccessor { req, key }) => {
                let (kind, entries) = self.answer_find_successor(cx.me(), key, from);
                let reply = ChordFindSuccessorReply { req, kind, entries };
                let _ = cx.send(from, &Message::ChordFindSuccessorReply(reply));
            }
            _ => {}
        }
    }

    /// A reply (`message`, answering request `req`) to one of the ring's
    /// requests arrived from `from`: the request's end, if it matches one.
    pub(crate) fn on_reply(
        &mut self,
        from: NodeId,
        req: u64,
        message: Message,
    ) -> Option<Done<RingCall>> {
        self.rpc.on_reply(from, req, message)
    }

    /// §7.1, over pointers.
    pub(super) fn answer_find_successor(
        &self,
        me: NodeId,
        key: u128,
        from: NodeId,
    ) -> (ChordReplyKind, Vec<Pointer>) {
        let succs: SmallVec<[u128; 8]> = self.succs.iter().map(|p| p.id.as_u128()).collect();
        let fingers = self.finger_positions();
        let reply = ring::respond(
            me.as_u128(),
            self.is_member(),
            &succs,
            &fingers,
            key,
            from.as_u128(),
            |_| false,
        );
        match reply {
            ring::Reply::NotInRing => (ChordReplyKind::NotInRing, Vec::new()),
            ring::Reply::Done(_) => (
                ChordReplyKind::Done,
                self.succs.iter().map(Finger::pointer).collect(),
            ),
            ring::Reply::Next(ids) => (
                ChordReplyKind::Next,
                ids.iter()
                    .filter_map(|&id| self.pointer(NodeId::from_u128(id)))
                    .collect(),
            ),
        }
    }
}
