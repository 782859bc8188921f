//! The console's language: one command per line of stdin.

use std::net::SocketAddr;

use ringmesh::NodeId;

/// Shortest id prefix `send` accepts: 8 hex digits, as printed in
/// `<1a2b3c4d>`. Shorter ones would collide in any sizeable network.
pub(crate) const MIN_ID_PREFIX: usize = 8;

/// What `help` prints.
pub(crate) const HELP: &str = "\
commands:
  msg TEXT        broadcast TEXT to every node
  send ID TEXT    send TEXT to one node; ID is its id or a prefix of at
                  least 8 hex digits of a connected or known peer
  peers           list peers: id, address, round-trip time, state
  status          where peers can reach this node: the addresses it
                  announces, and what its peers see it at
  connect ADDR    dial a node, e.g. connect 127.0.0.1:4000
  put KEY VALUE   store VALUE under KEY in the network's table (KEY is
                  one word of 1 to 256 bytes; VALUE the rest of the line).
                  KEY is this node's own: only this node may change it
  get KEY         read this node's KEY: its value, version and writer
  get ID/KEY      read node ID's KEY (ID: its id, or a prefix of at least
                  8 hex digits of a connected or known peer)
  del KEY         delete this node's KEY
  put --open KEY VALUE, get --open KEY, del --open KEY
                  the same on an open key: anyone may write it, and every
                  write is signed by (and shows) its writer
  sync set KEY VALUE
                  write KEY in the sync table every node holds (KEY is one
                  word of 1 to 256 bytes; VALUE the rest of the line). The
                  first writer leases the key for an hour: only it may
                  change or delete it until then; writing renews it
  sync get KEY    read KEY from this node's copy of the sync table
  sync del KEY    delete KEY from the sync table (its lease holder only)
  sync list       every key of this node's copy of the sync table
  add FILE        read FILE, name it by its BLAKE3 hash and serve it
                  (prints the hash; kept under --data-dir DIR/blobs, else
                  in memory while the node runs)
  fetch HASH [PATH]
                  fetch the blob HASH from this node's neighbours, every
                  16 KiB verified as it arrives; written to PATH (default:
                  HASH in the current directory) when complete; with
                  --data-dir, fetched again after a restart it asks only
                  for what it lacks
  blobs           the blobs this node holds (whole or in part) and fetches
  ring            this node's place in the ring: successors, predecessor,
                  and what it stores of the table
  debug           turn debug logs (stderr) on or off
  help            this text
  exit            leave the network and quit (end of input does the same)";

/// A parsed console line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConsoleCommand<'a> {
    /// A blank line.
    Nothing,
    /// `msg TEXT`.
    Msg(&'a str),
    /// `send ID TEXT`.
    Send {
        /// The id or id prefix, as typed.
        to: &'a str,
        /// The text.
        text: &'a str,
    },
    /// `peers`.
    Peers,
    /// `status`.
    Status,
    /// `connect ADDR`.
    Connect(SocketAddr),
    /// `put [--open] KEY VALUE`.
    Put {
        /// The key: one word, as typed.
        key: KeyArg<'a>,
        /// The value: the rest of the line, as typed.
        value: &'a str,
    },
    /// `get [--open] KEY` or `get ID/KEY`.
    Get(KeyArg<'a>),
    /// `del [--open] KEY` (or `delete`).
    Del(KeyArg<'a>),
    /// `sync set|get|del|list ...`.
    Sync(SyncArg<'a>),
    /// `add FILE`.
    Add(&'a str),
    /// `fetch HASH [PATH]`.
    Fetch {
        /// The hash, as typed.
        hash: &'a str,
        /// Where to write it, as typed.
        path: Option<&'a str>,
    },
    /// `blobs`.
    Blobs,
    /// `ring`.
    Ring,
    /// `debug`.
    Debug,
    /// `help`.
    Help,
    /// `exit` (or `quit`).
    Exit,
}

/// A `sync` subcommand (spec/sync.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncArg<'a> {
    /// `sync set KEY VALUE`.
    Set {
        /// One word, as typed.
        key: &'a str,
        /// The rest of the line, as typed.
        value: &'a str,
    },
    /// `sync get KEY`.
    Get(&'a str),
    /// `sync del KEY` (or `delete`).
    Del(&'a str),
    /// `sync list`.
    List,
}

/// A table key as typed (spec/chord.md §10.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyArg<'a> {
    /// `KEY`: this node's owned key.
    Mine(&'a str),
    /// `ID/KEY`: the owned key of the node whose id (or prefix) is `owner`.
    Of {
        /// Hex digits, as typed.
        owner: &'a str,
        /// The name.
        name: &'a str,
    },
    /// `--open KEY`: an open key.
    Open(&'a str),
}

impl<'a> KeyArg<'a> {
    /// The name, without owner or flag.
    pub(crate) fn name(&self) -> &'a str {
        match *self {
            KeyArg::Mine(name) | KeyArg::Of { name, .. } | KeyArg::Open(name) => name,
        }
    }

    /// `--open` then one word (`open` set), or one word: `ID/KEY` if the
    /// part before its first `/` is at least [`MIN_ID_PREFIX`] hex digits,
    /// else this node's `KEY`.
    fn parse(word: &'a str, open: bool) -> Self {
        if open {
            return KeyArg::Open(word);
        }
        match word.split_once('/') {
            Some((owner, name))
                if owner.len() >= MIN_ID_PREFIX
                    && !name.is_empty()
                    && owner.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                KeyArg::Of { owner, name }
            }
            _ => KeyArg::Mine(word),
        }
    }
}

/// `--open` at the start of `rest`: whether it is there, and what follows.
fn open_flag(rest: &str) -> (bool, &str) {
    let rest = rest.trim_start();
    match rest.strip_prefix("--open") {
        Some(after) if after.is_empty() || after.starts_with(char::is_whitespace) => {
            (true, after.trim_start())
        }
        _ => (false, rest),
    }
}

/// Why a line is not a command; the message is for the person typing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError(pub(crate) String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses one line (without its line ending). Message text is kept as
/// typed after the single space that follows the command word.
pub(crate) fn parse(line: &str) -> Result<ConsoleCommand<'_>, ParseError> {
    let line = line.trim_end_matches(['\r', '\n']);
    let trimmed = line.trim_start();
    let (word, rest) = match trimmed.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest),
        None => (trimmed, ""),
    };
    let usage = |text: &str| Err(ParseError(format!("usage: {text}")));
    match word {
        "" => Ok(ConsoleCommand::Nothing),
        "msg" => {
            if rest.trim().is_empty() {
                return usage("msg TEXT");
            }
            Ok(ConsoleCommand::Msg(rest))
        }
        "send" => {
            let rest = rest.trim_start();
            match rest.split_once(char::is_whitespace) {
                Some((to, text)) if !text.trim().is_empty() => {
                    Ok(ConsoleCommand::Send { to, text })
                }
                _ => usage("send ID TEXT"),
            }
        }
        "peers" => no_args(rest, ConsoleCommand::Peers, "peers"),
        "status" => no_args(rest, ConsoleCommand::Status, "status"),
        "connect" => match rest.trim().parse() {
            Ok(addr) => Ok(ConsoleCommand::Connect(addr)),
            Err(_) => usage("connect ADDR (an IP address and port, e.g. 127.0.0.1:4000)"),
        },
        "put" => {
            let (open, rest) = open_flag(rest);
            match rest.split_once(char::is_whitespace) {
                Some((key, value)) if !value.trim().is_empty() => Ok(ConsoleCommand::Put {
                    key: KeyArg::parse(key, open),
                    value,
                }),
                _ => usage("put [--open] KEY VALUE (KEY is one word, VALUE the rest of the line)"),
            }
        }
        "get" => {
            let (open, rest) = open_flag(rest);
            one_key(rest)
                .map(|key| ConsoleCommand::Get(KeyArg::parse(key, open)))
                .ok_or_else(|| {
                    ParseError("usage: get [--open] KEY or get ID/KEY (one word)".into())
                })
        }
        "del" | "delete" => {
            let (open, rest) = open_flag(rest);
            one_key(rest)
                .map(|key| ConsoleCommand::Del(KeyArg::parse(key, open)))
                .ok_or_else(|| ParseError("usage: del [--open] KEY (one word)".into()))
        }
        "sync" => parse_sync(rest).map(ConsoleCommand::Sync),
        "add" => match rest.trim() {
            "" => usage("add FILE"),
            path => Ok(ConsoleCommand::Add(path)),
        },
        "fetch" => {
            let mut words = rest.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(hash), path, None) => Ok(ConsoleCommand::Fetch { hash, path }),
                _ => usage("fetch HASH [PATH]"),
            }
        }
        "blobs" => no_args(rest, ConsoleCommand::Blobs, "blobs"),
        "ring" => no_args(rest, ConsoleCommand::Ring, "ring"),
        "debug" => no_args(rest, ConsoleCommand::Debug, "debug"),
        "help" | "?" => Ok(ConsoleCommand::Help),
        "exit" | "quit" => no_args(rest, ConsoleCommand::Exit, "exit"),
        other => Err(ParseError(format!(
            "unknown command `{}`; type `help`",
            crate::display::echo(other)
        ))),
    }
}

/// `sync`'s subcommand and its arguments.
fn parse_sync(rest: &str) -> Result<SyncArg<'_>, ParseError> {
    const USAGE: &str = "usage: sync set KEY VALUE | sync get KEY | sync del KEY | sync list";
    let rest = rest.trim_start();
    let (sub, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let key = || one_key(args).ok_or_else(|| ParseError(USAGE.into()));
    match sub {
        "set" => match args.trim_start().split_once(char::is_whitespace) {
            Some((key, value)) if !value.trim().is_empty() => Ok(SyncArg::Set { key, value }),
            _ => Err(ParseError(
                "usage: sync set KEY VALUE (KEY is one word, VALUE the rest of the line)".into(),
            )),
        },
        "get" => key().map(SyncArg::Get),
        "del" | "delete" => key().map(SyncArg::Del),
        "list" if args.trim().is_empty() => Ok(SyncArg::List),
        _ => Err(ParseError(USAGE.into())),
    }
}

/// The single word in `rest`, if it holds exactly one. Keys are words so
/// that `put KEY VALUE` can tell where the key ends; an empty key never
/// gets this far.
fn one_key(rest: &str) -> Option<&str> {
    let key = rest.trim();
    (!key.is_empty() && !key.contains(char::is_whitespace)).then_some(key)
}

fn no_args<'a>(
    rest: &str,
    command: ConsoleCommand<'a>,
    name: &str,
) -> Result<ConsoleCommand<'a>, ParseError> {
    if rest.trim().is_empty() {
        Ok(command)
    } else {
        Err(ParseError(format!("usage: {name} (no arguments)")))
    }
}

/// The one peer whose id starts with `prefix` (hex, any case, at least
/// [`MIN_ID_PREFIX`] digits) among `candidates`. A full 32-digit id is
/// taken as is, known or not: the node can look it up.
pub(crate) fn resolve_peer(
    prefix: &str,
    candidates: impl IntoIterator<Item = NodeId>,
) -> Result<NodeId, ParseError> {
    if !prefix.bytes().all(|b| b.is_ascii_hexdigit()) || prefix.len() > 32 {
        return Err(ParseError(format!(
            "`{}` is not a node id (up to 32 hex digits)",
            crate::display::echo(prefix)
        )));
    }
    if prefix.len() < MIN_ID_PREFIX {
        return Err(ParseError(format!(
            "id prefix `{prefix}` is too short: give at least {MIN_ID_PREFIX} hex digits"
        )));
    }
    let prefix = prefix.to_ascii_lowercase();
    if prefix.len() == 32 {
        return prefix
            .parse()
            .map_err(|e: ringmesh::ParseNodeIdError| ParseError(e.to_string()));
    }
    let mut matches: Vec<NodeId> = candidates
        .into_iter()
        .filter(|id| id.to_string().starts_with(&prefix))
        .collect();
    matches.sort();
    matches.dedup();
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => Err(ParseError(format!(
            "no connected or known peer has an id starting with {prefix}"
        ))),
        many => Err(ParseError(format!(
            "{} peers have ids starting with {prefix}; give more digits",
            many.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_their_text_kept_as_typed() {
        assert_eq!(parse(""), Ok(ConsoleCommand::Nothing));
        assert_eq!(parse("   \r\n"), Ok(ConsoleCommand::Nothing));
        assert_eq!(
            parse("msg hello  mesh\n"),
            Ok(ConsoleCommand::Msg("hello  mesh"))
        );
        assert_eq!(
            parse("send 1a2b3c4d hi there"),
            Ok(ConsoleCommand::Send {
                to: "1a2b3c4d",
                text: "hi there"
            })
        );
        assert_eq!(parse("peers"), Ok(ConsoleCommand::Peers));
        assert_eq!(parse("status"), Ok(ConsoleCommand::Status));
        assert_eq!(
            parse("connect 127.0.0.1:4000"),
            Ok(ConsoleCommand::Connect(
                "127.0.0.1:4000".parse().expect("addr")
            ))
        );
        assert_eq!(parse("debug"), Ok(ConsoleCommand::Debug));
        assert_eq!(
            parse("put colour deep  blue \n"),
            Ok(ConsoleCommand::Put {
                key: KeyArg::Mine("colour"),
                value: "deep  blue "
            })
        );
        assert_eq!(
            parse("put --open colour deep  blue"),
            Ok(ConsoleCommand::Put {
                key: KeyArg::Open("colour"),
                value: "deep  blue"
            })
        );
        // `--open` must be a word of its own.
        assert_eq!(
            parse("put --opencolour blue"),
            Ok(ConsoleCommand::Put {
                key: KeyArg::Mine("--opencolour"),
                value: "blue"
            })
        );
        assert_eq!(
            parse("get  colour "),
            Ok(ConsoleCommand::Get(KeyArg::Mine("colour")))
        );
        assert_eq!(
            parse("get 1a2b3c4d/colour"),
            Ok(ConsoleCommand::Get(KeyArg::Of {
                owner: "1a2b3c4d",
                name: "colour"
            }))
        );
        // Not 8 hex digits before the slash: a name of this node's.
        for name in ["red/colour", "bad/colour"] {
            assert_eq!(
                parse(&format!("get {name}")),
                Ok(ConsoleCommand::Get(KeyArg::Mine(name)))
            );
        }
        assert_eq!(
            parse("get --open  colour"),
            Ok(ConsoleCommand::Get(KeyArg::Open("colour")))
        );
        assert_eq!(
            parse("del colour"),
            Ok(ConsoleCommand::Del(KeyArg::Mine("colour")))
        );
        assert_eq!(
            parse("delete --open colour"),
            Ok(ConsoleCommand::Del(KeyArg::Open("colour")))
        );
        assert_eq!(
            parse("sync set colour deep  blue"),
            Ok(ConsoleCommand::Sync(SyncArg::Set {
                key: "colour",
                value: "deep  blue"
            }))
        );
        assert_eq!(
            parse("sync get colour"),
            Ok(ConsoleCommand::Sync(SyncArg::Get("colour")))
        );
        assert_eq!(
            parse("sync delete colour"),
            Ok(ConsoleCommand::Sync(SyncArg::Del("colour")))
        );
        assert_eq!(parse("sync list"), Ok(ConsoleCommand::Sync(SyncArg::List)));
        for line in [
            "sync",
            "sync set colour",
            "sync get",
            "sync get a b",
            "sync list x",
            "sync put k v",
        ] {
            assert!(
                parse(line).expect_err(line).0.contains("usage: sync"),
                "{line}"
            );
        }
        assert_eq!(parse("ring"), Ok(ConsoleCommand::Ring));
        assert_eq!(parse("help"), Ok(ConsoleCommand::Help));
        assert_eq!(parse("exit"), Ok(ConsoleCommand::Exit));
    }

    #[test]
    fn malformed_commands_say_how_to_use_them() {
        assert!(parse("msg").expect_err("no text").0.contains("usage: msg"));
        assert!(parse("msg   ").is_err());
        assert!(
            parse("send 1a2b3c4d")
                .expect_err("no text")
                .0
                .contains("usage: send")
        );
        assert!(
            parse("connect localhost")
                .expect_err("not an ip")
                .0
                .contains("usage: connect")
        );
        assert!(parse("peers now").is_err());
        // No key, or a key without a value: nothing empty reaches the table.
        for line in ["put", "put   ", "put colour", "put colour   "] {
            assert!(
                parse(line)
                    .expect_err(line)
                    .0
                    .contains("usage: put [--open] KEY VALUE"),
                "{line}"
            );
        }
        for line in ["get", "get  ", "get two words"] {
            assert!(
                parse(line)
                    .expect_err(line)
                    .0
                    .contains("usage: get [--open] KEY")
            );
        }
        assert!(
            parse("del")
                .expect_err("no key")
                .0
                .contains("usage: del [--open] KEY")
        );
        // `--open` alone is not a key.
        assert!(parse("get --open").is_err());
        assert!(parse("put --open k").is_err());
        assert!(parse("ring now").is_err());
        assert!(
            parse("fly")
                .expect_err("unknown")
                .0
                .contains("unknown command `fly`")
        );
        // What is echoed back cannot drive the terminal.
        assert_eq!(
            parse("\x1b[31mred").expect_err("unknown").0,
            "unknown command `\\u{1b}[31mred`; type `help`"
        );
    }

    #[test]
    fn an_id_prefix_must_name_exactly_one_peer() {
        let a = "1a2b3c4d000000000000000000000001"
            .parse::<NodeId>()
            .expect("id");
        let b = "1a2b3c4d000000000000000000000002"
            .parse::<NodeId>()
            .expect("id");
        let c = "ffffffff000000000000000000000003"
            .parse::<NodeId>()
            .expect("id");
        let all = [a, b, c, a];
        assert_eq!(resolve_peer("FFFFFFFF", all), Ok(c));
        assert_eq!(
            resolve_peer("1a2b3c4d0000000000000000000000", all),
            Err(ParseError(
                "2 peers have ids starting with 1a2b3c4d0000000000000000000000; give more digits"
                    .into()
            ))
        );
        assert_eq!(resolve_peer("1a2b3c4d000000000000000000000002", all), Ok(b));
        assert!(
            resolve_peer("1a2b3c4", all)
                .expect_err("short")
                .0
                .contains("too short")
        );
        assert!(
            resolve_peer("12345678", all)
                .expect_err("none")
                .0
                .contains("no connected")
        );
        assert!(
            resolve_peer("1a2b3c4z", all)
                .expect_err("not hex")
                .0
                .contains("not a node id")
        );
        // A full id needs no candidate: the node looks it up.
        let unknown = "00000000000000000000000000000009";
        assert_eq!(resolve_peer(unknown, []), Ok(NodeId::from_u128(9)));
    }
}
