//! What both AWS adapters share: turning SDK errors into the engine's error kinds
//! without leaking response bodies. (The credential chain is `vsync-orchestrate-aws-auth`,
//! shared with the S3 vault.)

use aws_sdk_ecs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use vsync_orchestrate_api::{Error, ErrorKind};

pub(crate) use vsync_orchestrate_aws_auth::check_endpoint;

/// How an `InvalidParameterException` / `InvalidRequestException` should be read.
/// On a compare-and-swap call they mean "the label is not where you said": a conflict.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum InvalidMeans {
    BadInput,
    Conflict,
}

/// Maps an SDK error onto an [`ErrorKind`], keeping only the error code, the service's
/// message and the HTTP status. The SDK error itself is dropped, never attached as a
/// source: its `Debug` includes the raw response, which for reads holds the secret.
pub(crate) fn sdk_error<E>(op: &str, err: SdkError<E>, invalid: InvalidMeans) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match &err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = ctx.err().code().unwrap_or("UnknownError").to_owned();
            let message = ctx.err().message().unwrap_or("").to_owned();
            let kind = kind_for(&code, status, invalid);
            let text = if message.is_empty() {
                format!("{op}: {code} (HTTP {status})")
            } else {
                format!("{op}: {code} (HTTP {status}): {message}")
            };
            Error::new(kind, text)
        }
        SdkError::ResponseError(ctx) => Error::temporary(format!(
            "{op}: unreadable response (HTTP {})",
            ctx.raw().status().as_u16()
        )),
        SdkError::TimeoutError(_) => Error::temporary(format!("{op}: timed out")),
        SdkError::DispatchFailure(d) => {
            if let Some(e) = d
                .as_connector_error()
                .and_then(|c| vsync_orchestrate_aws_auth::credential_failure(None, c))
            {
                return e.context(op);
            }
            // Connector errors describe the connection, never a body.
            let kind = if d.is_user() {
                ErrorKind::InvalidConfig
            } else {
                ErrorKind::Temporary
            };
            let detail = d
                .as_connector_error()
                .map(|c| DisplayErrorContext(c).to_string());
            Error::new(
                kind,
                format!(
                    "{op}: request not delivered: {}",
                    detail.unwrap_or_default()
                ),
            )
        }
        SdkError::ConstructionFailure(_) => {
            Error::invalid_config(format!("{op}: {}", DisplayErrorContext(&err)))
        }
        _ => Error::failed(format!("{op}: unexpected SDK error")),
    }
}

fn kind_for(code: &str, status: u16, invalid: InvalidMeans) -> ErrorKind {
    match code {
        "ResourceNotFoundException" | "ClusterNotFoundException" | "ServiceNotFoundException" => {
            ErrorKind::NotFound
        }
        "AccessDeniedException"
        | "AccessDenied"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "ExpiredTokenException"
        | "ExpiredToken"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "DecryptionFailure" => ErrorKind::Permission,
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "InternalServiceError"
        | "InternalFailure"
        | "ServerException"
        | "ServiceUnavailable"
        | "ServiceUnavailableException" => ErrorKind::Temporary,
        "InvalidParameterException" | "InvalidRequestException" => match invalid {
            InvalidMeans::Conflict => ErrorKind::Conflict,
            InvalidMeans::BadInput => ErrorKind::InvalidConfig,
        },
        "ResourceExistsException" | "PreconditionNotMetException" => ErrorKind::Conflict,
        "ServiceNotActiveException" | "PlatformUnknownException" => ErrorKind::Unsupported,
        "LimitExceededException" => ErrorKind::Failed,
        _ if status >= 500 || status == 429 => ErrorKind::Temporary,
        _ if status == 401 || status == 403 => ErrorKind::Permission,
        _ if status == 404 => ErrorKind::NotFound,
        _ => ErrorKind::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request the SDK could not sign for want of credentials is a permission
    /// problem with a fix, not a network blip to retry.
    #[test]
    fn missing_credentials_are_not_temporary() {
        use aws_sdk_ecs::error::ConnectorError;
        use vsync_orchestrate_aws_auth::aws_credential_types::provider::error::CredentialsError;
        let err: SdkError<aws_sdk_ecs::operation::update_service::UpdateServiceError> =
            SdkError::dispatch_failure(ConnectorError::other(
                Box::new(CredentialsError::not_loaded(
                    "no credentials found in chain",
                )),
                None,
            ));
        let e = sdk_error("UpdateService", err, InvalidMeans::BadInput);
        assert_eq!(e.kind(), ErrorKind::Permission);
        assert!(!e.is_temporary());
        assert!(
            e.message().starts_with("UpdateService: "),
            "{}",
            e.message()
        );
        assert!(e.next_step().is_some_and(|s| s.starts_with("aws ")));
        assert!(!e.message().contains("DispatchFailure"), "{}", e.message());

        let refused: SdkError<aws_sdk_ecs::operation::update_service::UpdateServiceError> =
            SdkError::dispatch_failure(ConnectorError::io(Box::new(std::io::Error::other(
                "connection refused",
            ))));
        let e = sdk_error("UpdateService", refused, InvalidMeans::BadInput);
        assert_eq!(e.kind(), ErrorKind::Temporary);
    }

    #[test]
    fn codes_map_to_kinds() {
        use InvalidMeans::*;
        assert_eq!(
            kind_for("ResourceNotFoundException", 400, BadInput),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind_for("AccessDeniedException", 400, BadInput),
            ErrorKind::Permission
        );
        assert_eq!(
            kind_for("ThrottlingException", 400, BadInput),
            ErrorKind::Temporary
        );
        assert_eq!(kind_for("Whatever", 503, BadInput), ErrorKind::Temporary);
        assert_eq!(
            kind_for("InvalidParameterException", 400, Conflict),
            ErrorKind::Conflict
        );
        assert_eq!(
            kind_for("InvalidParameterException", 400, BadInput),
            ErrorKind::InvalidConfig
        );
        assert_eq!(
            kind_for("ClientException", 400, BadInput),
            ErrorKind::Failed
        );
    }
}
