//! The `gcp_secret_manager` store: the passphrase is a Secret Manager secret that
//! apps read through a version alias (`current`), staged by pointing a `pending`
//! alias at a new version and activated by moving the apps' alias.
//!
//! Secret Manager has no staging label, and `versions/latest` is simply the newest
//! version: with apps on `latest`, adding a version *is* activating it, before the
//! vault is rotated. Aliases are what make a staged version invisible, which is why
//! preflight refuses a secret that has none.

use std::collections::BTreeMap;
use std::time::Duration;

use google_cloud_secretmanager_v1::client::SecretManagerService;
use google_cloud_secretmanager_v1::model::{secret_version, Secret, SecretPayload};
use tokio::sync::OnceCell;
use vsync_orchestrate_api::{
    async_trait, Error, ErrorKind, Passphrase, Preflight, Result, RunId, SecretStore, Staged,
    StoreCapabilities, Target,
};

use crate::common::{
    client_logging_enabled, Auth, CredentialSource, SecretName, CLIENT_LOGGING_VAR,
};
use crate::crc32c::crc32c;
use crate::error::gax_error;

pub(crate) const KIND: &str = "gcp_secret_manager";
/// The alias a staged version carries until activation.
pub const PENDING_ALIAS: &str = "pending";
/// The alias activation leaves on the version apps had before (the way back).
pub const PREVIOUS_ALIAS: &str = "previous";

/// The plan's `[[store]] type = "gcp_secret_manager"` table.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    serde::Deserialize,
    serde::Serialize,
    vsync_orchestrate_api::schemars::JsonSchema,
)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(deny_unknown_fields)]
pub struct SecretManagerConfig {
    /// The full resource name, `projects/P/secrets/S` (or a regional
    /// `projects/P/locations/L/secrets/S`): the project is never guessed.
    pub secret: String,
    /// The alias apps read (`…/versions/current`); activation moves it.
    #[serde(default = "SecretManagerConfig::default_alias")]
    pub alias: String,
    /// Creates `alias` on the newest version at the first stage instead of
    /// refusing a secret that has none. Only for apps that already read the alias.
    #[serde(default)]
    pub create_alias: bool,
    /// A regional endpoint, an emulator or a test fake. Regional secrets default to
    /// their location's endpoint.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `"adc"` (default) or `"anonymous"` (emulators and fakes, with `endpoint`).
    #[serde(default)]
    pub credentials: CredentialSource,
    /// How long one attempt of a request may take (default 10 s): a stalled
    /// activation must not hold the window open.
    #[serde(default, rename = "timeout", with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub attempt_timeout: Option<Duration>,
}

impl SecretManagerConfig {
    pub const DEFAULT_ALIAS: &'static str = "current";
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    fn default_alias() -> String {
        Self::DEFAULT_ALIAS.to_owned()
    }

    /// A minimal table for `secret`, everything else defaulted.
    pub fn new(secret: impl Into<String>) -> Self {
        SecretManagerConfig {
            secret: secret.into(),
            alias: Self::default_alias(),
            create_alias: false,
            endpoint: None,
            credentials: CredentialSource::Adc,
            attempt_timeout: None,
        }
    }
}

/// Why an alias name cannot be used, if it cannot.
pub(crate) fn alias_problem(alias: &str) -> Option<String> {
    let valid = alias.len() <= 63
        && alias
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Some(format!(
            "alias {alias:?} is not a version alias name (a letter, then letters, digits, \
             `-` or `_`, at most 63 characters)"
        ));
    }
    // "You cannot use `Latest` or `New` (case-insensitive) as an alias name"
    // (https://cloud.google.com/secret-manager/docs/assign-alias-to-secret-version):
    // the service refuses the alias write, which would only show at the first stage.
    if alias.eq_ignore_ascii_case("latest") || alias.eq_ignore_ascii_case("new") {
        return Some(format!(
            "alias {alias:?} is reserved by Secret Manager (`latest` and `new`, in any \
             letter case, cannot name a version alias); name the apps' alias something \
             else (the default is \"current\"){}",
            if alias.eq_ignore_ascii_case("latest") {
                ", and have apps read it rather than `latest`, which serves a version the \
                 moment it is added"
            } else {
                ""
            }
        ));
    }
    if alias == PENDING_ALIAS || alias == PREVIOUS_ALIAS {
        return Some(format!(
            "alias {alias:?} is the one this store uses for the {} version; name the apps' \
             alias something else (the default is \"current\")",
            if alias == PENDING_ALIAS {
                "staged"
            } else {
                "previous"
            }
        ));
    }
    None
}

/// A Secret Manager secret as a [`SecretStore`], staged through version aliases.
///
/// * stage: a version holding the new bytes (reused when one already exists, since
///   AddSecretVersion takes no request token), then `pending → K` in one
///   etag-conditional write of the whole alias map;
/// * activate: `current → K`, `previous → old`, `pending` dropped, in one write
///   conditional on the etag and on `current` still being where staging found it;
/// * discard: `pending` dropped and the version disabled.
pub struct SecretManagerStore {
    cfg: SecretManagerConfig,
    name: SecretName,
    auth: Auth,
    client: OnceCell<SecretManagerService>,
}

impl std::fmt::Debug for SecretManagerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretManagerStore")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// The secret's alias map and the etag that guards writing it.
struct Snapshot {
    aliases: BTreeMap<String, i64>,
    etag: String,
    rotation: bool,
}

impl Snapshot {
    fn get(&self, alias: &str) -> Option<i64> {
        self.aliases.get(alias).copied()
    }
    fn aliased(&self, version: i64) -> impl Iterator<Item = &str> {
        self.aliases
            .iter()
            .filter(move |(_, v)| **v == version)
            .map(|(k, _)| k.as_str())
    }
}

/// A version's value and its number (`latest` and aliases resolve to one).
struct Accessed {
    number: i64,
    value: Passphrase,
}

fn number_of(version_name: &str) -> Option<i64> {
    version_name.rsplit('/').next()?.parse().ok()
}

fn parse_version(staged: &Staged) -> Result<i64> {
    staged.version.parse().map_err(|_| {
        Error::not_found(format!(
            "{:?} is not a Secret Manager version number",
            staged.version
        ))
    })
}

impl SecretManagerStore {
    /// A store with its own credentials (ADC or anonymous, as the table says).
    pub fn new(cfg: SecretManagerConfig) -> Result<Self> {
        let auth = Auth::new(cfg.credentials);
        Self::with_auth(cfg, auth)
    }

    pub(crate) fn with_auth(cfg: SecretManagerConfig, auth: Auth) -> Result<Self> {
        let name = SecretName::parse(&cfg.secret).ok_or_else(|| {
            Error::invalid_config(format!(
                "secret {:?} is not a full resource name like \
                 \"projects/my-project/secrets/my-secret\"",
                cfg.secret
            ))
        })?;
        if let Some(p) = alias_problem(&cfg.alias) {
            return Err(Error::invalid_config(p));
        }
        if let Some(m) = crate::common::check_endpoint(cfg.endpoint.as_deref()) {
            return Err(Error::invalid_config(m));
        }
        Ok(SecretManagerStore {
            cfg,
            name,
            auth,
            client: OnceCell::new(),
        })
    }

    /// The plan's endpoint, else the regional one for a regional secret, else the
    /// client's global default.
    fn endpoint(&self) -> Option<String> {
        self.cfg.endpoint.clone().or_else(|| {
            self.name
                .location
                .as_ref()
                .map(|l| format!("https://secretmanager.{l}.rep.googleapis.com"))
        })
    }

    /// Built on first use: see `common` for why not in `build`.
    async fn client(&self) -> Result<&SecretManagerService> {
        if client_logging_enabled() {
            return Err(Error::unsupported(format!(
                "{CLIENT_LOGGING_VAR}=true makes the Google client libraries log every \
                 request and response, and Secret Manager responses hold the passphrase; \
                 unset it for this run"
            )));
        }
        self.client
            .get_or_try_init(|| async {
                let mut b = SecretManagerService::builder()
                    .with_credentials(self.auth.credentials().await?)
                    .with_retry_policy(crate::common::retry_policy())
                    .with_attempt_timeout(
                        self.cfg
                            .attempt_timeout
                            .unwrap_or(SecretManagerConfig::DEFAULT_TIMEOUT),
                    );
                if let Some(e) = self.endpoint() {
                    b = b.with_endpoint(e);
                }
                b.build().await.map_err(|e| {
                    Error::temporary(format!("Secret Manager client could not be set up: {e}"))
                })
            })
            .await
    }

    fn ctx(&self, e: Error) -> Error {
        e.context(format!("secret {}", self.cfg.secret))
    }

    fn version_name(&self, version: &str) -> String {
        format!("{}/versions/{version}", self.cfg.secret)
    }

    async fn read_secret(&self) -> Result<Snapshot> {
        let s = self
            .client()
            .await?
            .get_secret()
            .set_name(&self.cfg.secret)
            .send()
            .await
            .map_err(|e| self.ctx(gax_error("GetSecret", &e)))?;
        Ok(Snapshot {
            aliases: s.version_aliases.into_iter().collect(),
            etag: s.etag,
            rotation: s.rotation.is_some(),
        })
    }

    /// One version's value, by number, alias or `latest`. The payload checksum is
    /// verified; a trailing newline (what `echo … | gcloud secrets versions add`
    /// leaves) is not part of the passphrase, the rule of `VSYNC_PASSPHRASE_FILE`.
    async fn access(&self, version: &str) -> Result<Accessed> {
        let out = self
            .client()
            .await?
            .access_secret_version()
            .set_name(self.version_name(version))
            .send()
            .await
            .map_err(|e| self.ctx(gax_error("AccessSecretVersion", &e)))?;
        let number = number_of(&out.name).ok_or_else(|| {
            self.ctx(Error::failed(format!(
                "AccessSecretVersion for {version} named no version number"
            )))
        })?;
        let payload = out.payload.unwrap_or_default();
        if let Some(sum) = payload.data_crc32c {
            if sum != i64::from(crc32c(&payload.data)) {
                return Err(self.ctx(Error::temporary(format!(
                    "version {number}: the payload does not match its CRC32C (damaged in \
                     transit)"
                ))));
            }
        }
        let text = String::from_utf8(payload.data.to_vec()).map_err(|_| {
            self.ctx(Error::unsupported(format!(
                "version {number} is not UTF-8 text, so it cannot be a vsync passphrase"
            )))
        })?;
        Ok(Accessed {
            number,
            value: Passphrase::from_file_contents(text),
        })
    }

    /// Replaces the whole alias map, only if the secret still has `etag`.
    /// Secret Manager answers a stale etag with `400 FAILED_PRECONDITION`
    /// (https://cloud.google.com/secret-manager/docs/etags), the code it also uses
    /// for other refusals, so that answer is decided by reading the secret: a moved
    /// etag is a retryable conflict (the next attempt of the step reads the map
    /// again), anything else the refusal itself. `ABORTED`, the AIP-154 answer other
    /// Google APIs give, is a conflict outright.
    async fn write_aliases(&self, aliases: &BTreeMap<String, i64>, etag: &str) -> Result<()> {
        let secret = Secret::new()
            .set_name(&self.cfg.secret)
            .set_version_aliases(aliases.clone())
            .set_etag(etag);
        let sent = self
            .client()
            .await?
            .update_secret()
            .set_secret(secret)
            .set_update_mask(google_cloud_wkt::FieldMask::default().set_paths(["version_aliases"]))
            .send()
            .await;
        let Err(e) = sent else { return Ok(()) };
        let err = gax_error("UpdateSecret", &e);
        let conflict = || {
            self.ctx(
                Error::conflict(
                    "the secret's aliases changed since they were read (etag mismatch); \
                     read again and retry",
                )
                .retryable(),
            )
        };
        match err.kind() {
            ErrorKind::Conflict => Err(conflict()),
            ErrorKind::Unsupported => match self.read_secret().await {
                Ok(now) if now.etag != etag => Err(conflict()),
                _ => Err(self.ctx(err)),
            },
            _ => Err(self.ctx(err)),
        }
    }

    /// The version's state; `None` when it does not exist.
    async fn version_state(&self, number: i64) -> Result<Option<secret_version::State>> {
        match self
            .client()
            .await?
            .get_secret_version()
            .set_name(self.version_name(&number.to_string()))
            .send()
            .await
        {
            Ok(v) => Ok(Some(v.state)),
            Err(e) => {
                let err = gax_error("GetSecretVersion", &e);
                if err.kind() == ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(self.ctx(err))
                }
            }
        }
    }

    /// Disables `number` unless an alias still points at it. Idempotent: a
    /// version already disabled, destroyed or gone is what was asked for.
    async fn disable_unless_aliased(&self, snap: &Snapshot, number: i64) -> Result<()> {
        if snap.aliased(number).next().is_some() {
            return Ok(()); // someone points apps at it: never take it away from them
        }
        let sent = self
            .client()
            .await?
            .disable_secret_version()
            .set_name(self.version_name(&number.to_string()))
            .send()
            .await;
        let Err(e) = sent else { return Ok(()) };
        let err = gax_error("DisableSecretVersion", &e);
        match self.version_state(number).await? {
            None => Ok(()),
            Some(secret_version::State::Disabled | secret_version::State::Destroyed) => Ok(()),
            Some(_) => Err(self.ctx(err)),
        }
    }

    /// The refusal for a secret without the apps' alias, with the command that
    /// creates it (on `latest`, the version apps read today, when it can be read).
    fn missing_alias(&self, latest: Option<i64>) -> Error {
        let alias = &self.cfg.alias;
        let n = latest.map_or_else(|| "<N>".to_owned(), |n| n.to_string());
        let mut msg = format!(
            "the secret has no version alias `{alias}`, so apps can only read \
             `versions/latest`; with `latest`, adding the new version hands it to every \
             app that starts before the vault is rotated. Point `{alias}` at the version \
             apps use now and make every app read `{}`: \
             gcloud secrets update {} --update-version-aliases={alias}={n}",
            self.version_name(alias),
            self.name.gcloud_args(),
        );
        if latest.is_none() {
            msg.push_str(&format!(
                " (<N>: the newest enabled version, from `gcloud secrets versions list {} \
                 --filter=state:enabled --limit=1`)",
                self.name.gcloud_args()
            ));
        }
        msg.push_str(
            ". If the apps already read the alias, `create_alias = true` in this [[store]] \
             creates it at the first stage",
        );
        self.ctx(Error::unsupported(msg))
    }

    /// The version apps read now: the alias, or — with `create_alias` and no alias
    /// yet — `latest`, which the first stage turns into the alias.
    async fn current_of(&self, snap: &Snapshot) -> Result<(Option<i64>, Accessed)> {
        match snap.get(&self.cfg.alias) {
            Some(n) => Ok((Some(n), self.access(&n.to_string()).await?)),
            None => {
                let latest = self.access("latest").await;
                if !self.cfg.create_alias {
                    return Err(self.missing_alias(latest.ok().map(|a| a.number)));
                }
                Ok((None, latest?))
            }
        }
    }

    /// `pending` on a version apps do not read: an earlier run's unfinished stage.
    fn stale_pending(&self, snap: &Snapshot) -> Option<i64> {
        snap.get(PENDING_ALIAS)
            .filter(|p| Some(*p) != snap.get(&self.cfg.alias))
    }
}

#[async_trait]
impl SecretStore for SecretManagerStore {
    /// Every version can be read back by number (AccessSecretVersion).
    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::ALL
    }

    fn describe(&self) -> Target {
        Target::new(KIND, &self.cfg.secret)
    }

    async fn preflight(&self) -> Result<Preflight> {
        let snap = self.read_secret().await?;
        let mut warnings = Vec::new();
        // Proves the accessor permission and that the version apps read is
        // enabled, readable text, before anything is written.
        let (aliased, current) = self.current_of(&snap).await?;
        if let Some(stale) = self.stale_pending(&snap) {
            return Err(self.ctx(Error::conflict(format!(
                "version {stale} carries the alias `{PENDING_ALIAS}` but apps do not read it: \
                 an earlier vsync-orchestrate run staged it and did not finish. Run \
                 `vsync-orchestrate resume PLAN` to finish that run, or `vsync-orchestrate \
                 run --clean-stale PLAN` to drop the stale alias (and disable that version) \
                 first"
            ))));
        }
        if snap.get(PENDING_ALIAS).is_some() {
            warnings.push(format!(
                "alias `{PENDING_ALIAS}` still points at the current version {} (a finished \
                 run's leftover); staging moves it",
                current.number
            ));
        }
        if snap.rotation {
            warnings.push(
                "the secret has a rotation schedule: whatever acts on its rotation \
                 notifications must not add versions or move aliases during a run"
                    .to_owned(),
            );
        }
        let detail = match aliased {
            Some(n) => format!("`{}` → version {n}", self.cfg.alias),
            None => {
                warnings.push(format!(
                    "the secret has no alias `{}`; the first stage creates it on version {} \
                     (what versions/latest serves now). Apps must read `{}`",
                    self.cfg.alias,
                    current.number,
                    self.version_name(&self.cfg.alias)
                ));
                format!(
                    "no alias `{}` yet (create_alias: version {})",
                    self.cfg.alias, current.number
                )
            }
        };
        Ok(Preflight {
            detail,
            warnings,
            ..Default::default()
        })
    }

    async fn read_current(&self) -> Result<Option<Passphrase>> {
        let snap = self.read_secret().await?;
        let (_, current) = self.current_of(&snap).await?;
        Ok(Some(current.value))
    }

    async fn stage(&self, new: &Passphrase, run: &RunId) -> Result<Staged> {
        let snap = self.read_secret().await?;
        let (aliased, current) = self.current_of(&snap).await?;
        // The secret's other aliases, for the hand-run activation command: gcloud
        // (528) sends `--update-version-aliases` as the whole new map, so an alias
        // the command does not name is deleted (tests/vendor_clients.rs).
        let keep: BTreeMap<&String, i64> = snap
            .aliases
            .iter()
            .filter(|(a, _)| {
                ![self.cfg.alias.as_str(), PENDING_ALIAS, PREVIOUS_ALIAS].contains(&a.as_str())
            })
            .map(|(a, n)| (a, *n))
            .collect();
        let staged = |version: i64| Staged {
            target: self.describe(),
            run: run.clone(),
            version: version.to_string(),
            previous: Some(current.number.to_string()),
            extra: serde_json::json!({ "alias": self.cfg.alias, "keep": keep }),
        };
        let mut aliases = snap.aliases.clone();
        if aliased.is_none() {
            // create_alias: the apps' alias starts on the version they read today.
            aliases.insert(self.cfg.alias.clone(), current.number);
        }

        // AddSecretVersion has no request token: find an earlier attempt's version
        // instead of adding a second copy.
        if let Some(p) = self.stale_pending(&snap) {
            let held = self.access(&p.to_string()).await.map_err(|e| {
                e.context(format!(
                    "reading the version alias `{PENDING_ALIAS}` points at"
                ))
            })?;
            if !held.value.same_as(new) {
                return Err(self.ctx(Error::conflict(format!(
                    "alias `{PENDING_ALIAS}` points at version {p}, staged by another run with \
                     another passphrase; `vsync-orchestrate resume PLAN` finishes that run"
                ))));
            }
            if aliased.is_none() {
                self.write_aliases(&aliases, &snap.etag).await?;
            }
            return Ok(staged(p));
        }
        // A version whose AddSecretVersion answer was lost (or whose alias write
        // failed) is the newest one and holds these bytes.
        let earlier = match self.access("latest").await {
            Ok(l) if snap.aliased(l.number).next().is_none() && l.value.same_as(new) => {
                Some(l.number)
            }
            _ => None,
        };
        let version = match earlier {
            Some(n) => n,
            None => {
                let data = new.expose().as_bytes().to_vec();
                let sum = i64::from(crc32c(&data));
                let added = self
                    .client()
                    .await?
                    .add_secret_version()
                    .set_parent(&self.cfg.secret)
                    .set_payload(SecretPayload::new().set_data(data).set_data_crc32c(sum))
                    .send()
                    .await
                    .map_err(|e| self.ctx(gax_error("AddSecretVersion", &e)))?;
                number_of(&added.name).ok_or_else(|| {
                    self.ctx(Error::failed("AddSecretVersion named no version number"))
                })?
            }
        };
        aliases.insert(PENDING_ALIAS.to_owned(), version);
        self.write_aliases(&aliases, &snap.etag).await?;
        Ok(staged(version))
    }

    async fn read_staged(&self, staged: &Staged) -> Result<Passphrase> {
        let version = parse_version(staged).map_err(|e| self.ctx(e))?;
        let snap = self.read_secret().await?;
        let known =
            snap.get(PENDING_ALIAS) == Some(version) || snap.get(&self.cfg.alias) == Some(version);
        if !known {
            return Err(self.ctx(Error::not_found(format!(
                "version {version} is neither `{PENDING_ALIAS}` nor `{}` (discarded or \
                 superseded)",
                self.cfg.alias
            ))));
        }
        match self.access(&staged.version).await {
            Ok(a) => Ok(a.value),
            // A disabled version is a discarded stage.
            Err(e) if e.kind() == ErrorKind::Unsupported => Err(Error::not_found(format!(
                "{}: version {version} is not enabled (discarded)",
                e.message()
            ))),
            Err(e) => Err(e),
        }
    }

    async fn activate(&self, staged: &Staged) -> Result<()> {
        let version = parse_version(staged).map_err(|e| self.ctx(e))?;
        let alias = &self.cfg.alias;
        let snap = self.read_secret().await?;
        let now = snap.get(alias);
        if now == Some(version) {
            return Ok(()); // a retry whose first answer was lost, or a resume
        }
        let was: Option<i64> = staged.previous.as_deref().and_then(|p| p.parse().ok());
        if now != was {
            let now = now.map_or_else(|| "no version".to_owned(), |n| format!("version {n}"));
            let was = was.map_or_else(|| "no version".to_owned(), |n| format!("version {n}"));
            return Err(self.ctx(Error::conflict(format!(
                "alias `{alias}` is on {now}, not on {was} as when staged: the secret was \
                 changed by someone else; staged version {version} was not activated"
            ))));
        }
        if snap.get(PENDING_ALIAS) != Some(version) {
            // Not the usual path (a stage discarded, then resumed): an alias must
            // never point apps at a version they cannot read.
            match self.version_state(version).await? {
                Some(secret_version::State::Enabled) => {}
                Some(_) => {
                    return Err(self.ctx(Error::conflict(format!(
                        "staged version {version} is no longer enabled (discarded)"
                    ))))
                }
                None => {
                    return Err(self.ctx(Error::not_found(format!(
                        "staged version {version} no longer exists"
                    ))))
                }
            }
        }
        let mut aliases = snap.aliases.clone();
        aliases.insert(alias.clone(), version);
        if let Some(old) = was {
            aliases.insert(PREVIOUS_ALIAS.to_owned(), old);
        }
        // Same request, so dropping `pending` costs the window nothing.
        if aliases.get(PENDING_ALIAS) == Some(&version) {
            aliases.remove(PENDING_ALIAS);
        }
        self.write_aliases(&aliases, &snap.etag).await
    }

    /// `pending` left on the active version (activated by hand, with the printed
    /// command) is dropped.
    async fn tidy(&self, staged: &Staged) -> Result<()> {
        let version = parse_version(staged).map_err(|e| self.ctx(e))?;
        let snap = self.read_secret().await?;
        if snap.get(PENDING_ALIAS) == Some(version) && snap.get(&self.cfg.alias) == Some(version) {
            let mut aliases = snap.aliases.clone();
            aliases.remove(PENDING_ALIAS);
            self.write_aliases(&aliases, &snap.etag).await?;
        }
        Ok(())
    }

    async fn discard(&self, staged: &Staged) -> Result<()> {
        let version = parse_version(staged).map_err(|e| self.ctx(e))?;
        let mut snap = self.read_secret().await?;
        if snap.get(&self.cfg.alias) == Some(version) {
            return Err(self.ctx(Error::conflict(format!(
                "version {version} is already what `{}` points at; it cannot be discarded",
                self.cfg.alias
            ))));
        }
        if snap.get(PENDING_ALIAS) == Some(version) {
            snap.aliases.remove(PENDING_ALIAS);
            self.write_aliases(&snap.aliases, &snap.etag).await?;
        }
        self.disable_unless_aliased(&snap, version).await
    }

    async fn clean_stale(&self) -> Result<Option<String>> {
        let mut snap = self.read_secret().await?;
        let Some(stale) = self.stale_pending(&snap) else {
            return Ok(None);
        };
        snap.aliases.remove(PENDING_ALIAS);
        self.write_aliases(&snap.aliases, &snap.etag).await?;
        self.disable_unless_aliased(&snap, stale).await?;
        Ok(Some(format!(
            "dropped alias `{PENDING_ALIAS}` from abandoned version {stale} and disabled it"
        )))
    }

    /// Names every alias the secret keeps, not only the two that move: gcloud
    /// sends `--update-version-aliases` as the whole new map, deleting any alias
    /// it does not name (`pending`, which activation drops anyway, and the
    /// operator's own, which it must not; recorded at stage in `extra.keep`).
    fn activate_hint(&self, staged: &Staged) -> Option<String> {
        let mut pairs = format!("{}={}", self.cfg.alias, staged.version);
        if let Some(p) = &staged.previous {
            pairs.push_str(&format!(",{PREVIOUS_ALIAS}={p}"));
        }
        if let Some(keep) = staged.extra.get("keep").and_then(|k| k.as_object()) {
            for (alias, n) in keep {
                if let Some(n) = n.as_i64().filter(|_| alias_problem(alias).is_none()) {
                    pairs.push_str(&format!(",{alias}={n}"));
                }
            }
        }
        let cmd = format!(
            "gcloud secrets update {} --update-version-aliases={pairs}",
            self.name.gcloud_args()
        );
        Some(match &self.cfg.endpoint {
            Some(e) => format!(
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER={}/ {cmd}",
                e.trim_end_matches('/')
            ),
            None => cmd,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_names() {
        assert!(alias_problem("current").is_none());
        assert!(alias_problem("prod_v2-x").is_none());
        // Only the exact words are reserved, not words that contain them.
        assert!(alias_problem("latest2").is_none());
        assert!(alias_problem("newer").is_none());
        for bad in [
            "",
            "1st",
            "latest",
            "NEW",
            "Latest",
            "LATEST",
            "new",
            "New",
            "pending",
            "previous",
            "a b",
            &"a".repeat(64),
        ] {
            assert!(alias_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn the_manual_command_names_versions_only() {
        let store = SecretManagerStore::new(SecretManagerConfig::new(
            "projects/p1/locations/europe-west1/secrets/vsync",
        ))
        .unwrap();
        assert_eq!(
            store.endpoint().as_deref(),
            Some("https://secretmanager.europe-west1.rep.googleapis.com")
        );
        let staged = Staged {
            target: store.describe(),
            run: RunId("r".into()),
            version: "7".into(),
            previous: Some("6".into()),
            extra: serde_json::Value::Null,
        };
        assert_eq!(
            store.activate_hint(&staged).unwrap(),
            "gcloud secrets update vsync --project=p1 --location=europe-west1 \
             --update-version-aliases=current=7,previous=6"
        );
        // The secret's other aliases are named too, or gcloud would delete them.
        let staged = Staged {
            extra: serde_json::json!({ "alias": "current", "keep": { "canary": 5, "stable": 6 } }),
            ..staged
        };
        assert!(store
            .activate_hint(&staged)
            .unwrap()
            .ends_with("--update-version-aliases=current=7,previous=6,canary=5,stable=6"));
        assert!(SecretManagerStore::new(SecretManagerConfig::new("vsync")).is_err());
    }
}
