//! Where a command's words go. The result — `status`'s table, `audit`'s rows,
//! `plan`'s closing block, `validate`'s verdicts — goes to stdout, so `status > f`
//! and `audit | grep rotate` capture it; progress, warnings and errors go to
//! stderr. With `--output json`, stdout carries exactly one JSON object whatever
//! happens (the result, or the exit code with the errors), and the human text
//! moves to stderr for whoever is watching.

use crate::engine::Exit;
use serde_json::{json, Value};
use std::fmt::Display;
use std::io::Write;
use std::sync::Mutex;

pub struct Out {
    json: bool,
    object: Mutex<Option<Value>>,
    errors: Mutex<Vec<String>>,
}

impl Out {
    pub fn new(json: bool) -> Out {
        Out {
            json,
            object: Mutex::new(None),
            errors: Mutex::new(Vec::new()),
        }
    }

    /// Whether stdout is reserved for the one JSON object.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// One line of the result.
    pub fn result(&self, line: impl Display) {
        if !self.json {
            println!("{line}");
        } else if !crate::report::log::json_only() {
            eprintln!("{line}");
        }
    }

    /// Where a block of the result is written.
    pub fn result_writer(&self) -> Box<dyn Write> {
        if !self.json {
            Box::new(std::io::stdout())
        } else if !crate::report::log::json_only() {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::sink())
        }
    }

    /// An error or warning, on stderr; errors are also the JSON object's `errors`
    /// when the command has no result to print.
    pub fn error(&self, msg: impl Display) {
        let msg = msg.to_string();
        if crate::report::log::json_only() {
            tracing::error!(target: "vsync_orchestrate::commands", "{msg}");
        } else {
            eprintln!("{msg}");
        }
        lock(&self.errors).push(msg);
    }

    /// The JSON result. Set once by the command; `finish` prints it.
    pub fn object(&self, v: Value) {
        *lock(&self.object) = Some(v);
    }

    /// Prints the one JSON object under `--output json`: the command's result, or
    /// `{exit_code, outcome, errors}` when it ended before having one. The exit
    /// code in it is always the process's.
    pub fn finish(&self, exit: Exit) {
        if !self.json {
            return;
        }
        let errors = std::mem::take(&mut *lock(&self.errors));
        let mut v = lock(&self.object)
            .take()
            .unwrap_or_else(|| json!({ "outcome": exit.meaning() }));
        if let Some(map) = v.as_object_mut() {
            map.insert("exit_code".into(), exit.code().into());
            if !errors.is_empty() && !map.contains_key("errors") {
                map.insert("errors".into(), errors.into());
            }
        }
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&v).expect("a JSON value serialises")
        );
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
