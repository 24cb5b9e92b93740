use super::contract::{
    unquote, Meta, Object, PutCondition, Storage, StorageError, StorageErrorKind,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use std::time::Duration;

/// How to reach the bucket. Credentials come from the standard AWS chain
/// (environment, profiles, SSO, web identity, instance metadata).
#[derive(Clone, Default)]
pub struct S3Options {
    pub bucket: String,
    pub region: Option<String>,
    /// For S3-compatible stores (MinIO, R2, Ceph) and tests.
    pub endpoint: Option<String>,
    pub profile: Option<String>,
    /// Path-style URLs; S3-compatible stores usually need it.
    pub path_style: bool,
    /// Send checksums only when an operation requires them: since early 2025 the SDK
    /// adds CRC32 to every PutObject, which some S3-compatible stores reject.
    pub checksum_when_required: bool,
    /// Static keys, as a `VSYNC_CONFIG` carries them; `None` uses the standard chain.
    pub static_keys: Option<(String, String)>,
    /// How long one attempt of a request may take before the SDK gives up on it and
    /// retries (default 20 s). A stalled pointer swap is then an unknown outcome the
    /// engine reads back, not a run that hangs.
    pub attempt_timeout: Option<Duration>,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("profile", &self.profile)
            .field("path_style", &self.path_style)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct S3Storage {
    client: aws_sdk_s3::Client,
    bucket: String,
    endpoint: Option<String>,
}

impl std::fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Storage(s3://{})", self.bucket)
    }
}

impl S3Storage {
    pub async fn connect(opts: &S3Options) -> S3Storage {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(
                        opts.attempt_timeout.unwrap_or(Duration::from_secs(20)),
                    )
                    .build(),
            );
        if let Some(p) = &opts.profile {
            loader = loader.profile_name(p);
        }
        if let Some(r) = &opts.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some((id, secret)) = &opts.static_keys {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                id.clone(),
                secret.clone(),
                None,
                None,
                "vsync-config",
            ));
        }
        if !has_native_roots() {
            loader = loader.http_client(http_client_without_roots());
        }
        let sdk = loader.load().await;
        Self::from_sdk_config(&sdk, opts)
    }

    /// On an already loaded credential chain (the plan's, shared with its AWS
    /// adapters); the attempt timeout is set on this client.
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig, opts: &S3Options) -> S3Storage {
        let mut b = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(opts.path_style)
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(
                        opts.attempt_timeout.unwrap_or(Duration::from_secs(20)),
                    )
                    .build(),
            );
        if let Some(e) = &opts.endpoint {
            b = b.endpoint_url(e);
        }
        if opts.checksum_when_required {
            b = b
                .request_checksum_calculation(
                    aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
                )
                .response_checksum_validation(
                    aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
                );
        }
        S3Storage {
            client: aws_sdk_s3::Client::from_conf(b.build()),
            bucket: opts.bucket.clone(),
            endpoint: opts.endpoint.clone(),
        }
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }
}

/// Minimal hosts (containers, debootstrap roots) may have no CA bundle. The SDK's
/// default client insists on one; without it, plain-HTTP endpoints (MinIO on a
/// private network, tests) must still work and HTTPS must fail with a TLS error,
/// not a panic.
fn has_native_roots() -> bool {
    static ROOTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOTS.get_or_init(|| !rustls_native_certs::load_native_certs().certs.is_empty())
}

fn http_client_without_roots() -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    let ctx = tls::TlsContext::builder()
        .with_trust_store(tls::TrustStore::empty().with_native_roots(false))
        .build()
        .expect("an empty trust store is a valid TLS context");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(ctx)
        .build_https()
}

fn map_err<E>(op: &'static str, key: &str, e: SdkError<E>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().map(str::to_owned);
    let kind = match (status, code.as_deref()) {
        (_, Some("NoSuchKey" | "NotFound" | "NoSuchBucket")) | (Some(404), _) => {
            StorageErrorKind::NotFound
        }
        (_, Some("PreconditionFailed" | "ConditionalRequestConflict")) | (Some(412 | 409), _) => {
            StorageErrorKind::PreconditionFailed
        }
        (_, Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch"))
        | (Some(401 | 403), _) => StorageErrorKind::Permission,
        (Some(s), _) if s >= 500 => StorageErrorKind::Unavailable,
        (None, _) => StorageErrorKind::Unavailable,
        _ => StorageErrorKind::Other,
    };
    let detail = match (&code, e.message(), status) {
        (Some(c), Some(m), _) => format!("{c}: {m}"),
        (Some(c), None, Some(s)) => format!("{c} (HTTP {s})"),
        (None, _, Some(s)) => format!("HTTP {s}"),
        _ => aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
    };
    StorageError::new(kind, op, key, detail)
}

#[async_trait::async_trait]
impl Storage for S3Storage {
    fn describe(&self) -> String {
        format!("s3://{}", self.bucket)
    }

    async fn get_limited(&self, key: &str, limit: u64) -> Result<Option<Object>, StorageError> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) => {
                let e = map_err("get", key, e);
                return if e.kind == StorageErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                };
            }
        };
        // Refused on the declared length before reading the body, and again while
        // streaming in case the length was absent or wrong.
        let declared = out.content_length().and_then(|l| u64::try_from(l).ok());
        if let Some(len) = declared.filter(|l| *l > limit) {
            return Err(StorageError::too_large("get", key, len, limit));
        }
        let etag = out.e_tag().map(unquote).unwrap_or_default();
        let meta: Meta = out
            .metadata()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let mut stream = out.body;
        let mut body = Vec::with_capacity(declared.unwrap_or(0) as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                StorageError::new(StorageErrorKind::Unavailable, "get", key, e.to_string())
            })?;
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(StorageError::too_large(
                    "get",
                    key,
                    (body.len() + chunk.len()) as u64,
                    limit,
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(Object { body, etag, meta }))
    }

    async fn head(&self, key: &str) -> Result<Option<String>, StorageError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Ok(Some(o.e_tag().map(unquote).unwrap_or_default())),
            Err(e) => {
                let e = map_err("head", key, e);
                if e.kind == StorageErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        cond: PutCondition,
        meta: &Meta,
    ) -> Result<String, StorageError> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body));
        for (k, v) in meta {
            req = req.metadata(k, v);
        }
        req = match cond {
            PutCondition::None => req,
            PutCondition::IfMatch(etag) => req.if_match(unquote(&etag)),
            PutCondition::IfAbsent => req.if_none_match("*"),
        };
        let out = req.send().await.map_err(|e| map_err("put", key, e))?;
        Ok(out.e_tag().map(unquote).unwrap_or_default())
    }

    async fn delete(&self, key: &str, if_match: Option<&str>) -> Result<(), StorageError> {
        let mut req = self.client.delete_object().bucket(&self.bucket).key(key);
        if let Some(etag) = if_match {
            req = req.if_match(unquote(etag));
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = map_err("delete", key, e);
                if e.kind == StorageErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    fn delete_command(&self, key: &str) -> String {
        use vsync_orchestrate_api::shell_quote;
        let mut cmd = format!(
            "aws s3api delete-object --bucket {} --key {}",
            shell_quote(&self.bucket),
            shell_quote(key)
        );
        if let Some(e) = &self.endpoint {
            cmd.push_str(&format!(" --endpoint-url {}", shell_quote(e)));
        }
        cmd
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| map_err("list", prefix, e))?;
            out.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        out.sort();
        Ok(out)
    }
}
