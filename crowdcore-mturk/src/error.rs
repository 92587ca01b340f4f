//! From the SDK's errors to [`PlatformError`]: what is worth retrying, and what a permanent
//! MTurk `RequestError` means.

use aws_sdk_mturk::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use crowdcore::platform::{PlatformError, PlatformErrorKind};

/// An MTurk service error as both modelled shapes carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Turk<'a> {
    /// `RequestError` (the request is wrong) or `ServiceFault` (MTurk failed).
    pub(crate) fault: bool,
    pub(crate) turk_code: Option<&'a str>,
    pub(crate) message: Option<&'a str>,
}

/// Operation errors that may hold MTurk's two modelled error shapes.
pub(crate) trait TurkShape: ProvideErrorMetadata {
    fn turk(&self) -> Option<Turk<'_>>;
}

macro_rules! turk_shapes {
    ($($path:ident :: $ty:ident),* $(,)?) => {$(
        impl TurkShape for aws_sdk_mturk::operation::$path::$ty {
            fn turk(&self) -> Option<Turk<'_>> {
                match self {
                    Self::RequestError(e) => Some(Turk {
                        fault: false,
                        turk_code: e.turk_error_code(),
                        message: e.message(),
                    }),
                    Self::ServiceFault(e) => Some(Turk {
                        fault: true,
                        turk_code: e.turk_error_code(),
                        message: e.message(),
                    }),
                    _ => None,
                }
            }
        }
    )*};
}

turk_shapes!(
    create_hit_type::CreateHITTypeError,
    create_hit_with_hit_type::CreateHITWithHITTypeError,
    create_additional_assignments_for_hit::CreateAdditionalAssignmentsForHITError,
    update_expiration_for_hit::UpdateExpirationForHITError,
    list_hits::ListHITsError,
    list_assignments_for_hit::ListAssignmentsForHITError,
    get_hit::GetHITError,
    get_assignment::GetAssignmentError,
    approve_assignment::ApproveAssignmentError,
    reject_assignment::RejectAssignmentError,
    send_bonus::SendBonusError,
    list_bonus_payments::ListBonusPaymentsError,
    notify_workers::NotifyWorkersError,
    create_worker_block::CreateWorkerBlockError,
    associate_qualification_with_worker::AssociateQualificationWithWorkerError,
    disassociate_qualification_from_worker::DisassociateQualificationFromWorkerError,
    get_account_balance::GetAccountBalanceError,
    create_qualification_type::CreateQualificationTypeError,
    get_qualification_score::GetQualificationScoreError,
    update_notification_settings::UpdateNotificationSettingsError,
);

/// SQS errors have no MTurk shape: their code and status say it all.
macro_rules! plain_shapes {
    ($($path:ident :: $ty:ident),* $(,)?) => {$(
        impl TurkShape for aws_sdk_sqs::operation::$path::$ty {
            fn turk(&self) -> Option<Turk<'_>> {
                None
            }
        }
    )*};
}

plain_shapes!(
    receive_message::ReceiveMessageError,
    delete_message::DeleteMessageError,
    change_message_visibility::ChangeMessageVisibilityError,
);

/// What a failed call means to crowdcore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) error: PlatformError,
    /// MTurk refused a `UniqueRequestToken` it has seen: the work was done by an earlier call.
    pub(crate) duplicate: bool,
}

/// Maps any SDK error. `op` names the operation for messages.
pub(crate) fn failure<E>(op: &str, err: &SdkError<E, HttpResponse>) -> Failure
where
    E: TurkShape + std::error::Error,
{
    use PlatformErrorKind::*;
    let plain = |kind, code: &str, message: String| Failure {
        error: PlatformError::new(kind, code, format!("{op}: {message}")),
        duplicate: false,
    };
    match err {
        SdkError::TimeoutError(_) => plain(Timeout, "Timeout", "no answer in time".into()),
        SdkError::DispatchFailure(d) if d.is_timeout() => {
            plain(Timeout, "Timeout", "no answer in time".into())
        }
        SdkError::DispatchFailure(d) if d.is_user() => {
            plain(BadRequest, "DispatchFailure", format!("{d:?}"))
        }
        SdkError::DispatchFailure(d) => plain(
            Unavailable,
            "DispatchFailure",
            format!("the request did not go through: {d:?}"),
        ),
        SdkError::ResponseError(r) => plain(
            Unavailable,
            "ResponseError",
            format!("unreadable answer (HTTP {})", r.raw().status().as_u16()),
        ),
        SdkError::ConstructionFailure(_) => plain(
            BadRequest,
            "ConstructionFailure",
            "cannot build the request".into(),
        ),
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            let status = ctx.raw().status().as_u16();
            service_failure(op, e.code(), e.message(), e.turk(), status)
        }
        other => plain(Unavailable, "Unknown", other.to_string()),
    }
}

/// The codes MTurk uses for a token it has seen.
const DUPLICATE_CODES: [&str; 2] = [
    "AWS.MechanicalTurk.HitAlreadyExists",
    "AWS.MechanicalTurk.DuplicateRequest",
];

pub(crate) fn service_failure(
    op: &str,
    code: Option<&str>,
    message: Option<&str>,
    turk: Option<Turk<'_>>,
    status: u16,
) -> Failure {
    use PlatformErrorKind::*;
    let message = turk.and_then(|t| t.message).or(message).unwrap_or("");
    let turk_code = turk.and_then(|t| t.turk_code);
    let code_text = turk_code.or(code).unwrap_or("Unknown").to_owned();
    let lower = message.to_ascii_lowercase();
    let make = |kind| Failure {
        error: PlatformError::new(kind, code_text.clone(), format!("{op}: {message}")),
        duplicate: false,
    };
    // Throttling first: MTurk says "Rate exceeded" under more than one shape.
    if code == Some("ThrottlingException")
        || code.is_some_and(|c| c.ends_with("RequestThrottled") || c.ends_with("Throttling"))
        || turk_code.is_some_and(|c| c.ends_with("Throttled") || c.ends_with("ThrottlingException"))
        || lower.contains("rate exceeded")
        || status == 429
    {
        return make(Throttled);
    }
    if turk.is_some_and(|t| t.fault)
        || matches!(
            code,
            Some("ServiceFault" | "InternalError" | "ServiceUnavailable")
        )
        || status >= 500
    {
        return make(Unavailable);
    }
    // MTurk words it several ways; UpdateExpirationForHIT derives its own token from the HIT
    // and the time ("The idempotency token \"…\" has already been processed").
    // A message that only names the token (a validation error about the field) is not one.
    let names_token =
        lower.contains("uniquerequesttoken") || lower.contains("unique request token");
    let duplicate = turk_code.is_some_and(|c| DUPLICATE_CODES.contains(&c))
        || lower.contains("has already been processed")
        || (names_token
            && (lower.contains("already") || lower.contains("same") || lower.contains("used")));
    if duplicate {
        return Failure {
            duplicate: true,
            ..make(Conflict)
        };
    }
    let c = turk_code.unwrap_or("");
    let kind = if c.contains("InsufficientFunds") || lower.contains("insufficient funds") {
        InsufficientFunds
    } else if c.contains("DoesNotExist")
        || c.ends_with("NotFound")
        || code.is_some_and(|c| c.contains("QueueDoesNotExist") || c.contains("NonExistentQueue"))
        || lower.contains("does not exist")
    {
        NotFound
    } else if c.contains("InvalidAssignmentState")
        || c.contains("InvalidHITState")
        || c.contains("AlreadyExists")
        || c.contains("AlreadyApproved")
        || c.contains("AlreadyRejected")
    {
        Conflict
    } else {
        BadRequest
    };
    make(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use PlatformErrorKind::*;

    fn request(code: &str, message: &str) -> Failure {
        service_failure(
            "Op",
            Some("RequestError"),
            Some(message),
            Some(Turk {
                fault: false,
                turk_code: Some(code),
                message: Some(message),
            }),
            400,
        )
    }

    #[test]
    fn transient_errors_are_retryable() {
        let throttled = service_failure("Op", Some("ThrottlingException"), Some("x"), None, 400);
        assert_eq!(throttled.error.kind, Throttled);
        let rate = request("AWS.MechanicalTurk.Whatever", "Rate exceeded");
        assert_eq!(rate.error.kind, Throttled);
        let fault = service_failure(
            "Op",
            Some("ServiceFault"),
            None,
            Some(Turk {
                fault: true,
                turk_code: None,
                message: Some("boom"),
            }),
            500,
        );
        assert_eq!(fault.error.kind, Unavailable);
        let bare = service_failure("Op", None, None, None, 503);
        assert_eq!(bare.error.kind, Unavailable);
        assert!(bare.error.is_retryable() && fault.error.is_retryable());
    }

    #[test]
    fn request_errors_mean_something() {
        for (code, message, kind) in [
            (
                "AWS.MechanicalTurk.InsufficientFunds",
                "x",
                InsufficientFunds,
            ),
            ("AWS.MechanicalTurk.HITDoesNotExist", "x", NotFound),
            ("AWS.MechanicalTurk.AssignmentDoesNotExist", "x", NotFound),
            ("AWS.MechanicalTurk.InvalidAssignmentState", "x", Conflict),
            (
                "AWS.MechanicalTurk.InvalidMaximumAssignmentsIncrease",
                "x",
                BadRequest,
            ),
            ("AWS.ParameterOutOfRange", "x", BadRequest),
        ] {
            let f = request(code, message);
            assert_eq!(f.error.kind, kind, "{code}");
            assert_eq!(f.error.code, code);
            assert!(!f.duplicate && !f.error.is_retryable());
        }
    }

    #[test]
    fn a_seen_token_is_a_duplicate() {
        // Spelled out, not read from the constant: a typo there must fail here.
        for code in [
            "AWS.MechanicalTurk.HitAlreadyExists",
            "AWS.MechanicalTurk.DuplicateRequest",
        ] {
            assert!(request(code, "There is already a HIT with this token").duplicate);
        }
        assert!(request("AWS.X", "The UniqueRequestToken was used before").duplicate);
        let processed = service_failure(
            "UpdateExpirationForHIT",
            Some("RequestError"),
            Some(
                "The idempotency token \"3VJ4Wed Jul 14 20:26:06 UTC 2021\" has already been processed. (1626172412406)",
            ),
            Some(Turk {
                fault: false,
                turk_code: None,
                message: None,
            }),
            400,
        );
        assert!(processed.duplicate);
        assert!(!request("AWS.MechanicalTurk.HITDoesNotExist", "x").duplicate);
        // A validation error about the token field is not a repeat (a bonus would read as paid).
        let invalid = request(
            "AWS.MechanicalTurk.InvalidParameterValue",
            "Value for UniqueRequestToken must be at most 64 characters",
        );
        assert!(!invalid.duplicate);
    }
}
