//! Amazon SNS message signatures, for notifications that reach the queue through an SNS topic
//! (MTurk → SNS → SQS): the queue then holds SNS envelopes, and anyone allowed to send to the
//! queue could write one. [`SnsVerifier`] accepts an envelope only if
//!
//! - its `TopicArn` is the configured topic (a genuine message of someone else's topic, copied
//!   into the queue, is refused: AWS signs every topic's messages with the same certificates);
//! - its `SigningCertURL` is `https://sns.<region>.amazonaws.com/….pem` — no other scheme, host,
//!   port or credentials — checked before anything is fetched;
//! - its `Signature` (base64) is an RSA PKCS#1 v1.5 signature, with SHA-1 for `SignatureVersion`
//!   `1` and SHA-256 for `2`, over the canonical string of its `Type` (`Notification`:
//!   `Message`, `MessageId`, `Subject` if present, `Timestamp`, `TopicArn`, `Type`;
//!   `SubscriptionConfirmation` and `UnsubscribeConfirmation`: `Message`, `MessageId`,
//!   `SubscribeURL`, `Timestamp`, `Token`, `TopicArn`, `Type`; each as `name\nvalue\n`), by the
//!   key of the certificate at that URL.
//!
//! The certificate is parsed by `rustls-webpki` and the signature checked by `ring`; nothing
//! here is hand-rolled cryptography. The certificate is trusted because it was fetched over
//! TLS (webpki roots) from an SNS host, as AWS's SDK validators do; it is not chained to a root
//! itself. Certificates are kept by URL once fetched. The fetching is a [`CertFetcher`]:
//! [`HttpsCertFetcher`] in production, a local one in tests (no network).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    AlgorithmIdentifier, CertificateDer, InvalidSignature, SignatureVerificationAlgorithm, alg_id,
};
use serde::Deserialize;

/// Why an SNS envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnsError {
    /// The envelope lacks a field its type needs.
    #[error("sns message without {0}")]
    Missing(&'static str),
    /// The envelope has no signature (or no certificate URL): unsigned.
    #[error("unsigned sns message")]
    Unsigned,
    /// A `SignatureVersion` other than 1 and 2.
    #[error("unsupported sns signature version {0:?}")]
    UnsupportedVersion(String),
    /// A message type without a documented canonical form.
    #[error("unsupported sns message type {0:?}")]
    UnsupportedType(String),
    /// The certificate URL is not `https://sns.<region>.amazonaws.com/….pem`.
    #[error("signing certificate url {0:?} is not an https sns.<region>.amazonaws.com pem")]
    CertUrl(String),
    /// The message comes from another topic.
    #[error("topic {0:?} is not the configured topic")]
    WrongTopic(String),
    /// The certificate could not be fetched.
    #[error("fetching the signing certificate failed: {0}")]
    Fetch(String),
    /// The certificate is not a readable X.509 certificate.
    #[error("bad signing certificate: {0}")]
    Certificate(String),
    /// The signature is not base64, or does not verify.
    #[error("bad sns signature")]
    BadSignature,
}

/// An SNS envelope as it arrives in the queue (JSON, SQS subscription without raw delivery).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnsMessage {
    /// `Notification`, `SubscriptionConfirmation` or `UnsubscribeConfirmation`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// SNS's id of the message.
    #[serde(default)]
    pub message_id: Option<String>,
    /// The topic it was published to.
    #[serde(default)]
    pub topic_arn: Option<String>,
    /// The subject, if the publisher gave one.
    #[serde(default)]
    pub subject: Option<String>,
    /// The payload: MTurk's notification document for a `Notification`.
    #[serde(default)]
    pub message: Option<String>,
    /// When SNS published it.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// `1` (SHA1withRSA) or `2` (SHA256withRSA).
    #[serde(default)]
    pub signature_version: Option<String>,
    /// The signature, base64.
    #[serde(default)]
    pub signature: Option<String>,
    /// Where the signing certificate is.
    #[serde(rename = "SigningCertURL", default)]
    pub signing_cert_url: Option<String>,
    /// For confirmations: the URL that confirms the subscription.
    #[serde(rename = "SubscribeURL", default)]
    pub subscribe_url: Option<String>,
    /// For confirmations: the subscription token.
    #[serde(default)]
    pub token: Option<String>,
}

/// The message types SNS signs.
const TYPES: [&str; 3] = [
    "Notification",
    "SubscriptionConfirmation",
    "UnsubscribeConfirmation",
];

impl SnsMessage {
    /// The envelope in a queue message's body, if it is one (a JSON object with a known SNS
    /// `Type` and no MTurk `Events`); `None` for anything else.
    pub fn from_body(body: &str) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_str(body).ok()?;
        Self::from_value(&value)
    }

    pub(crate) fn from_value(value: &serde_json::Value) -> Option<Self> {
        if value.get("Events").is_some() {
            return None;
        }
        let kind = value.get("Type")?.as_str()?;
        if !TYPES.contains(&kind) {
            return None;
        }
        serde_json::from_value(value.clone()).ok()
    }

    /// The string SNS signed for this message's type.
    pub fn string_to_sign(&self) -> Result<String, SnsError> {
        let need =
            |v: &Option<String>, name: &'static str| v.clone().ok_or(SnsError::Missing(name));
        let mut fields: Vec<(&str, String)> = Vec::new();
        match self.kind.as_str() {
            "Notification" => {
                fields.push(("Message", need(&self.message, "Message")?));
                fields.push(("MessageId", need(&self.message_id, "MessageId")?));
                if let Some(subject) = &self.subject {
                    fields.push(("Subject", subject.clone()));
                }
                fields.push(("Timestamp", need(&self.timestamp, "Timestamp")?));
                fields.push(("TopicArn", need(&self.topic_arn, "TopicArn")?));
            }
            "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
                fields.push(("Message", need(&self.message, "Message")?));
                fields.push(("MessageId", need(&self.message_id, "MessageId")?));
                fields.push(("SubscribeURL", need(&self.subscribe_url, "SubscribeURL")?));
                fields.push(("Timestamp", need(&self.timestamp, "Timestamp")?));
                fields.push(("Token", need(&self.token, "Token")?));
                fields.push(("TopicArn", need(&self.topic_arn, "TopicArn")?));
            }
            other => return Err(SnsError::UnsupportedType(other.to_owned())),
        }
        fields.push(("Type", self.kind.clone()));
        let mut out = String::new();
        for (name, value) in fields {
            out.push_str(name);
            out.push('\n');
            out.push_str(&value);
            out.push('\n');
        }
        Ok(out)
    }
}

/// Checks a `SigningCertURL`: `https`, host `sns.<region>.amazonaws.com` (region: lowercase
/// letters, digits and dashes), no port, no user or password, a path ending in `.pem`.
pub fn check_cert_url(text: &str) -> Result<url::Url, SnsError> {
    let bad = || SnsError::CertUrl(text.to_owned());
    let url = url::Url::parse(text).map_err(|_| bad())?;
    let region = url
        .host_str()
        .and_then(|h| h.strip_prefix("sns."))
        .and_then(|h| h.strip_suffix(".amazonaws.com"))
        .ok_or_else(bad)?;
    let region_ok = !region.is_empty()
        && region.contains('-')
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-');
    let ok = url.scheme() == "https"
        && region_ok
        && url.port().is_none()
        && url.username().is_empty()
        && url.password().is_none()
        && url.path().ends_with(".pem")
        && url.query().is_none()
        && url.fragment().is_none();
    if ok { Ok(url) } else { Err(bad()) }
}

/// Fetches signing certificates (PEM or DER bytes). Only URLs that passed [`check_cert_url`]
/// are asked for.
#[async_trait]
pub trait CertFetcher: Send + Sync + fmt::Debug {
    /// The certificate at `url`.
    async fn fetch(&self, url: &url::Url) -> Result<Vec<u8>, String>;
}

/// Fetches certificates over HTTPS (rustls, webpki roots), refusing redirects and plain HTTP,
/// within 5 s.
#[derive(Debug, Clone)]
pub struct HttpsCertFetcher {
    /// The client, or why it could not be built (then every fetch fails with it).
    client: Result<reqwest::Client, String>,
}

impl HttpsCertFetcher {
    /// A fetcher with its own client.
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot start an https client: {e}"));
        Self { client }
    }
}

impl Default for HttpsCertFetcher {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl CertFetcher for HttpsCertFetcher {
    async fn fetch(&self, url: &url::Url) -> Result<Vec<u8>, String> {
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let response = client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status().as_u16()));
        }
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        if bytes.len() > 64 * 1024 {
            return Err("certificate larger than 64 KiB".into());
        }
        Ok(bytes.to_vec())
    }
}

/// RSA PKCS#1 v1.5 verification by ring, for rustls-webpki to call with the certificate's key.
#[derive(Debug)]
struct RsaPkcs1 {
    params: &'static ring::signature::RsaParameters,
    signature_alg_id: AlgorithmIdentifier,
}

impl SignatureVerificationAlgorithm for RsaPkcs1 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        ring::signature::UnparsedPublicKey::new(self.params, public_key)
            .verify(message, signature)
            .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::RSA_ENCRYPTION
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.signature_alg_id
    }
}

/// `sha1WithRSAEncryption` (1.2.840.113549.1.1.5) with NULL parameters, as rustls-pki-types
/// spells algorithm identifiers (it names no SHA-1 one).
const RSA_PKCS1_SHA1: AlgorithmIdentifier = AlgorithmIdentifier::from_slice(&[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05, 0x00,
]);

/// SignatureVersion 1: SHA1withRSA. ring allows SHA-1 for verifying legacy signatures only,
/// which this is.
static SHA1_WITH_RSA: RsaPkcs1 = RsaPkcs1 {
    params: &ring::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
    signature_alg_id: RSA_PKCS1_SHA1,
};

/// SignatureVersion 2: SHA256withRSA.
static SHA256_WITH_RSA: RsaPkcs1 = RsaPkcs1 {
    params: &ring::signature::RSA_PKCS1_2048_8192_SHA256,
    signature_alg_id: alg_id::RSA_PKCS1_SHA256,
};

/// Verifies SNS envelopes from one topic. See the [module docs](self).
pub struct SnsVerifier {
    topic_arn: String,
    fetcher: Arc<dyn CertFetcher>,
    /// Certificates (DER) by URL.
    certs: Mutex<HashMap<String, Arc<Vec<u8>>>>,
}

impl fmt::Debug for SnsVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnsVerifier")
            .field("topic_arn", &self.topic_arn)
            .field("fetcher", &self.fetcher)
            .finish_non_exhaustive()
    }
}

impl SnsVerifier {
    /// Accepts messages of `topic_arn`, fetching certificates over HTTPS.
    pub fn new(topic_arn: impl Into<String>) -> Self {
        Self::with_fetcher(topic_arn, Arc::new(HttpsCertFetcher::new()))
    }

    /// Accepts messages of `topic_arn`, fetching certificates with `fetcher`.
    pub fn with_fetcher(topic_arn: impl Into<String>, fetcher: Arc<dyn CertFetcher>) -> Self {
        Self {
            topic_arn: topic_arn.into(),
            fetcher,
            certs: Mutex::new(HashMap::new()),
        }
    }

    /// The topic whose messages are accepted.
    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }

    /// `Ok` only if `message` is signed by SNS for the configured topic (see the
    /// [module docs](self)). Checks what it can before it fetches anything.
    pub async fn verify(&self, message: &SnsMessage) -> Result<(), SnsError> {
        let (Some(signature), Some(cert_url)) = (&message.signature, &message.signing_cert_url)
        else {
            return Err(SnsError::Unsigned);
        };
        let topic = message.topic_arn.as_deref().unwrap_or("");
        if topic != self.topic_arn {
            return Err(SnsError::WrongTopic(topic.to_owned()));
        }
        let alg: &dyn SignatureVerificationAlgorithm = match message.signature_version.as_deref() {
            Some("1") => &SHA1_WITH_RSA,
            Some("2") => &SHA256_WITH_RSA,
            other => {
                return Err(SnsError::UnsupportedVersion(
                    other.unwrap_or_default().to_owned(),
                ));
            }
        };
        let url = check_cert_url(cert_url)?;
        let signed = message.string_to_sign()?;
        let signature =
            aws_smithy_types::base64::decode(signature).map_err(|_| SnsError::BadSignature)?;
        let der = self.certificate(&url).await?;
        let der = CertificateDer::from(der.as_slice());
        let cert = webpki::EndEntityCert::try_from(&der)
            .map_err(|e| SnsError::Certificate(format!("{e:?}")))?;
        cert.verify_signature(alg, signed.as_bytes(), &signature)
            .map_err(|_| SnsError::BadSignature)
    }

    /// The certificate at `url` as DER: kept once fetched and read.
    async fn certificate(&self, url: &url::Url) -> Result<Arc<Vec<u8>>, SnsError> {
        let cached = self.lock().get(url.as_str()).cloned();
        if let Some(der) = cached {
            return Ok(der);
        }
        let bytes = self.fetcher.fetch(url).await.map_err(SnsError::Fetch)?;
        let der = if bytes.starts_with(b"-----") {
            CertificateDer::from_pem_slice(&bytes)
                .map_err(|e| SnsError::Certificate(format!("{e:?}")))?
                .to_vec()
        } else {
            bytes
        };
        // Read it before keeping it, so that junk is fetched again rather than kept.
        webpki::EndEntityCert::try_from(&CertificateDer::from(der.as_slice()))
            .map_err(|e| SnsError::Certificate(format!("{e:?}")))?;
        let der = Arc::new(der);
        self.lock().insert(url.as_str().to_owned(), der.clone());
        Ok(der)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Vec<u8>>>> {
        // Only whole entries are inserted: a poisoned map is intact.
        self.certs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification() -> SnsMessage {
        SnsMessage {
            kind: "Notification".into(),
            message_id: Some("m-1".into()),
            topic_arn: Some("arn:aws:sns:us-east-1:123456789012:t".into()),
            subject: None,
            message: Some("{\"Events\":[]}\nline two".into()),
            timestamp: Some("2026-01-01T00:00:00.000Z".into()),
            signature_version: Some("2".into()),
            signature: Some("c2ln".into()),
            signing_cert_url: Some(
                "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem".into(),
            ),
            subscribe_url: None,
            token: None,
        }
    }

    #[test]
    fn the_canonical_string_of_a_notification() {
        let mut m = notification();
        assert_eq!(
            m.string_to_sign().unwrap(),
            "Message\n{\"Events\":[]}\nline two\nMessageId\nm-1\nTimestamp\n2026-01-01T00:00:00.000Z\nTopicArn\narn:aws:sns:us-east-1:123456789012:t\nType\nNotification\n"
        );
        m.subject = Some("hello".into());
        assert!(
            m.string_to_sign()
                .unwrap()
                .contains("MessageId\nm-1\nSubject\nhello\nTimestamp\n")
        );
        m.message_id = None;
        assert_eq!(m.string_to_sign(), Err(SnsError::Missing("MessageId")));
    }

    #[test]
    fn the_canonical_string_of_a_confirmation() {
        let mut m = notification();
        m.kind = "SubscriptionConfirmation".into();
        m.subject = Some("ignored".into());
        m.subscribe_url =
            Some("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription".into());
        m.token = Some("tok".into());
        assert_eq!(
            m.string_to_sign().unwrap(),
            "Message\n{\"Events\":[]}\nline two\nMessageId\nm-1\nSubscribeURL\nhttps://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription\nTimestamp\n2026-01-01T00:00:00.000Z\nToken\ntok\nTopicArn\narn:aws:sns:us-east-1:123456789012:t\nType\nSubscriptionConfirmation\n"
        );
        m.kind = "UnsubscribeConfirmation".into();
        assert!(
            m.string_to_sign()
                .unwrap()
                .ends_with("Type\nUnsubscribeConfirmation\n")
        );
        m.token = None;
        assert_eq!(m.string_to_sign(), Err(SnsError::Missing("Token")));
    }

    #[test]
    fn only_https_sns_hosts_serve_certificates() {
        for ok in [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.eu-west-3.amazonaws.com/a/b.pem",
            "https://sns.us-gov-west-1.amazonaws.com/x.pem",
        ] {
            assert!(check_cert_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
            "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.amazonaws.com/x.pem",
            "https://snsx.us-east-1.amazonaws.com/x.pem",
            "https://sns.us_east_1.amazonaws.com/x.pem",
            "https://sns.-.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com:8443/x.pem",
            "https://user:pw@sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com/x.txt",
            "https://sns.us-east-1.amazonaws.com/x.pem?y=1",
            "https://sns.US-EAST-1.amazonaws.com.cn/x.pem",
            "file:///etc/x.pem",
            "not a url",
        ] {
            assert!(check_cert_url(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_https_fetcher_refuses_plain_http() {
        // Refused by the client before any connection (loopback, in case it tried).
        let url = url::Url::parse("http://127.0.0.1:9/x.pem").unwrap();
        assert!(HttpsCertFetcher::new().fetch(&url).await.is_err());
    }

    #[test]
    fn envelopes_are_told_from_documents() {
        assert!(SnsMessage::from_body(r#"{"Type":"Notification","Message":"x"}"#).is_some());
        assert!(SnsMessage::from_body(r#"{"Type":"Notification","Events":[]}"#).is_none());
        assert!(SnsMessage::from_body(r#"{"Type":"Other"}"#).is_none());
        assert!(SnsMessage::from_body("junk").is_none());
    }
}
