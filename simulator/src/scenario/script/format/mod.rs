//! The file format: what a scenario file may say ([`spec`], read by
//! serde), its validation ([`validate`]) into [`Step`]s in run order
//! ([`step`]).
//!
//! A file is read in three passes. Serde reads the sections and each
//! step's table. The first pass over the steps, in file order, takes each
//! one's `at_ms` and `label` and finds its one action key. The second pass,
//! in run order, reads the action as a variant of [`spec::ActionSpec`] and
//! validates it against the nodes that exist by then and the steps that ran
//! before it. Every error names the step (`step #3 "label" (at_ms = 500)`),
//! the action or field, and the problem.

mod spec;
mod step;
mod validate;

use std::collections::HashMap;

use ringmesh::Duration;

use super::{Script, ScriptError};
use crate::engine::NetModel;
use spec::{ActionSpec, FileTop, NodeSection, variant, variant_names};
use validate::{Validator, list};

pub(super) use step::{Action, Check, LookupKey, Nodes, RingSettings, Step};

/// How often a ring run checks the invariant unless `check_every_ms` says.
const DEFAULT_CHECK_EVERY: Duration = Duration::from_millis(10);

/// How errors name a step.
fn step_name(index: usize, label: Option<&str>, at_ms: u64) -> String {
    match label {
        Some(label) => format!("step #{index} \"{label}\" (at_ms = {at_ms})"),
        None => format!("step #{index} (at_ms = {at_ms})"),
    }
}

/// A step as the first pass leaves it: its place in the file, its time,
/// its label, and its one action, not yet read.
struct RawStep {
    index: usize,
    at_ms: u64,
    label: Option<String>,
    key: String,
    value: toml::Value,
}

impl Script {
    /// Parses and validates a scenario file's text.
    pub fn parse(text: &str) -> Result<Script, ScriptError> {
        let top: FileTop = toml::from_str(text).map_err(|e| ScriptError::new(e.to_string()))?;
        let net = net_model(&top)?;
        if top.step.is_empty() {
            return Err(ScriptError::new("the file has no [[step]]"));
        }
        let ring = ring_settings(&top)?;
        let sync = sync_settings(&top)?;
        let (mut raw, labels) = first_pass(top.step)?;
        // Second pass, run order: actions, with the nodes that exist then.
        raw.sort_by_key(|step| (step.at_ms, step.index));
        let mut at_ms = vec![0; raw.len()];
        for step in &raw {
            at_ms[step.index] = step.at_ms;
        }
        let mut validator = Validator {
            defaults: top.node.unwrap_or_default(),
            nodes: 0,
            labels,
            done: HashMap::new(),
            at_ms,
            current: "[node]".into(),
            bootstrap_refs: Vec::new(),
            ring,
            sync,
        };
        // Defaults are checked once up front, so that a bad `[node]` is
        // reported as such (bootstrap indices are checked per batch).
        validator.config(NodeSection::default()).map_err(|e| {
            let section = if ring.is_some() {
                "[node] or [chord]"
            } else {
                "[node]"
            };
            ScriptError::new(format!("{section}: {e}"))
        })?;
        validator.bootstrap_refs.clear();
        let mut steps = Vec::with_capacity(raw.len());
        for step in raw {
            let name = step_name(step.index, step.label.as_deref(), step.at_ms);
            validator.current = name.clone();
            let action = variant::<ActionSpec>(&format!("`{}`", step.key), &step.key, step.value)
                .and_then(|spec| validator.action(&step.key, spec))
                .map_err(|e| ScriptError::new(format!("{name}: {e}")))?;
            validator.done.insert(step.index, action.name());
            steps.push(Step {
                index: step.index,
                at_ms: step.at_ms,
                label: step.label,
                action,
            });
        }
        if let Some((step, i)) = validator
            .bootstrap_refs
            .iter()
            .find(|(_, i)| *i >= validator.nodes)
        {
            return Err(ScriptError::new(format!(
                "{step}: `bootstrap`: node {i} is out of range (the file adds {} nodes)",
                validator.nodes
            )));
        }
        Ok(Script {
            seed: top.seed.unwrap_or(1),
            net,
            ring,
            steps,
        })
    }
}

/// `[net]` over the engine's defaults.
fn net_model(top: &FileTop) -> Result<NetModel, ScriptError> {
    let mut net = NetModel::default();
    if let Some(section) = &top.net {
        if let Some(ms) = section.latency_ms {
            net.latency = Duration::from_millis(ms);
        }
        if let Some(ms) = section.jitter_ms {
            net.jitter = Duration::from_millis(ms);
        }
        if let Some(ms) = section.dial_timeout_ms {
            net.dial_timeout = Duration::from_millis(ms);
        }
        if let Some(model) = &section.latency_model {
            net.links = crate::engine::LatencyModel::parse(model)
                .map_err(|e| ScriptError::new(format!("[net]: `latency_model`: {e}")))?;
        }
        if let Some(rate) = &section.upload {
            net.upload = Some(
                crate::engine::Upload::parse(rate)
                    .map_err(|e| ScriptError::new(format!("[net]: `upload`: {e}")))?,
            );
        }
    }
    Ok(net)
}

/// `[sync]`, if the file has it: the LAN preset's table with the file's
/// lease and anti-entropy period.
fn sync_settings(top: &FileTop) -> Result<Option<ringmesh::SyncConfig>, ScriptError> {
    let Some(section) = &top.sync else {
        return Ok(None);
    };
    let base = ringmesh::SyncConfig::lan();
    let ms = |field: &str, value: Option<u64>, default: Duration| match value {
        Some(0) => Err(ScriptError::new(format!(
            "[sync]: `{field}` must be above 0"
        ))),
        Some(ms) => Ok(Duration::from_millis(ms)),
        None => Ok(default),
    };
    Ok(Some(ringmesh::SyncConfig {
        lease: ms("lease_ms", section.lease_ms, base.lease)?,
        anti_entropy_interval: ms(
            "anti_entropy_ms",
            section.anti_entropy_ms,
            base.anti_entropy_interval,
        )?,
        ..base
    }))
}

/// `[chord]`, if the file has it.
fn ring_settings(top: &FileTop) -> Result<Option<RingSettings>, ScriptError> {
    let Some(section) = &top.chord else {
        return Ok(None);
    };
    let r = section.successors.unwrap_or(3);
    let ms = |field: &str, value: Option<u64>| match value {
        Some(0) => Err(ScriptError::new(format!(
            "[chord]: `{field}` must be above 0"
        ))),
        other => Ok(other.map(Duration::from_millis)),
    };
    Ok(Some(RingSettings {
        r,
        dht_replicas: section.dht_replicas.unwrap_or(r.min(3)),
        stabilize: ms("stabilize_ms", section.stabilize_ms)?,
        request_timeout: ms("request_timeout_ms", section.request_timeout_ms)?,
        check_every: ms("check_every_ms", section.check_every_ms)?.unwrap_or(DEFAULT_CHECK_EVERY),
    }))
}

/// First pass, file order: each step's time, label and one action key.
fn first_pass(
    tables: Vec<toml::Table>,
) -> Result<(Vec<RawStep>, HashMap<String, usize>), ScriptError> {
    let actions = variant_names::<ActionSpec>();
    let mut raw = Vec::with_capacity(tables.len());
    let mut labels = HashMap::new();
    for (index, mut table) in tables.into_iter().enumerate() {
        let at_ms = match table.remove("at_ms") {
            Some(toml::Value::Integer(ms)) if ms >= 0 => ms as u64,
            Some(other) => {
                return Err(ScriptError::new(format!(
                    "step #{index}: `at_ms` must be a whole number of milliseconds ≥ 0, not {other}"
                )));
            }
            None => {
                return Err(ScriptError::new(format!("step #{index}: missing `at_ms`")));
            }
        };
        let label = match table.remove("label") {
            Some(toml::Value::String(label)) => Some(label),
            Some(other) => {
                return Err(ScriptError::new(format!(
                    "{}: `label` must be a string, not {other}",
                    step_name(index, None, at_ms)
                )));
            }
            None => None,
        };
        if let Some(label) = &label
            && let Some(first) = labels.insert(label.clone(), index)
        {
            return Err(ScriptError::new(format!(
                "{}: label \"{label}\" is already step #{first}'s",
                step_name(index, None, at_ms)
            )));
        }
        let name = step_name(index, label.as_deref(), at_ms);
        let mut entries = table.into_iter();
        let (key, value) = match (entries.next(), entries.next()) {
            (Some(entry), None) => entry,
            (None, _) => {
                return Err(ScriptError::new(format!(
                    "{name}: no action (expected one of {})",
                    list(actions)
                )));
            }
            (Some((a, _)), Some((b, _))) => {
                let known = [&a, &b].iter().all(|k| actions.contains(&k.as_str()));
                return Err(ScriptError::new(if known {
                    format!("{name}: both `{a}` and `{b}`; one action per step")
                } else {
                    let unknown = if actions.contains(&a.as_str()) { b } else { a };
                    format!(
                        "{name}: unknown action `{unknown}` (expected one of {})",
                        list(actions)
                    )
                }));
            }
        };
        if !actions.contains(&key.as_str()) {
            return Err(ScriptError::new(format!(
                "{name}: unknown action `{key}` (expected one of {})",
                list(actions)
            )));
        }
        raw.push(RawStep {
            index,
            at_ms,
            label,
            key,
            value,
        });
    }
    Ok((raw, labels))
}
