//! MTurk's errors as the platform reports them: transient ones retryable, request errors
//! permanent with a meaningful kind.

use crowdcore::platform::{Platform, PlatformErrorKind};
use crowdcore::{AssignmentId, WorkerId};
use serde_json::json;

use crowdcore_mturk::MturkPlatform;

use crate::{LATE_MS, config, key, platform_with, setup, spec};

#[tokio::test]
async fn every_failure_maps_to_its_kind() {
    let (_, fake, platform) = setup().await;
    use PlatformErrorKind::*;
    let cases = [
        (
            400,
            json!({"__type": "ThrottlingException", "message": "Rate exceeded"}),
            Throttled,
            "ThrottlingException",
        ),
        (
            400,
            json!({"__type": "RequestError", "Message": "Rate exceeded", "TurkErrorCode": "AWS.MechanicalTurk.Throttled"}),
            Throttled,
            "AWS.MechanicalTurk.Throttled",
        ),
        (
            500,
            json!({"__type": "ServiceFault", "Message": "internal", "TurkErrorCode": "AWS.MechanicalTurk.ServiceFault"}),
            Unavailable,
            "AWS.MechanicalTurk.ServiceFault",
        ),
        (
            503,
            json!({"message": "Service Unavailable"}),
            Unavailable,
            "",
        ),
        (
            400,
            json!({"__type": "RequestError", "Message": "no such HIT", "TurkErrorCode": "AWS.MechanicalTurk.HITDoesNotExist"}),
            NotFound,
            "AWS.MechanicalTurk.HITDoesNotExist",
        ),
        (
            400,
            json!({"__type": "RequestError", "Message": "bad value", "TurkErrorCode": "AWS.ParameterOutOfRange"}),
            BadRequest,
            "AWS.ParameterOutOfRange",
        ),
    ];
    for (status, body, kind, code) in cases {
        fake.script("GetAccountBalance", status, body.clone());
        let e = platform.balance().await.unwrap_err();
        assert_eq!(e.kind, kind, "{body}: {e}");
        if !code.is_empty() {
            assert_eq!(e.code, code);
        }
        assert_eq!(e.is_retryable(), matches!(kind, Throttled | Unavailable));
    }
    fake.answer_late("GetAccountBalance", LATE_MS);
    let e = platform.balance().await.unwrap_err();
    assert_eq!(e.kind, Timeout, "{e}");
    // Nothing listening at all: retryable too.
    let mut c = config(&fake);
    c.endpoint = crowdcore_mturk::Endpoint::Url("http://127.0.0.1:9".into());
    let nowhere = platform_with(c).await;
    assert!(nowhere.balance().await.unwrap_err().is_retryable());
}

#[tokio::test]
async fn conflicts_are_permanent() {
    let (_, fake, platform) = setup().await;
    let hit = platform.post(&spec(), 1, &key("s", 1)).await.unwrap();
    let a = fake.accept("W1", hit.as_str()).unwrap();
    fake.submit(&a, "x").unwrap();
    let a = AssignmentId::new(a);
    platform.reject(&a, "wrong", &key("s", 2)).await.unwrap();
    let e = platform.approve(&a, &key("s", 3)).await.unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (
            PlatformErrorKind::Conflict,
            "AWS.MechanicalTurk.InvalidAssignmentState"
        )
    );
    let e = platform
        .bonus(
            &WorkerId::new("W2"),
            Some(&a),
            crowdcore::Money::usd_cents(5),
            "x",
            &key("s", 4),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.kind,
        PlatformErrorKind::BadRequest,
        "another worker's assignment: {e}"
    );
}

#[tokio::test]
async fn the_sdk_retries_throttling_by_itself_when_allowed() {
    let (_, fake, _) = setup().await;
    let mut c = config(&fake);
    c.retry.max_attempts = 3;
    let patient = platform_with(c).await;
    let throttle = json!({"__type": "ThrottlingException", "message": "Rate exceeded"});
    fake.script("GetAccountBalance", 400, throttle.clone());
    fake.script("GetAccountBalance", 503, json!({}));
    assert_eq!(
        patient.balance().await.unwrap(),
        crowdcore::Money::usd_cents(100_000)
    );
    assert_eq!(fake.requests("GetAccountBalance").len(), 3);
    // A request error is not retried.
    fake.script(
        "GetAccountBalance",
        400,
        json!({"__type": "RequestError", "Message": "no", "TurkErrorCode": "AWS.X"}),
    );
    assert!(patient.balance().await.is_err());
    assert_eq!(fake.requests("GetAccountBalance").len(), 4);
}

#[tokio::test]
async fn requests_are_signed_with_the_configured_secret() {
    let (_, fake, platform) = setup().await;
    // The fake checks every SigV4 signature: the right secret passes…
    platform.balance().await.unwrap();
    // …a wrong one is refused for good.
    let wrong = aws_credential_types::Credentials::new(
        crate::fake::ACCESS_KEY,
        "not-the-secret",
        None,
        None,
        "test",
    );
    let forged = MturkPlatform::connect_with_credentials(config(&fake), wrong).await;
    let e = forged.balance().await.unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (PlatformErrorKind::BadRequest, "InvalidSignatureException")
    );
}
