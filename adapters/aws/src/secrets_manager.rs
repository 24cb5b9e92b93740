//! The `aws_secrets_manager` store: the passphrase is a Secrets Manager secret, staged
//! under the `AWSPENDING` label and activated by moving `AWSCURRENT`.

use std::collections::HashMap;

use aws_sdk_secretsmanager::Client;
use sha2::{Digest, Sha256};
use vsync_orchestrate_api::{
    async_trait, shell_quote, Error, ErrorKind, Passphrase, Preflight, Result, RunId, SecretStore,
    Staged, StoreCapabilities, Target,
};

use crate::common::{sdk_error, InvalidMeans};
use crate::json_member;

const CURRENT: &str = "AWSCURRENT";
const PENDING: &str = "AWSPENDING";
const PREVIOUS: &str = "AWSPREVIOUS";
const KIND: &str = "aws_secrets_manager";

/// The plan's `[[store]] type = "aws_secrets_manager"` table.
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
pub struct SecretsManagerConfig {
    /// Name or ARN. An ARN is needed for a secret in another account.
    pub secret_id: String,
    /// Overrides the region from the environment or profile.
    #[serde(default)]
    pub region: Option<String>,
    /// For emulators and VPC endpoints; normally unset.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// A named profile from the shared config (SSO, assume-role, credential_process).
    #[serde(default)]
    pub profile: Option<String>,
    /// When set, the secret is a JSON object and only this member is the passphrase;
    /// every other member is kept byte for byte.
    #[serde(default)]
    pub json_key: Option<String>,
    /// How long one attempt of a request may take (default 10 s; the plan's
    /// `timeout`): without it a stalled activation would hold the window open for
    /// as long as the TCP connection lives.
    #[serde(default, rename = "timeout", with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub attempt_timeout: Option<std::time::Duration>,
}

/// A Secrets Manager secret as a [`SecretStore`].
///
/// Staging writes a version labelled only `AWSPENDING`, whose version id is derived
/// from the run id, so a retried or resumed stage finds its own version instead of
/// creating another. Activation is one `UpdateSecretVersionStage` call that moves
/// `AWSCURRENT` only if it still sits where staging found it.
pub struct SecretsManagerStore {
    client: Client,
    cfg: SecretsManagerConfig,
}

impl std::fmt::Debug for SecretsManagerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsManagerStore")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// A version's labels, as `DescribeSecret` reports them.
struct Labels(HashMap<String, Vec<String>>);

impl Labels {
    fn holder(&self, label: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(_, l)| l.iter().any(|x| x == label))
            .map(|(v, _)| v.as_str())
    }
    fn has(&self, version: &str, label: &str) -> bool {
        self.0
            .get(version)
            .is_some_and(|l| l.iter().any(|x| x == label))
    }
    fn exists(&self, version: &str) -> bool {
        self.0.contains_key(version)
    }
    /// A version left labelled `AWSPENDING` by an earlier, unfinished run.
    fn stale_pending(&self) -> Option<&str> {
        self.holder(PENDING).filter(|v| !self.has(v, CURRENT))
    }
}

struct Described {
    labels: Labels,
    rotation_enabled: bool,
    deleted: bool,
    owning_service: Option<String>,
}

impl SecretsManagerStore {
    /// Resolves credentials and region through the standard chain (with the plan's
    /// `profile`, `region` and `endpoint` applied) and builds the client once, so
    /// preflight warms the same connections activate later uses.
    pub async fn new(cfg: SecretsManagerConfig) -> Result<Self> {
        crate::common::check_endpoint(cfg.endpoint.as_deref())?;
        let ctx = vsync_orchestrate_api::BuildContext::new();
        let sdk = vsync_orchestrate_aws_auth::sdk_config(
            &ctx,
            cfg.profile.as_deref(),
            cfg.region.as_deref(),
        )
        .await?;
        Self::from_sdk_config(cfg, &sdk)
    }

    /// Builds on an already loaded chain, so several adapters share one credential
    /// resolution. `cfg.region` and `cfg.endpoint` still override; `cfg.profile` is not
    /// consulted (the credentials come from `sdk`).
    pub fn from_sdk_config(cfg: SecretsManagerConfig, sdk: &aws_config::SdkConfig) -> Result<Self> {
        if cfg.secret_id.trim().is_empty() {
            return Err(Error::invalid_config("secret_id is empty"));
        }
        if cfg.json_key.as_deref().is_some_and(str::is_empty) {
            return Err(Error::invalid_config("json_key is empty"));
        }
        crate::common::check_endpoint(cfg.endpoint.as_deref())?;
        let mut b = aws_sdk_secretsmanager::config::Builder::from(sdk);
        if let Some(r) = &cfg.region {
            b = b.region(aws_sdk_secretsmanager::config::Region::new(r.clone()));
        }
        if let Some(e) = &cfg.endpoint {
            b = b.endpoint_url(e);
        }
        b = b.timeout_config(
            aws_sdk_secretsmanager::config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .operation_attempt_timeout(
                    cfg.attempt_timeout
                        .unwrap_or(std::time::Duration::from_secs(10)),
                )
                .build(),
        );
        Ok(SecretsManagerStore {
            client: Client::from_conf(b.build()),
            cfg,
        })
    }

    /// Removes `AWSPENDING` from a version an earlier run staged and never finished.
    /// Preflight refuses to start while one exists (it stays read-only); the engine
    /// calls this when the operator asks for the clean-up explicitly. Returns the
    /// version id it un-labelled, if any.
    pub async fn remove_stale_pending(&self) -> Result<Option<String>> {
        let d = self.describe_secret().await?;
        let Some(stale) = d.labels.stale_pending().map(str::to_owned) else {
            return Ok(None);
        };
        self.client
            .update_secret_version_stage()
            .secret_id(&self.cfg.secret_id)
            .version_stage(PENDING)
            .remove_from_version_id(&stale)
            .send()
            .await
            .map_err(|e| sdk_error("UpdateSecretVersionStage", e, InvalidMeans::Conflict))
            .map_err(|e| self.ctx(e))?;
        Ok(Some(stale))
    }

    /// The version id (and `ClientRequestToken`) a run stages under: a UUID-shaped
    /// SHA-256 of the secret and the run id, so it is the same on every retry.
    fn token_for(&self, run: &RunId) -> String {
        let digest = Sha256::digest(format!(
            "vsync-orchestrate|{}|{}",
            self.cfg.secret_id,
            run.as_str()
        ));
        let mut b = [0u8; 16];
        b.copy_from_slice(&digest[..16]);
        b[6] = (b[6] & 0x0f) | 0x50;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = hex::encode(b);
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    fn ctx(&self, e: Error) -> Error {
        e.context(format!("secret {}", self.cfg.secret_id))
    }

    async fn describe_secret(&self) -> Result<Described> {
        let out = self
            .client
            .describe_secret()
            .secret_id(&self.cfg.secret_id)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeSecret", e, InvalidMeans::BadInput))
            .map_err(|e| self.ctx(e))?;
        Ok(Described {
            labels: Labels(out.version_ids_to_stages().cloned().unwrap_or_default()),
            rotation_enabled: out.rotation_enabled().unwrap_or(false),
            deleted: out.deleted_date().is_some(),
            owning_service: out.owning_service().map(str::to_owned),
        })
    }

    /// The whole secret string of one version, and that version's labels.
    async fn get_raw(&self, by: Selector<'_>) -> Result<(Passphrase, Vec<String>)> {
        let req = self
            .client
            .get_secret_value()
            .secret_id(&self.cfg.secret_id);
        let req = match by {
            Selector::Stage(s) => req.version_stage(s),
            Selector::Version(v) => req.version_id(v),
        };
        let out = req
            .send()
            .await
            .map_err(|e| sdk_error("GetSecretValue", e, InvalidMeans::BadInput))
            .map_err(|e| self.ctx(e))?;
        let Some(s) = out.secret_string() else {
            return Err(self.ctx(Error::unsupported(
                "the secret holds binary data (SecretBinary); only SecretString is supported",
            )));
        };
        Ok((Passphrase::new(s.to_owned()), out.version_stages().to_vec()))
    }

    /// The passphrase inside a version's secret string.
    fn passphrase_of(&self, raw: &Passphrase) -> Result<Passphrase> {
        match &self.cfg.json_key {
            None => Ok(raw.clone()),
            Some(k) => json_member::extract(raw.expose(), k).map_err(|e| self.ctx(e)),
        }
    }

    async fn move_label(&self, label: &str, to: Option<&str>, from: Option<&str>) -> Result<()> {
        let mut req = self
            .client
            .update_secret_version_stage()
            .secret_id(&self.cfg.secret_id)
            .version_stage(label);
        if let Some(t) = to {
            req = req.move_to_version_id(t);
        }
        if let Some(f) = from {
            req = req.remove_from_version_id(f);
        }
        req.send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error("UpdateSecretVersionStage", e, InvalidMeans::Conflict))
            .map_err(|e| self.ctx(e))
    }
}

impl SecretsManagerStore {
    /// Removes `AWSPENDING` from `version`. A lost answer makes the SDK's retry
    /// fail (the label is already gone): read the labels before calling it a failure.
    async fn drop_pending(&self, version: &str) -> Result<()> {
        let d = self.describe_secret().await?;
        if !d.labels.has(version, PENDING) {
            return Ok(());
        }
        match self.move_label(PENDING, None, Some(version)).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let d = self.describe_secret().await?;
                if d.labels.has(version, PENDING) {
                    Err(e)
                } else {
                    Ok(())
                }
            }
        }
    }
}

enum Selector<'a> {
    Stage(&'a str),
    Version(&'a str),
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    /// Every version can be read back by its stage or id (`GetSecretValue`).
    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::ALL
    }

    fn describe(&self) -> Target {
        Target::new(KIND, &self.cfg.secret_id)
    }

    async fn preflight(&self) -> Result<Preflight> {
        let d = self.describe_secret().await?;
        if d.deleted {
            return Err(self.ctx(Error::unsupported(
                "the secret is scheduled for deletion; restore it first",
            )));
        }
        if let Some(owner) = d.owning_service {
            return Err(self.ctx(Error::unsupported(format!(
                "the secret is managed by {owner}; rotate it through that service"
            ))));
        }
        if d.rotation_enabled {
            return Err(self.ctx(Error::unsupported(
                "automatic rotation is enabled on this secret; its rotation function would \
                 compete for the AWSPENDING label and overwrite the passphrase the vault is \
                 encrypted with. Turn it off first (aws secretsmanager cancel-rotate-secret)",
            )));
        }
        let mut warnings = Vec::new();
        // A stale AWSPENDING does not stop a run: a `PutSecretValue` that landed
        // after its run gave up (or after `resume` finished) leaves one, and it must
        // not block every later run. It is harmless to move because the engine only
        // goes on once AWSCURRENT's value opens the live bundle (a stale version
        // that is the only key fails that check, and `resume` is named); staging
        // then moves the label to this run's version.
        if let Some(stale) = d.labels.stale_pending() {
            warnings.push(format!(
                "version {stale} is labelled AWSPENDING but is not current (an earlier \
                 run's stage, abandoned or landed late); staging moves the label to this \
                 run's version, provided the current passphrase opens the live bundle. If a \
                 run of yours stopped half way, `vsync-orchestrate resume PLAN` finishes it"
            ));
        }
        let mut current = None;
        let detail = match d.labels.holder(CURRENT) {
            Some(v) => {
                // Proves GetSecretValue and kms:Decrypt are permitted, and that json_key
                // finds a string, before anything is written; the engine uses the
                // value instead of reading AWSCURRENT again.
                let (raw, _) = self.get_raw(Selector::Stage(CURRENT)).await?;
                current = Some(self.passphrase_of(&raw)?);
                if d.labels.has(v, PENDING) {
                    warnings.push(format!(
                        "the current version {v} still carries AWSPENDING (a finished run's \
                         leftover); staging moves it"
                    ));
                }
                format!("AWSCURRENT = {v}")
            }
            None if self.cfg.json_key.is_some() => {
                return Err(self.ctx(Error::not_found(
                    "the secret has no AWSCURRENT version to take the other JSON members from",
                )));
            }
            None => {
                warnings.push("the secret has no current value yet".to_owned());
                "no AWSCURRENT version".to_owned()
            }
        };
        Ok(Preflight {
            detail,
            warnings,
            current,
        })
    }

    async fn read_current(&self) -> Result<Option<Passphrase>> {
        let (raw, _) = self.get_raw(Selector::Stage(CURRENT)).await?;
        self.passphrase_of(&raw).map(Some)
    }

    async fn stage(&self, new: &Passphrase, run: &RunId) -> Result<Staged> {
        let token = self.token_for(run);
        let d = self.describe_secret().await?;
        let current = d.labels.holder(CURRENT).map(str::to_owned);
        let staged = |previous: Option<String>| Staged {
            target: self.describe(),
            run: run.clone(),
            version: token.clone(),
            previous,
            extra: serde_json::Value::Null,
        };

        if d.labels.exists(&token) {
            // A retry, or a resume: this run's version is already there.
            let (raw, _) = self.get_raw(Selector::Version(&token)).await?;
            if !self.passphrase_of(&raw)?.same_as(new) {
                return Err(self.ctx(Error::conflict(format!(
                    "version {token} was staged by run {run} with a different passphrase"
                ))));
            }
            if d.labels.has(&token, CURRENT) {
                let previous = d.labels.holder(PREVIOUS).map(str::to_owned);
                return Ok(staged(previous));
            }
            if !d.labels.has(&token, PENDING) {
                // Discarded earlier in this run: label it again rather than write a copy.
                let other = d.labels.holder(PENDING).map(str::to_owned);
                self.move_label(PENDING, Some(&token), other.as_deref())
                    .await?;
            }
            return Ok(staged(current));
        }

        let body = match &self.cfg.json_key {
            None => new.clone(),
            Some(key) => {
                if current.is_none() {
                    return Err(self.ctx(Error::not_found(
                        "the secret has no AWSCURRENT version to take the other JSON members from",
                    )));
                }
                let (raw, _) = self.get_raw(Selector::Stage(CURRENT)).await?;
                json_member::replace(raw.expose(), key, new).map_err(|e| self.ctx(e))?
            }
        };
        // VersionStages is what keeps this from becoming current: without it Secrets
        // Manager would move AWSCURRENT to the new version.
        self.client
            .put_secret_value()
            .secret_id(&self.cfg.secret_id)
            .client_request_token(&token)
            .secret_string(body.expose())
            .version_stages(PENDING)
            .send()
            .await
            .map_err(|e| sdk_error("PutSecretValue", e, InvalidMeans::BadInput))
            .map_err(|e| self.ctx(e))?;
        Ok(staged(current))
    }

    async fn read_staged(&self, staged: &Staged) -> Result<Passphrase> {
        let (raw, stages) = self.get_raw(Selector::Version(&staged.version)).await?;
        if !stages.iter().any(|s| s == PENDING || s == CURRENT) {
            return Err(self.ctx(Error::not_found(format!(
                "version {} is neither pending nor current (discarded or superseded)",
                staged.version
            ))));
        }
        self.passphrase_of(&raw)
    }

    async fn activate(&self, staged: &Staged) -> Result<()> {
        let version = staged.version.as_str();
        // The fast path is this single call: the switch apps see. `RemoveFromVersionId`
        // makes it a compare-and-swap on where AWSCURRENT was at stage time.
        let moved = self
            .move_label(CURRENT, Some(version), staged.previous.as_deref())
            .await;
        if let Err(e) = moved {
            if !matches!(e.kind(), ErrorKind::Conflict | ErrorKind::InvalidConfig) {
                return Err(e);
            }
            // Either already done (a retry) or someone else moved AWSCURRENT.
            let d = self.describe_secret().await?;
            if !d.labels.exists(version) {
                return Err(self.ctx(Error::not_found(format!(
                    "staged version {version} no longer exists"
                ))));
            }
            if !d.labels.has(version, CURRENT) {
                let now = d.labels.holder(CURRENT).unwrap_or("no version");
                return Err(self.ctx(Error::conflict(format!(
                    "AWSCURRENT is on {now}, not on {} as when staged: the secret was \
                     changed by someone else; staged version {version} was not activated",
                    staged.previous.as_deref().unwrap_or("no version")
                ))));
            }
        }
        Ok(())
    }

    /// The pending label has done its job; dropped after the window closed (AWS
    /// accepts either state, so this is housekeeping, not part of the switch).
    async fn tidy(&self, staged: &Staged) -> Result<()> {
        self.drop_pending(&staged.version).await
    }

    async fn clean_stale(&self) -> Result<Option<String>> {
        self.remove_stale_pending()
            .await
            .map(|v| v.map(|v| format!("removed AWSPENDING from abandoned version {v}")))
    }

    fn activate_hint(&self, staged: &Staged) -> Option<String> {
        let mut cmd = format!(
            "aws secretsmanager update-secret-version-stage --secret-id {} \
             --version-stage AWSCURRENT --move-to-version-id {}",
            shell_quote(&self.cfg.secret_id),
            shell_quote(&staged.version)
        );
        if let Some(p) = &staged.previous {
            cmd.push_str(&format!(" --remove-from-version-id {}", shell_quote(p)));
        }
        for (flag, v) in [
            ("--region", &self.cfg.region),
            ("--profile", &self.cfg.profile),
            ("--endpoint-url", &self.cfg.endpoint),
        ] {
            if let Some(v) = v {
                cmd.push_str(&format!(" {flag} {}", shell_quote(v)));
            }
        }
        Some(cmd)
    }

    async fn discard(&self, staged: &Staged) -> Result<()> {
        let d = self.describe_secret().await?;
        let version = staged.version.as_str();
        if d.labels.has(version, CURRENT) {
            return Err(self.ctx(Error::conflict(format!(
                "version {version} is already current; it cannot be discarded"
            ))));
        }
        if d.labels.has(version, PENDING) {
            self.drop_pending(version).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_are_stable_uuid_shaped_and_per_secret() {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let cfg = |id: &str| SecretsManagerConfig {
            secret_id: id.into(),
            region: Some("us-east-1".into()),
            endpoint: None,
            profile: None,
            json_key: None,
            attempt_timeout: None,
        };
        let a = SecretsManagerStore::from_sdk_config(cfg("a"), &sdk).unwrap();
        let b = SecretsManagerStore::from_sdk_config(cfg("b"), &sdk).unwrap();
        let run = RunId("r1".into());
        let t = a.token_for(&run);
        assert_eq!(t, a.token_for(&run));
        assert_ne!(t, b.token_for(&run));
        assert_ne!(t, a.token_for(&RunId("r2".into())));
        assert_eq!(t.len(), 36);
        assert_eq!(&t[14..15], "5");
        assert!(t.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));

        let staged = Staged {
            target: a.describe(),
            run,
            version: t.clone(),
            previous: Some("prev-1".into()),
            extra: serde_json::Value::Null,
        };
        let hint = a.activate_hint(&staged).unwrap();
        assert!(
            hint.contains(&format!("--move-to-version-id {t}")),
            "{hint}"
        );
        assert!(
            hint.contains("--remove-from-version-id prev-1 --region us-east-1"),
            "{hint}"
        );
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
