//! The `vercel` store: the passphrase is a project environment variable.
//!
//! * stage: a second variable, `<key>_NEXT` (same target and branch), of type
//!   `encrypted` so it can be read back by `resume`; its comment carries the run
//!   id, which is how a repeated stage (another process) finds it;
//! * activate: one PATCH of the real variable with the new value and the type it
//!   has now (read just before, re-sent as `vercel env update` does, so a
//!   sensitive variable stays sensitive); the comment records the run;
//! * tidy (after T1) and discard: delete `<key>_NEXT`.
//!
//! A sensitive variable cannot be read back (Vercel: "cannot be decrypted once
//! created"), so with `sensitive = true` (the default) `read_current` is `None`
//! and the old passphrase comes from the plan's other source; `read_staged` works
//! because the staged variable is readable.

use crate::api::{seg, Api, DEFAULT_TOKEN_ENV};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::Duration;
use vsync_orchestrate_api::{
    async_trait, Delivery, Error, ErrorKind, Passphrase, Preflight, Result, RunId, SecretStore,
    Staged, StoreCapabilities, Target,
};
use vsync_orchestrate_http::Method;

pub(crate) const KIND: &str = "vercel";

/// How every comment this tool writes starts: a variable carrying it was written
/// by vsync-orchestrate, and the rest names the run.
pub const MARKER_PREFIX: &str = "vsync-orchestrate run ";

fn staged_marker(run: &RunId) -> String {
    format!("{MARKER_PREFIX}{run} (staged)")
}

fn active_marker(run: &RunId) -> String {
    format!("{MARKER_PREFIX}{run}")
}

/// A Vercel environment (`target`).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Deserialize,
    serde::Serialize,
    vsync_orchestrate_api::schemars::JsonSchema,
)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(rename_all = "snake_case")]
pub enum VercelTarget {
    #[default]
    Production,
    Preview,
    Development,
}

impl VercelTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            VercelTarget::Production => "production",
            VercelTarget::Preview => "preview",
            VercelTarget::Development => "development",
        }
    }
}

/// The plan's `[[store]] type = "vercel"` table.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Deserialize,
    serde::Serialize,
    vsync_orchestrate_api::schemars::JsonSchema,
)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(deny_unknown_fields)]
pub struct VercelStoreConfig {
    /// The project's name or id (`prj_…`).
    pub project: String,
    /// The team's id (`team_…`); unset for a personal account.
    #[serde(default)]
    pub team_id: Option<String>,
    /// The variable apps read (default `VSYNC_PASSPHRASE`).
    #[serde(default = "VercelStoreConfig::default_key")]
    pub key: String,
    /// Which environment's entry (default `production`).
    #[serde(default)]
    pub target: VercelTarget,
    /// A preview entry that applies to one git branch only.
    #[serde(default)]
    pub git_branch: Option<String>,
    /// The variable is sensitive (default): its value cannot be read back.
    #[serde(default = "VercelStoreConfig::default_sensitive")]
    pub sensitive: bool,
    /// The staging variable (default `<key>_NEXT`).
    #[serde(default)]
    pub staged_key: Option<String>,
    /// The environment variable holding the API token (default `VERCEL_TOKEN`).
    #[serde(default = "VercelStoreConfig::default_token_env")]
    pub token_env: String,
    /// Another API base (a test fake); normally unset.
    #[serde(default)]
    pub api_base: Option<String>,
    /// One request attempt (default 30 s).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
}

impl VercelStoreConfig {
    fn default_key() -> String {
        "VSYNC_PASSPHRASE".to_owned()
    }
    fn default_sensitive() -> bool {
        true
    }
    fn default_token_env() -> String {
        DEFAULT_TOKEN_ENV.to_owned()
    }

    /// A minimal table for `project`, everything else defaulted.
    pub fn new(project: impl Into<String>) -> Self {
        VercelStoreConfig {
            project: project.into(),
            team_id: None,
            key: Self::default_key(),
            target: VercelTarget::Production,
            git_branch: None,
            sensitive: true,
            staged_key: None,
            token_env: Self::default_token_env(),
            api_base: None,
            timeout: None,
        }
    }

    pub fn staged_key(&self) -> String {
        self.staged_key
            .clone()
            .unwrap_or_else(|| format!("{}_NEXT", self.key))
    }
}

/// One entry of `GET /v10/projects/{idOrName}/env` (or of the single read).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvEntry {
    id: String,
    key: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    target: TargetList,
    #[serde(default)]
    git_branch: Option<String>,
    #[serde(default)]
    custom_environment_ids: Vec<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    updated_at: Option<i64>,
}

/// `target` is a list, or one string on older entries.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
enum TargetList {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl TargetList {
    fn contains(&self, t: &str) -> bool {
        match self {
            TargetList::None => false,
            TargetList::One(s) => s == t,
            TargetList::Many(v) => v.iter().any(|s| s == t),
        }
    }
}

#[derive(Deserialize)]
struct EnvList {
    #[serde(default)]
    envs: Vec<EnvEntry>,
}

/// `GET /v1/projects/{idOrName}/env/{id}`: the entry with its value, when it can
/// be decrypted.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvValue {
    #[serde(flatten)]
    entry: EnvEntry,
    #[serde(default)]
    decrypted: Option<bool>,
    #[serde(default)]
    value: Option<String>,
}

/// What a stage records besides the staged variable's id.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
struct StageRecord {
    /// The id of the real variable's entry, which activation overwrites.
    live_id: String,
    staged_key: String,
}

/// The new value held between stage and activate in this process, so activation
/// is one request (a fresh process reads the staged variable first).
struct Held {
    run: RunId,
    staged_id: String,
    value: Passphrase,
}

/// A Vercel project environment variable.
pub struct VercelStore {
    cfg: VercelStoreConfig,
    api: Api,
    held: Mutex<Option<Held>>,
}

impl std::fmt::Debug for VercelStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VercelStore")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl VercelStore {
    pub fn new(cfg: VercelStoreConfig) -> Result<Self> {
        if let Some(f) = crate::config::store_findings(&cfg)
            .into_iter()
            .find(|f| f.severity == vsync_orchestrate_api::Severity::Error)
        {
            return Err(Error::invalid_config(format!("vercel: {}", f.message)));
        }
        let api = Api::new(
            cfg.api_base.as_deref(),
            cfg.team_id.as_deref(),
            &cfg.token_env,
            cfg.timeout.unwrap_or(Duration::from_secs(30)),
        );
        Ok(VercelStore {
            cfg,
            api,
            held: Mutex::default(),
        })
    }

    fn where_(&self) -> String {
        match &self.cfg.git_branch {
            Some(b) => format!(
                "{} (branch {b}) in {}",
                self.cfg.target.as_str(),
                self.cfg.project
            ),
            None => format!("{} in {}", self.cfg.target.as_str(), self.cfg.project),
        }
    }

    fn ctx(&self, e: Error) -> Error {
        e.context(format!("vercel {}", self.describe().name))
    }

    fn env_path(&self) -> String {
        format!("/v10/projects/{}/env", seg(&self.cfg.project))
    }

    async fn list(&self) -> Result<Vec<EnvEntry>> {
        let l: EnvList = self
            .api
            .json(
                Method::GET,
                &self.env_path(),
                &[],
                None,
                "listing the project's environment variables",
                None,
            )
            .await?;
        Ok(l.envs)
    }

    /// The entry of `key` this table means: the configured target, the configured
    /// branch (or none), not a custom environment. Several is ambiguous.
    fn select<'a>(&self, envs: &'a [EnvEntry], key: &str) -> Result<Option<&'a EnvEntry>> {
        let t = self.cfg.target.as_str();
        let hits: Vec<&EnvEntry> = envs
            .iter()
            .filter(|e| e.key == key && e.target.contains(t))
            .filter(|e| e.custom_environment_ids.is_empty())
            .filter(|e| {
                e.git_branch.as_deref().filter(|b| !b.is_empty()) == self.cfg.git_branch.as_deref()
            })
            .collect();
        match hits.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            many => Err(Error::invalid_config(format!(
                "{key} has {} entries for {} ({}): Vercel should not allow that; remove the \
                 duplicates",
                many.len(),
                self.where_(),
                many.iter()
                    .map(|e| e.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    fn live<'a>(&self, envs: &'a [EnvEntry]) -> Result<&'a EnvEntry> {
        self.select(envs, &self.cfg.key)?.ok_or_else(|| {
            let others: Vec<String> = envs
                .iter()
                .filter(|e| e.key == self.cfg.key)
                .map(|e| match &e.git_branch {
                    Some(b) if !b.is_empty() => format!("{:?} (branch {b})", e.target),
                    _ => format!("{:?}", e.target),
                })
                .collect();
            let hint = if others.is_empty() {
                String::new()
            } else {
                format!(
                    "; it exists for other targets: {}",
                    others.join(", ").replace(['[', ']', '"'], "")
                )
            };
            Error::not_found(format!(
                "no variable {} for {}{hint}",
                self.cfg.key,
                self.where_()
            ))
        })
    }

    /// One entry with its value, `None` where Vercel will not decrypt it.
    async fn read_one(&self, id: &str, what: &str) -> Result<(EnvEntry, Option<Passphrase>)> {
        let path = format!("/v1/projects/{}/env/{}", seg(&self.cfg.project), seg(id));
        let v: EnvValue = self
            .api
            .json(Method::GET, &path, &[], None, what, None)
            .await?;
        let readable = v.decrypted != Some(false) && v.entry.kind != "sensitive";
        let value = v.value.filter(|_| readable).map(Passphrase::new);
        Ok((v.entry, value))
    }

    async fn delete(&self, id: &str, what: &str) -> Result<bool> {
        let path = format!("/v9/projects/{}/env/{}", seg(&self.cfg.project), seg(id));
        let resp = self
            .api
            .call(Method::DELETE, &path, &[], None, what, None)
            .await?;
        if resp.status() == 404 {
            return Ok(false);
        }
        resp.error_for_status()?;
        Ok(true)
    }

    fn record(staged: &Staged) -> Result<StageRecord> {
        serde_json::from_value(staged.extra.clone()).map_err(|_| {
            Error::invalid_config(format!(
                "the journaled stage of {} does not name the variables it staged",
                staged.target
            ))
        })
    }

    /// The staged value: from this process's memory when it staged it, else read
    /// back from the staged variable (checked to be this run's).
    async fn staged_value(&self, staged: &Staged) -> Result<Passphrase> {
        if let Some(h) = self.held.lock().expect("poisoned").as_ref() {
            if h.run == staged.run && h.staged_id == staged.version {
                return Ok(h.value.clone());
            }
        }
        let (entry, value) = self
            .read_one(&staged.version, "reading the staged variable")
            .await?;
        if entry.comment.as_deref() != Some(staged_marker(&staged.run).as_str()) {
            return Err(Error::conflict(format!(
                "{} ({}) was not staged by run {}: someone else replaced it",
                entry.key, entry.id, staged.run
            )));
        }
        value.ok_or_else(|| {
            Error::unsupported(format!(
                "{} cannot be read back (it is sensitive): the team's policy may force \
                 sensitive variables; activate by hand",
                entry.key
            ))
        })
    }

    /// Whether the real variable already records this run's activation.
    async fn activated_by(&self, rec: &StageRecord, run: &RunId) -> Result<bool> {
        match self.read_one(&rec.live_id, "reading the variable").await {
            Ok((e, _)) => Ok(e.comment.as_deref() == Some(active_marker(run).as_str())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl SecretStore for VercelStore {
    fn describe(&self) -> Target {
        let mut name = format!(
            "{}:{}@{}",
            self.cfg.project,
            self.cfg.key,
            self.cfg.target.as_str()
        );
        if let Some(b) = &self.cfg.git_branch {
            name.push_str(&format!("#{b}"));
        }
        Target::new(KIND, name)
    }

    /// A sensitive variable cannot be read back; the staged one can. Either way a
    /// changed variable reaches new deployments only.
    fn capabilities(&self) -> StoreCapabilities {
        let c = if self.cfg.sensitive {
            let mut c = StoreCapabilities::WRITE_ONLY;
            c.read_staged = true;
            c
        } else {
            StoreCapabilities::ALL
        };
        c.delivered(Delivery::OnRedeploy)
    }

    async fn preflight(&self) -> Result<Preflight> {
        let envs = self.list().await.map_err(|e| self.ctx(e))?;
        let live = self.live(&envs).map_err(|e| self.ctx(e))?;
        let mut warnings = Vec::new();
        match (live.kind.as_str(), self.cfg.sensitive) {
            ("sensitive", false) => {
                return Err(self.ctx(Error::invalid_config(format!(
                    "{} is sensitive, so its value cannot be read back: set `sensitive = true` \
                     and give passphrase.old another source ({{ env = … }}, {{ file = … }})",
                    self.cfg.key
                ))))
            }
            ("plain" | "encrypted", true) => warnings.push(format!(
                "{} is {} (readable by the team); make it sensitive in the project settings, \
                 or set `sensitive = false` so the tool checks its value",
                self.cfg.key, live.kind
            )),
            ("secret" | "system", _) => {
                return Err(self.ctx(Error::unsupported(format!(
                    "{} is a {} variable, which this tool does not write",
                    self.cfg.key, live.kind
                ))))
            }
            _ => {}
        }
        let staged_key = self.cfg.staged_key();
        if let Some(s) = self.select(&envs, &staged_key).map_err(|e| self.ctx(e))? {
            let by = match s.comment.as_deref() {
                Some(c) if c.starts_with(MARKER_PREFIX) => {
                    format!("an earlier vsync-orchestrate run ({c}) staged it and did not finish")
                }
                _ => "it was not created by vsync-orchestrate".to_owned(),
            };
            return Err(self.ctx(Error::conflict(format!(
                "{staged_key} already exists for {}: {by}. Run `vsync-orchestrate resume PLAN` \
                 to finish that run, or `vsync-orchestrate run --clean-stale PLAN` to remove a \
                 variable an abandoned run left (one not written by this tool must be removed \
                 or renamed by hand, or choose another `staged_key`)",
                self.where_()
            ))));
        }
        if self.cfg.sensitive && live.kind == "sensitive" {
            warnings.push(format!(
                "{} is sensitive and cannot be read back: passphrase.old must come from the \
                 plan, and verify's health checks prove the switch",
                self.cfg.key
            ));
        }
        let updated = live
            .updated_at
            .map(|t| format!(", updated {}", crate::api::millis_ago(t)))
            .unwrap_or_default();
        Ok(Preflight {
            detail: format!(
                "{} ({}, {}{updated}); staging in {staged_key}",
                self.cfg.key, live.kind, live.id
            ),
            warnings,
            ..Default::default()
        })
    }

    async fn read_current(&self) -> Result<Option<Passphrase>> {
        if self.cfg.sensitive {
            return Ok(None);
        }
        let envs = self.list().await.map_err(|e| self.ctx(e))?;
        let id = self.live(&envs).map_err(|e| self.ctx(e))?.id.clone();
        let (_, value) = self
            .read_one(&id, "reading the variable")
            .await
            .map_err(|e| self.ctx(e))?;
        match value {
            Some(v) => Ok(Some(v)),
            None => Err(self.ctx(Error::invalid_config(format!(
                "{} cannot be read back (sensitive): set `sensitive = true`",
                self.cfg.key
            )))),
        }
    }

    async fn stage(&self, new: &Passphrase, run: &RunId) -> Result<Staged> {
        let envs = self.list().await.map_err(|e| self.ctx(e))?;
        let live = self.live(&envs).map_err(|e| self.ctx(e))?.clone();
        let staged_key = self.cfg.staged_key();
        let marker = staged_marker(run);
        let staged = |id: String| Staged {
            target: self.describe(),
            run: run.clone(),
            version: id,
            previous: Some(live.id.clone()),
            extra: json!(StageRecord {
                live_id: live.id.clone(),
                staged_key: staged_key.clone(),
            }),
        };
        let hold = |id: &str| {
            *self.held.lock().expect("poisoned") = Some(Held {
                run: run.clone(),
                staged_id: id.to_owned(),
                value: new.clone(),
            });
        };
        if let Some(existing) = self.select(&envs, &staged_key).map_err(|e| self.ctx(e))? {
            if existing.comment.as_deref() != Some(marker.as_str()) {
                return Err(self.ctx(Error::conflict(format!(
                    "{staged_key} already exists for {} and was not staged by run {run}",
                    self.where_()
                ))));
            }
            // This run staged it already (a retry, or an answer that was lost).
            let (_, value) = self
                .read_one(&existing.id, "reading the staged variable")
                .await
                .map_err(|e| self.ctx(e))?;
            return match value {
                Some(v) if v.same_as(new) => {
                    hold(&existing.id);
                    Ok(staged(existing.id.clone()))
                }
                _ => Err(self.ctx(Error::conflict(format!(
                    "{staged_key} was staged by run {run} with another value"
                )))),
            };
        }
        let mut body = json!({
            "key": staged_key,
            "value": new.expose(),
            "type": "encrypted",
            "target": [self.cfg.target.as_str()],
            "comment": marker,
        });
        if let Some(b) = &self.cfg.git_branch {
            body["gitBranch"] = json!(b);
        }
        let created: Value = self
            .api
            .json(
                Method::POST,
                &self.env_path(),
                &[("upsert", "true")],
                Some(&body),
                "creating the staged variable",
                None,
            )
            .await
            .map_err(|e| self.ctx(e))?;
        drop(body);
        // `created` is the entry, or a list of entries (one per target).
        let entry = match &created["created"] {
            Value::Array(a) => a.first().cloned(),
            Value::Object(_) => Some(created["created"].clone()),
            _ => None,
        }
        .and_then(|v| serde_json::from_value::<EnvEntry>(v).ok());
        let entry = match entry {
            Some(e) => e,
            None => {
                let envs = self.list().await.map_err(|e| self.ctx(e))?;
                self.select(&envs, &staged_key)
                    .map_err(|e| self.ctx(e))?
                    .cloned()
                    .ok_or_else(|| {
                        self.ctx(Error::failed(format!(
                            "{staged_key} was created but is not listed"
                        )))
                    })?
            }
        };
        if entry.kind == "sensitive" {
            // A team policy that makes every new variable sensitive: the staged
            // value could not be read back by `resume`, so refuse to rely on it.
            let _ = self.delete(&entry.id, "removing the staged variable").await;
            return Err(self.ctx(Error::unsupported(format!(
                "Vercel created {staged_key} as sensitive (a team policy?): it could not be \
                 read back to finish an interrupted run, so it was removed"
            ))));
        }
        hold(&entry.id);
        Ok(staged(entry.id))
    }

    async fn read_staged(&self, staged: &Staged) -> Result<Passphrase> {
        let rec = Self::record(staged).map_err(|e| self.ctx(e))?;
        match self.staged_value(staged).await {
            Ok(v) => Ok(v),
            // Tidied after activation: the real variable holds it, if readable.
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if self
                    .activated_by(&rec, &staged.run)
                    .await
                    .map_err(|e| self.ctx(e))?
                {
                    let (_, v) = self
                        .read_one(&rec.live_id, "reading the variable")
                        .await
                        .map_err(|e| self.ctx(e))?;
                    if let Some(v) = v {
                        return Ok(v);
                    }
                }
                Err(self.ctx(Error::not_found(format!(
                    "{} staged by run {} is gone (discarded, or removed after activation)",
                    rec.staged_key, staged.run
                ))))
            }
            Err(e) => Err(self.ctx(e)),
        }
    }

    async fn activate(&self, staged: &Staged) -> Result<()> {
        let rec = Self::record(staged).map_err(|e| self.ctx(e))?;
        let value = match self.staged_value(staged).await {
            Ok(v) => v,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // Activated and tidied already: a repeat is success.
                if self
                    .activated_by(&rec, &staged.run)
                    .await
                    .map_err(|e| self.ctx(e))?
                {
                    return Ok(());
                }
                return Err(self.ctx(e.context(format!(
                    "{} staged by run {} is gone",
                    rec.staged_key, staged.run
                ))));
            }
            Err(e) => return Err(self.ctx(e)),
        };
        // The entry's own `type`, read now and sent back as `vercel env update`
        // does (`util/env/update-env-record.ts`): nothing about a PATCH without
        // it is documented, and a type read at stage time may be stale.
        let (live, _) = self
            .read_one(&rec.live_id, "reading the variable")
            .await
            .map_err(|e| self.ctx(e))?;
        if live.kind.is_empty() {
            return Err(self.ctx(Error::failed(format!(
                "{} ({}): Vercel's answer names no type",
                live.key, live.id
            ))));
        }
        let body = json!({
            "value": value.expose(),
            "type": live.kind,
            "comment": active_marker(&staged.run),
        });
        let path = format!(
            "/v9/projects/{}/env/{}",
            seg(&self.cfg.project),
            seg(&rec.live_id)
        );
        let resp = self
            .api
            .call(
                Method::PATCH,
                &path,
                &[],
                Some(&body),
                "updating the variable",
                None,
            )
            .await;
        drop(body);
        resp.and_then(|r| r.error_for_status())
            .map_err(|e| self.ctx(e))?;
        Ok(())
    }

    async fn tidy(&self, staged: &Staged) -> Result<()> {
        let rec = Self::record(staged).map_err(|e| self.ctx(e))?;
        self.delete(&staged.version, "removing the staged variable")
            .await
            .map_err(|e| self.ctx(e.context(&rec.staged_key)))?;
        Ok(())
    }

    async fn discard(&self, staged: &Staged) -> Result<()> {
        {
            let mut held = self.held.lock().expect("poisoned");
            if held.as_ref().is_some_and(|h| h.staged_id == staged.version) {
                *held = None;
            }
        }
        // Only ever this run's variable: an id whose comment names another run (or
        // none) is left alone.
        let path = format!(
            "/v1/projects/{}/env/{}",
            seg(&self.cfg.project),
            seg(&staged.version)
        );
        let resp = self
            .api
            .call(
                Method::GET,
                &path,
                &[],
                None,
                "reading the staged variable",
                None,
            )
            .await
            .map_err(|e| self.ctx(e))?;
        if resp.status() == 404 {
            return Ok(());
        }
        let entry: EnvEntry = resp
            .error_for_status()
            .and_then(|r| r.json())
            .map_err(|e| self.ctx(e))?;
        if entry.comment.as_deref() != Some(staged_marker(&staged.run).as_str()) {
            return Err(self.ctx(Error::conflict(format!(
                "{} ({}) is not the variable run {} staged; left alone",
                entry.key, entry.id, staged.run
            ))));
        }
        self.delete(&staged.version, "removing the staged variable")
            .await
            .map_err(|e| self.ctx(e))?;
        Ok(())
    }

    async fn clean_stale(&self) -> Result<Option<String>> {
        let envs = self.list().await.map_err(|e| self.ctx(e))?;
        let staged_key = self.cfg.staged_key();
        let Some(s) = self.select(&envs, &staged_key).map_err(|e| self.ctx(e))? else {
            return Ok(None);
        };
        let ours = s
            .comment
            .as_deref()
            .is_some_and(|c| c.starts_with(MARKER_PREFIX));
        if !ours {
            return Err(self.ctx(Error::conflict(format!(
                "{staged_key} was not written by vsync-orchestrate: remove or rename it by hand"
            ))));
        }
        self.delete(&s.id, "removing the stale staged variable")
            .await
            .map_err(|e| self.ctx(e))?;
        Ok(Some(format!(
            "removed {staged_key} ({}) left by an abandoned run",
            s.comment.as_deref().unwrap_or("")
        )))
    }

    fn activate_hint(&self, staged: &Staged) -> Option<String> {
        let rec = Self::record(staged).ok()?;
        Some(format!(
            "in the Vercel project {} (Settings → Environment Variables, {}), copy the value \
             of {} into {} and save (keep it sensitive); then redeploy production",
            self.cfg.project,
            self.cfg.target.as_str(),
            rec.staged_key,
            self.cfg.key
        ))
    }
}
