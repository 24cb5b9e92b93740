//! One step on every host at once, and its outcome as one result.
//!
//! Both adapters report a fleet's failures through [`combine_errors`], so a failed
//! step reads the same whichever adapter ran it: how many hosts failed, each one
//! named with its own reason, and the kind that says what to do about it.

use crate::shell::RemoteShell;
use futures_util::future::join_all;
use std::future::Future;
use std::sync::Arc;
use vsync_orchestrate_api::{Error, ErrorKind, Result};

/// Runs `f` on every host concurrently, keeping each host's result under its label:
/// a slow or failing host neither delays nor hides the others' answers.
pub(crate) async fn each<'a, T, F, Fut>(
    hosts: &'a [Arc<dyn RemoteShell>],
    f: F,
) -> Vec<(String, Result<T>)>
where
    F: Fn(&'a dyn RemoteShell) -> Fut,
    Fut: Future<Output = Result<T>> + 'a,
{
    let futs = hosts.iter().map(|h| {
        let label = h.label().to_string();
        let fut = f(h.as_ref());
        async move { (label, fut.await) }
    });
    join_all(futs).await
}

/// `Ok` when the step succeeded on every host; otherwise one error naming each
/// host where it failed.
pub(crate) fn all_hosts(what: &str, results: Vec<(String, Result<()>)>) -> Result<()> {
    let total = results.len();
    let errs: Vec<_> = results
        .into_iter()
        .filter_map(|(l, r)| r.err().map(|e| (l, e)))
        .collect();
    if errs.is_empty() {
        return Ok(());
    }
    let n = total - errs.len();
    Err(combine_errors(what, errs, n))
}

/// One error for a step that failed on some hosts, naming each of them. Its kind is
/// the first that is not `Temporary`: one host's lasting fault outranks another's
/// passing one, since retrying would not fix it.
pub(crate) fn combine_errors(what: &str, errs: Vec<(String, Error)>, succeeded: usize) -> Error {
    let total = errs.len() + succeeded;
    let kind = errs
        .iter()
        .map(|(_, e)| e.kind())
        .find(|k| *k != ErrorKind::Temporary)
        .unwrap_or(ErrorKind::Temporary);
    let names: Vec<&str> = errs.iter().map(|(l, _)| l.as_str()).collect();
    let details: Vec<String> = errs
        .iter()
        .map(|(l, e)| {
            let c = e.chain();
            let prefix = format!("{}: ", e.kind());
            let m = c.strip_prefix(&prefix).unwrap_or(&c).to_string();
            if m.contains(l.as_str()) {
                m
            } else {
                format!("{l}: {m}")
            }
        })
        .collect();
    Error::new(
        kind,
        format!(
            "{what} failed on {} of {total} host{} ({}): {}",
            errs.len(),
            if total == 1 { "" } else { "s" },
            names.join(", "),
            details.join("; ")
        ),
    )
}
