//! What a run reports: one JSON object for scripts, one paragraph for
//! people.

use std::io::Write;

use serde_json::{Map, Value};

/// The outcome of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The scenario's figures, including `"scenario"` itself.
    pub fields: Map<String, Value>,
    /// The same figures in a sentence or two.
    pub summary: String,
}

impl Report {
    /// A report for `scenario` with no figures yet.
    pub fn new(scenario: &str) -> Report {
        let mut fields = Map::new();
        fields.insert("scenario".into(), scenario.into());
        Report {
            fields,
            summary: String::new(),
        }
    }

    /// Adds one figure.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Report {
        self.fields.insert(key.into(), value.into());
        self
    }

    /// A figure, for tests and summaries.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    /// Prints the JSON line on stdout (with `"peer"` when given) and the
    /// summary on stderr.
    pub fn print(&self, peer: Option<&str>) {
        let mut fields = self.fields.clone();
        if let Some(peer) = peer {
            fields.insert("peer".into(), peer.into());
        }
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{}", Value::Object(fields));
        let _ = stdout.flush();
        let label = peer.map_or_else(String::new, |peer| format!("[{peer}] "));
        eprintln!("{label}{}", self.summary);
    }
}

/// A float rounded to one decimal, for figures that need no more.
pub fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}
