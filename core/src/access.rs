//! Who may do what on which channel (PROTOCOL.md section 12): the node's
//! namespaces, each with a rule per operation, and the grants a token
//! carries. Decided on the node that holds the connection, on every request,
//! the same way on every runtime.

use std::fmt;

use serde_json::Value;

use crate::envelope::{Channel, MAX_CHANNEL_CHARS};

/// A channel name in which `*` matches any run of characters, none
/// included: `chat:*`, `*`, `org:*:feed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelPattern(Box<str>);

impl ChannelPattern {
    /// A pattern of 1 to 128 characters of the channel alphabet and `*`;
    /// otherwise why not.
    pub fn new(pattern: &str) -> Result<ChannelPattern, String> {
        let chars = pattern.chars().count();
        if chars == 0 || chars > MAX_CHANNEL_CHARS {
            return Err(format!(
                "a channel pattern has 1 to {MAX_CHANNEL_CHARS} characters"
            ));
        }
        let literal = pattern.replace('*', "a");
        if Channel::new(&literal).is_err() {
            return Err(format!(
                "{pattern:?} holds a character that no channel name has \
                 (names use A-Z a-z 0-9 _ - : . @ /, patterns also *)"
            ));
        }
        Ok(ChannelPattern(pattern.into()))
    }

    /// Whether `channel` matches: every literal piece in order, the first
    /// at the start and the last at the end.
    pub fn matches(&self, channel: &str) -> bool {
        let mut pieces = self.0.split('*');
        let first = pieces.next().unwrap_or_default();
        let Some(mut rest) = channel.strip_prefix(first) else {
            return false;
        };
        let mut pieces = pieces.peekable();
        if pieces.peek().is_none() {
            return rest.is_empty();
        }
        while let Some(piece) = pieces.next() {
            if pieces.peek().is_none() {
                return rest.ends_with(piece);
            }
            match rest.find(piece) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
        true
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a client may ask to do on a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `subscribe` (receive its publications and presence changes).
    Subscribe,
    /// `publish`.
    Publish,
    /// `presence` (ask who is there).
    Presence,
    /// Recover missed publications: `subscribe` with `since`.
    History,
}

impl Operation {
    /// Every operation, in the order of the configuration keys.
    pub const ALL: [Operation; 4] = [
        Operation::Subscribe,
        Operation::Publish,
        Operation::Presence,
        Operation::History,
    ];

    /// The name used in namespaces and in a token's `channels` claim.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Subscribe => "subscribe",
            Operation::Publish => "publish",
            Operation::Presence => "presence",
            Operation::History => "history",
        }
    }

    /// The operation of a name, if any.
    pub fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.name() == name)
    }

    /// Whether a namespace may give this operation `rule`: only publish,
    /// presence and history can be left to the channel's subscribers, and
    /// presence and history are never a backend's decision.
    pub fn takes(self, rule: Rule) -> bool {
        match rule {
            Rule::Subscribers => self != Operation::Subscribe,
            Rule::Backend => matches!(self, Operation::Subscribe | Operation::Publish),
            Rule::Authenticated | Rule::Token | Rule::Nobody => true,
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// Who may perform one operation on the channels of a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Every authenticated connection.
    Authenticated,
    /// Connections subscribed to the channel (publish, presence, history).
    Subscribers,
    /// Connections whose token grants it in its `channels` claim.
    Token,
    /// The application, per request (subscribe and publish).
    Backend,
    /// No client; the HTTP API still publishes.
    Nobody,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 5] = [
        Rule::Authenticated,
        Rule::Subscribers,
        Rule::Token,
        Rule::Backend,
        Rule::Nobody,
    ];

    /// The name used in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Authenticated => "authenticated",
            Rule::Subscribers => "subscribers",
            Rule::Token => "token",
            Rule::Backend => "backend",
            Rule::Nobody => "nobody",
        }
    }

    /// The rule of a name, if any.
    pub fn from_name(name: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|rule| rule.name() == name)
    }
}

/// The rules of the channels that match `pattern`. A node's namespaces are
/// tried in order; the first match governs the channel, and a channel that
/// none matches is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    /// The channels governed.
    pub pattern: ChannelPattern,
    /// Who may subscribe.
    pub subscribe: Rule,
    /// Who may publish.
    pub publish: Rule,
    /// Who may ask for presence.
    pub presence: Rule,
    /// Who may recover history with `since`.
    pub history: Rule,
}

impl Namespace {
    /// A namespace in which every authenticated connection may do
    /// everything: development, and the open behaviour of `--dev`.
    pub fn open(pattern: ChannelPattern) -> Namespace {
        Namespace {
            pattern,
            subscribe: Rule::Authenticated,
            publish: Rule::Authenticated,
            presence: Rule::Authenticated,
            history: Rule::Authenticated,
        }
    }

    /// The rule of `op`.
    pub fn rule(&self, op: Operation) -> Rule {
        match op {
            Operation::Subscribe => self.subscribe,
            Operation::Publish => self.publish,
            Operation::Presence => self.presence,
            Operation::History => self.history,
        }
    }
}

/// What a token grants: operations per channel pattern, from its
/// `channels` claim. Consulted by namespaces whose rule is
/// [`Rule::Token`]; no claim grants nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants(Box<[(ChannelPattern, u8)]>);

impl Grants {
    /// The grants of a `channels` claim:
    /// `{"<pattern>": ["subscribe", "publish", "presence", "history"], ...}`.
    /// Anything else (an unknown operation, a bad pattern, another shape)
    /// is an error, so that a malformed token is refused rather than read
    /// as granting less or more than its issuer meant.
    pub fn from_claim(claim: &Value) -> Result<Grants, String> {
        let Value::Object(entries) = claim else {
            return Err("the channels claim must be an object".into());
        };
        let mut grants = Vec::with_capacity(entries.len());
        for (pattern, ops) in entries {
            let pattern = ChannelPattern::new(pattern)?;
            let Value::Array(ops) = ops else {
                return Err(format!("the grant of {pattern} must be a list"));
            };
            let mut bits = 0;
            for op in ops {
                let op = op
                    .as_str()
                    .and_then(Operation::from_name)
                    .ok_or_else(|| format!("unknown operation {op} in the grant of {pattern}"))?;
                bits |= op.bit();
            }
            grants.push((pattern, bits));
        }
        Ok(Grants(grants.into()))
    }

    /// Grants of `ops` on each pattern: for embedders that decide tokens
    /// their own way, and for tests.
    pub fn new<'a>(entries: impl IntoIterator<Item = (ChannelPattern, &'a [Operation])>) -> Grants {
        Grants(
            entries
                .into_iter()
                .map(|(pattern, ops)| (pattern, ops.iter().fold(0, |bits, op| bits | op.bit())))
                .collect(),
        )
    }

    /// Whether any pattern that matches `channel` grants `op`.
    pub fn allows(&self, channel: &str, op: Operation) -> bool {
        self.0
            .iter()
            .any(|(pattern, bits)| bits & op.bit() != 0 && pattern.matches(channel))
    }
}

/// The answer to one request, before the application is asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Allowed,
    Forbidden,
    /// The rule is `backend`: the application decides.
    Ask,
}

/// What the node knows of the connection asking.
pub(crate) struct Asker<'a> {
    pub(crate) user: &'a str,
    pub(crate) grants: &'a Grants,
    pub(crate) subscribed: bool,
    /// The application already allowed this request (rule `backend`).
    pub(crate) allowed_by_application: bool,
}

/// Decides `op` on `channel` for `asker` under `namespaces`. A private
/// `user:<id>` channel is the built-in rule, before any namespace: its user
/// may subscribe, recover and see presence there; no client publishes.
pub(crate) fn decide(
    namespaces: &[Namespace],
    asker: &Asker<'_>,
    channel: &Channel,
    op: Operation,
) -> Access {
    if let Some(owner) = channel.private_user() {
        let allowed = op != Operation::Publish && owner == asker.user;
        return if allowed {
            Access::Allowed
        } else {
            Access::Forbidden
        };
    }
    let Some(namespace) = namespaces
        .iter()
        .find(|namespace| namespace.pattern.matches(channel.as_str()))
    else {
        return Access::Forbidden;
    };
    let allowed = match namespace.rule(op) {
        Rule::Authenticated => true,
        Rule::Subscribers => asker.subscribed,
        Rule::Token => asker.grants.allows(channel.as_str(), op),
        Rule::Backend if asker.allowed_by_application => true,
        Rule::Backend => return Access::Ask,
        Rule::Nobody => false,
    };
    if allowed {
        Access::Allowed
    } else {
        Access::Forbidden
    }
}

#[cfg(test)]
mod tests;
