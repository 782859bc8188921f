//! What a scenario file may say, as serde reads it. `Script::parse`
//! splits each `[[step]]` into its time, label and one action key, then
//! reads the action as a variant of [`ActionSpec`] (and a check's table as a
//! variant of [`CheckSpec`], by its `kind`); validation turns them into
//! [`super::Action`]s.

use std::fmt;
use std::marker::PhantomData;

use ringmesh::NodeId;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeOwned, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_path_to_error::Segment;

use super::step::Nodes;
use crate::engine::NodeIdx;

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTop {
    pub(super) seed: Option<u64>,
    pub(super) net: Option<NetSection>,
    pub(super) node: Option<NodeSection>,
    pub(super) chord: Option<ChordSection>,
    pub(super) sync: Option<SyncSection>,
    /// Each step's table; see [`ActionSpec`].
    #[serde(default)]
    pub(super) step: Vec<toml::Table>,
}

/// `[net]`: the network model.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NetSection {
    pub(super) latency_ms: Option<u64>,
    pub(super) jitter_ms: Option<u64>,
    pub(super) dial_timeout_ms: Option<u64>,
    pub(super) latency_model: Option<String>,
    pub(super) upload: Option<String>,
}

/// `[node]`: defaults for `add_nodes`.
#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct NodeSection {
    pub(super) preset: Option<Preset>,
    pub(super) security: Option<SecurityName>,
    pub(super) target_peers: Option<usize>,
    pub(super) bootstrap: Option<Vec<NodeIdx>>,
}

/// `[sync]`: every node runs the sync table with these settings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SyncSection {
    pub(super) lease_ms: Option<u64>,
    pub(super) anti_entropy_ms: Option<u64>,
}

/// `[chord]`: every node runs the ring and the table with these settings,
/// and the run watches Zave's invariant.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ChordSection {
    pub(super) successors: Option<usize>,
    pub(super) dht_replicas: Option<usize>,
    pub(super) stabilize_ms: Option<u64>,
    pub(super) request_timeout_ms: Option<u64>,
    pub(super) check_every_ms: Option<u64>,
}

/// A node's timing profile.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(super) enum Preset {
    Lan,
    Wan,
}

/// A node's session security.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(super) enum SecurityName {
    Plaintext,
    Noise,
}

/// A step's action: the one key of a `[[step]]` besides `at_ms` and
/// `label`, with its value. The variants' order is the order error
/// messages list them in.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum ActionSpec {
    AddNodes(Short<u32, AddNodesSpec>),
    Connect([NodeIdx; 2]),
    Disconnect([NodeIdx; 2]),
    Crash(NodeIdx),
    Kill(NodeIdx),
    Restart(NodeIdx),
    Partition(Vec<Vec<NodeIdx>>),
    PartitionOneWay(OneWaySpec),
    Flap(LinkFaultSpec),
    DelaySpike(LinkFaultSpec),
    Heal(bool),
    Broadcast(BroadcastSpec),
    Send(SendSpec),
    Request(RequestSpec),
    ChordCreate(Short<NodeIdx, OneNode>),
    ChordFound(Short<Vec<NodeIdx>, Founders>),
    Join(JoinSpec),
    Leave(Short<NodeIdx, OneNode>),
    Lookup(LookupSpec),
    Put(PutSpec),
    Get(GetSpec),
    Delete(DeleteSpec),
    CheckRing(Short<bool, CheckRingSpec>),
    SyncSet(PutSpec),
    SyncDelete(DeleteSpec),
    /// A table with a `kind`, read as a [`CheckSpec`].
    Check(toml::Table),
}

/// `add_nodes = { count, preset, security, target_peers, bootstrap }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AddNodesSpec {
    pub(super) count: u32,
    pub(super) preset: Option<Preset>,
    pub(super) security: Option<SecurityName>,
    pub(super) target_peers: Option<usize>,
    pub(super) bootstrap: Option<Vec<NodeIdx>>,
}

/// `partition_one_way = { from, to }`: bytes from `from` to `to` vanish.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OneWaySpec {
    pub(super) from: Vec<NodeIdx>,
    pub(super) to: Vec<NodeIdx>,
}

/// `flap = { node, peer, for_ms }` and
/// `delay_spike = { node, peer, extra_ms, for_ms }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LinkFaultSpec {
    pub(super) node: NodeIdx,
    pub(super) peer: Option<NodeIdx>,
    pub(super) for_ms: u64,
    pub(super) extra_ms: Option<u64>,
}

/// `broadcast = { from, payload }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BroadcastSpec {
    pub(super) from: NodeIdx,
    pub(super) payload: Option<String>,
}

/// `send = { from, to, payload }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SendSpec {
    pub(super) from: NodeIdx,
    pub(super) to: NodeIdx,
    pub(super) payload: Option<String>,
}

/// `request = { from, to, payload, timeout_ms }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RequestSpec {
    pub(super) from: NodeIdx,
    pub(super) to: NodeIdx,
    pub(super) payload: Option<String>,
    pub(super) timeout_ms: Option<u64>,
}

/// `{ node = i }`, the long form of `chord_create = i` and `leave = i`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OneNode {
    pub(super) node: NodeIdx,
}

/// `{ nodes = [...] }`, the long form of `chord_found = [...]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Founders {
    pub(super) nodes: Vec<NodeIdx>,
}

/// `join = { node, via }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JoinSpec {
    pub(super) node: NodeIdx,
    pub(super) via: NodeIdx,
}

/// `lookup = { from, key | dht_key, expect_owner }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LookupSpec {
    pub(super) from: NodeIdx,
    pub(super) key: Option<KeySpec>,
    pub(super) dht_key: Option<String>,
    pub(super) expect_owner: Option<NodeIdx>,
}

/// A lookup's `key`: a node index (that node's id) or 32 hex digits.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "toml::Value")]
pub(super) enum KeySpec {
    Node(NodeIdx),
    Id(NodeId),
}

impl TryFrom<toml::Value> for KeySpec {
    type Error = String;

    fn try_from(value: toml::Value) -> Result<Self, String> {
        match value {
            toml::Value::Integer(i) => NodeIdx::try_from(i)
                .map(KeySpec::Node)
                .map_err(|_| format!("{i} is not a node index")),
            toml::Value::String(hex) => hex
                .parse::<NodeId>()
                .map(KeySpec::Id)
                .map_err(|e| e.to_string()),
            other => Err(format!(
                "a node index or 32 hex digits was expected, not {other}"
            )),
        }
    }
}

/// `put = { from, key, value }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PutSpec {
    pub(super) from: NodeIdx,
    pub(super) key: String,
    pub(super) value: String,
}

/// `get = { from, key, expect | expect_none }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GetSpec {
    pub(super) from: NodeIdx,
    pub(super) key: String,
    pub(super) expect: Option<String>,
    pub(super) expect_none: Option<bool>,
}

/// `delete = { from, key }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeleteSpec {
    pub(super) from: NodeIdx,
    pub(super) key: String,
}

/// `check_ring = { ideal, members }`, the long form of `check_ring = true`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CheckRingSpec {
    pub(super) ideal: Option<bool>,
    pub(super) members: Option<usize>,
}

/// A check, by its `kind` (the table's other fields are the variant's).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum CheckSpec {
    DeliveredEverywhere {
        broadcast: StepRef,
    },
    Delivered {
        broadcast: StepRef,
        node: Nodes,
    },
    Connected {
        node: Option<NodeIdx>,
        peer: Option<NodeIdx>,
        min_peers: Option<usize>,
    },
    PeerDown {
        node: Nodes,
        peer: Nodes,
    },
    PeersAtLeast {
        node: Nodes,
        n: usize,
    },
    Response {
        request: StepRef,
    },
    Received {
        send: StepRef,
    },
    NoFalsePositives {},
    NoDoubleDelivery {},
    RingOrder {
        node: Nodes,
    },
    ChordState {
        node: NodeIdx,
        successors: Option<Vec<NodeIdx>>,
        predecessor: Option<Pointer>,
    },
    SyncConverged {},
    SyncValue {
        node: Nodes,
        key: String,
        expect: Option<String>,
        expect_none: Option<bool>,
    },
}

/// A reference to an earlier step: its label or its number.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "toml::Value")]
pub(super) enum StepRef {
    Index(usize),
    Label(String),
}

impl TryFrom<toml::Value> for StepRef {
    type Error = String;

    fn try_from(value: toml::Value) -> Result<Self, String> {
        match value {
            toml::Value::Integer(i) if i >= 0 => Ok(StepRef::Index(i as usize)),
            toml::Value::String(s) => Ok(StepRef::Label(s)),
            other => Err(format!(
                "a step label or a step number was expected, not {other}"
            )),
        }
    }
}

/// A ring pointer in a check: a node index, or `"none"`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "toml::Value")]
pub(super) enum Pointer {
    None,
    Node(NodeIdx),
}

impl TryFrom<toml::Value> for Pointer {
    type Error = String;

    fn try_from(value: toml::Value) -> Result<Self, String> {
        match value {
            toml::Value::String(s) if s == "none" => Ok(Pointer::None),
            toml::Value::Integer(i) if NodeIdx::try_from(i).is_ok() => {
                Ok(Pointer::Node(i as NodeIdx))
            }
            other => Err(format!(
                "a node index or \"none\" was expected, not {other}"
            )),
        }
    }
}

/// A node set as written: an index, a list of them, or `"all"`.
impl TryFrom<toml::Value> for Nodes {
    type Error = String;

    fn try_from(value: toml::Value) -> Result<Self, String> {
        let index = |v: &toml::Value| match v {
            toml::Value::Integer(i) if NodeIdx::try_from(*i).is_ok() => Ok(*i as NodeIdx),
            other => Err(format!(
                "a node index, a list of them or \"all\" was expected, not {other}"
            )),
        };
        match value {
            toml::Value::String(s) if s == "all" => Ok(Nodes::All),
            toml::Value::Array(items) => Ok(Nodes::List(
                items.iter().map(index).collect::<Result<_, _>>()?,
            )),
            other => Ok(Nodes::List(vec![index(&other)?])),
        }
    }
}

/// A value written in its short form (a number, a list, `true`) or in
/// full, as a table: `add_nodes = 3` or `add_nodes = { count = 3, .. }`.
#[derive(Debug)]
pub(super) enum Short<S, T> {
    Short(S),
    Full(T),
}

impl<'de, S: Deserialize<'de>, T: Deserialize<'de>> Deserialize<'de> for Short<S, T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ShortVisitor(PhantomData))
    }
}

/// Hands a table to `T` and anything else to `S`, so that the errors are
/// theirs (an untagged enum would only say that nothing matched).
struct ShortVisitor<S, T>(PhantomData<(S, T)>);

impl<'de, S: Deserialize<'de>, T: Deserialize<'de>> Visitor<'de> for ShortVisitor<S, T> {
    type Value = Short<S, T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value or a table")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        S::deserialize(v.into_deserializer()).map(Short::Short)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        S::deserialize(v.into_deserializer()).map(Short::Short)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        S::deserialize(v.into_deserializer()).map(Short::Short)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        S::deserialize(v.into_deserializer()).map(Short::Short)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        S::deserialize(SeqAccessDeserializer::new(seq)).map(Short::Short)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Short::Full)
    }
}

/// Reads `value` as variant `name` of the externally tagged enum `T` (the
/// table `{ name = value }`). An error is `what: message`, or
/// ``what: `field`: message`` when it is about a field inside.
pub(super) fn variant<T: DeserializeOwned>(
    what: &str,
    name: &str,
    value: toml::Value,
) -> Result<T, String> {
    let table = toml::Table::from_iter([(name.to_owned(), value)]);
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let message = e.inner().message();
        // The first segment is the variant itself: `what` names it; an
        // unknown field's message names it already.
        let mut segments: Vec<&Segment> = e.path().iter().skip(1).collect();
        if let Some(Segment::Map { key }) = segments.last()
            && message.starts_with(&format!("unknown field `{key}`"))
        {
            segments.pop();
        }
        let mut field = String::new();
        for segment in segments {
            match segment {
                Segment::Seq { index } => field.push_str(&format!("[{index}]")),
                Segment::Map { key } | Segment::Enum { variant: key } => {
                    if !field.is_empty() {
                        field.push('.');
                    }
                    field.push_str(key);
                }
                Segment::Unknown => {}
            }
        }
        if field.is_empty() {
            format!("{what}: {message}")
        } else {
            format!("{what}: `{field}`: {message}")
        }
    })
}

/// The names serde knows for the variants of enum `T`, as a file spells
/// them (so error messages can list them, and never drift from the enum).
pub(super) fn variant_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(VariantProbe(&mut names));
    names
}

/// A deserializer that only answers `deserialize_enum`, noting the names.
struct VariantProbe<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for VariantProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = variants;
        Err(de::Error::custom("only the variant names were asked for"))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not an enum"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}
