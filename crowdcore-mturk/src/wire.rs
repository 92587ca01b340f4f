//! Translations between crowdcore's model and MTurk's request shapes: dollars as strings, the
//! ExternalQuestion document, qualification requirements, the annotation that names an effect.

use aws_sdk_mturk::types::{Comparator as TurkComparator, Locale, QualificationRequirement};
use crowdcore::model::{Comparator, Currency, QualificationRequirement as Requirement};
use crowdcore::platform::{IdempotencyKey, PlatformError};
use crowdcore::{HitSpec, Money};

/// MTurk's system qualification: percentage of assignments approved.
pub const APPROVAL_RATE_QUALIFICATION: &str = "000000000000000000L0";
/// MTurk's system qualification: number of HITs approved.
pub const APPROVED_COUNT_QUALIFICATION: &str = "00000000000000000040";
/// MTurk's system qualification: the worker's locale.
pub const LOCALE_QUALIFICATION: &str = "00000000000000000071";

/// The prefix of the `RequesterAnnotation` of every HIT crowdcore posts; the effect's
/// idempotency key follows it.
pub const ANNOTATION_PREFIX: &str = "crowdcore:";

/// The annotation that ties a HIT to the effect that posted it.
pub fn annotation(key: &IdempotencyKey) -> String {
    format!("{ANNOTATION_PREFIX}{key}")
}

/// Whether an idempotency key is an effect of `session` (`<session>/<seq>`, split at the last
/// `/` as [`crowdcore::EffectId`] reads it): session `study` does not own `study/pilot/7`.
///
/// A session whose `<session>/<seq>` is longer than [`IdempotencyKey::MAX_LEN`] has digests
/// for keys ([`IdempotencyKey::for_effect`]: the digest, `-`, the sequence number), which no
/// longer name the session. Such a key is the session's if digesting `<session>/<seq>` again,
/// with the sequence number the key ends in, gives the same key: exact, needs nothing stored,
/// and works for HITs posted before a restart (or by an older build).
pub fn key_in_session(key: &str, session: &str) -> bool {
    if let Ok(id) = key.parse::<crowdcore::EffectId>() {
        return id.session.as_str() == session;
    }
    let Some(seq) = key
        .rsplit_once('-')
        .and_then(|(_, seq)| seq.parse::<u64>().ok())
    else {
        return false;
    };
    let id = crowdcore::EffectId::new(crowdcore::SessionId::new(session), seq);
    IdempotencyKey::for_effect(&id).as_str() == key
}

/// The idempotency key in a HIT's annotation, if crowdcore posted it.
pub fn key_of_annotation(annotation: &str) -> Option<&str> {
    annotation.strip_prefix(ANNOTATION_PREFIX)
}

/// What every bonus reason crowdcore sends ends with, before the key's digest: the bonus can
/// be recognised in `ListBonusPayments` once MTurk has forgotten its `UniqueRequestToken`.
pub const BONUS_MARKER_PREFIX: &str = "crowdcore-ref:";
/// The longest reason sent with a bonus (the worker reads it).
pub const MAX_BONUS_REASON: usize = 1024;

/// The marker of the bonus paid under `key`: [`BONUS_MARKER_PREFIX`] and 16 hex digits of the
/// key's SHA-256 (the worker sees it, so it names no session).
pub fn bonus_marker(key: &IdempotencyKey) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_str().as_bytes());
    let hex: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{BONUS_MARKER_PREFIX}{hex}")
}

/// The reason a bonus is sent with: the caller's (or `bonus`), shortened to leave room, and the
/// key's marker in brackets.
pub fn bonus_reason(reason: &str, key: &IdempotencyKey) -> String {
    let marker = bonus_marker(key);
    let reason = if reason.trim().is_empty() {
        "bonus"
    } else {
        reason.trim()
    };
    let room = MAX_BONUS_REASON - marker.len() - 3;
    let reason: String = reason.chars().take(room).collect();
    format!("{reason} [{marker}]")
}

/// An amount as MTurk spells US dollars: `"0.50"`, `"101.42"`. Only USD, never negative.
pub fn dollars(amount: Money) -> Result<String, PlatformError> {
    if amount.currency != Currency::USD {
        return Err(PlatformError::bad_request(
            "CurrencyMismatch",
            format!("MTurk pays in USD, not {}", amount.currency),
        ));
    }
    if amount.minor < 0 {
        return Err(PlatformError::bad_request(
            "InvalidAmount",
            format!("{amount} is negative"),
        ));
    }
    Ok(format!("{}.{:02}", amount.minor / 100, amount.minor % 100))
}

/// Parses MTurk's dollar strings (`"10000.00"`, `"5"`, `"0.5"`) into cents.
pub fn parse_dollars(text: &str) -> Option<Money> {
    let text = text.trim();
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 2 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let cents = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().ok()? * 10,
        _ => frac.parse::<i64>().ok()?,
    };
    let whole: i64 = whole.parse().ok()?;
    Some(Money::usd_cents(
        whole.checked_mul(100)?.checked_add(cents)?,
    ))
}

/// The ExternalQuestion document that shows `url` in a frame `frame_height` pixels high
/// (0: MTurk sizes the frame to the window).
pub fn external_question(url: &str, frame_height: u32) -> String {
    format!(
        "<ExternalQuestion xmlns=\"http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd\">\
         <ExternalURL>{}</ExternalURL><FrameHeight>{frame_height}</FrameHeight></ExternalQuestion>",
        xml_escape(url)
    )
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The landing URL a HIT is posted with: MTurk shows only HTTPS pages in its frame.
pub fn landing_url<'a>(
    spec: &'a HitSpec,
    configured: Option<&'a str>,
) -> Result<&'a str, PlatformError> {
    let url = configured.unwrap_or(&spec.landing_url);
    match url.strip_prefix("https://") {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(url),
        _ => Err(PlatformError::bad_request(
            "InvalidLandingUrl",
            format!("{url:?}: MTurk needs an absolute https URL for an ExternalQuestion"),
        )),
    }
}

/// The spec's requirements in MTurk's terms.
pub fn requirements(spec: &HitSpec) -> Result<Vec<QualificationRequirement>, PlatformError> {
    spec.qualifications.iter().map(requirement).collect()
}

fn requirement(req: &Requirement) -> Result<QualificationRequirement, PlatformError> {
    let built = match req {
        Requirement::ApprovalRate { min_percent } => QualificationRequirement::builder()
            .qualification_type_id(APPROVAL_RATE_QUALIFICATION)
            .comparator(TurkComparator::GreaterThanOrEqualTo)
            .integer_values(i32::from(*min_percent)),
        Requirement::ApprovedCount { min } => QualificationRequirement::builder()
            .qualification_type_id(APPROVED_COUNT_QUALIFICATION)
            .comparator(TurkComparator::GreaterThanOrEqualTo)
            .integer_values(i32::try_from(*min).unwrap_or(i32::MAX)),
        Requirement::Locale { countries } => {
            let mut b = QualificationRequirement::builder()
                .qualification_type_id(LOCALE_QUALIFICATION)
                .comparator(TurkComparator::In);
            for country in countries {
                let locale = Locale::builder()
                    .country(country)
                    .build()
                    .map_err(|e| PlatformError::bad_request("InvalidLocale", e.to_string()))?;
                b = b.locale_values(locale);
            }
            b
        }
        Requirement::Custom {
            qualification,
            comparator,
            value,
        } => {
            let b = QualificationRequirement::builder()
                .qualification_type_id(qualification)
                .comparator(comparator_of(*comparator));
            match comparator {
                Comparator::Exists | Comparator::DoesNotExist => b,
                _ => b.integer_values(i32::try_from(*value).map_err(|_| {
                    PlatformError::bad_request(
                        "InvalidQualificationValue",
                        format!("{value} does not fit MTurk's 32-bit integer values"),
                    )
                })?),
            }
        }
    };
    built
        .build()
        .map_err(|e| PlatformError::bad_request("InvalidQualificationRequirement", e.to_string()))
}

fn comparator_of(c: Comparator) -> TurkComparator {
    match c {
        Comparator::LessThan => TurkComparator::LessThan,
        Comparator::LessThanOrEqualTo => TurkComparator::LessThanOrEqualTo,
        Comparator::GreaterThan => TurkComparator::GreaterThan,
        Comparator::GreaterThanOrEqualTo => TurkComparator::GreaterThanOrEqualTo,
        Comparator::EqualTo => TurkComparator::EqualTo,
        Comparator::NotEqualTo => TurkComparator::NotEqualTo,
        Comparator::Exists => TurkComparator::Exists,
        Comparator::DoesNotExist => TurkComparator::DoesNotExist,
    }
}

/// What posting `slots` assignments at `reward` costs with MTurk's commission: 20 %, and 20 %
/// more for a HIT with 10 or more assignments; at least half a cent per assignment, rounded up.
pub fn posting_cost(reward: Money, slots: u32) -> Money {
    let rewards = reward.minor.saturating_mul(i64::from(slots));
    let percent = if slots >= 10 { 40 } else { 20 };
    // Fees in tenths of a cent, rounded up to a whole cent.
    let fee_tenths = (rewards * 10 * percent / 100).max(5 * i64::from(slots));
    Money::new(rewards + (fee_tenths + 9) / 10, reward.currency)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_belongs_to_its_own_session_only() {
        assert!(key_in_session("study/7", "study"));
        assert!(key_in_session("study/pilot/7", "study/pilot"));
        assert!(
            !key_in_session("study/pilot/7", "study"),
            "a session whose name extends it"
        );
        assert!(!key_in_session("studyx/7", "study"));
        assert!(!key_in_session(
            "0123456789abcdef0123456789abcdef-7",
            "study"
        ));
    }

    #[test]
    fn a_digested_key_still_belongs_to_its_session() {
        let long = "a-session-id-long-enough-that-its-effect-ids-exceed-sixty-four-characters";
        let key = |session: &str, seq| {
            IdempotencyKey::for_effect(&crowdcore::EffectId::new(
                crowdcore::SessionId::new(session),
                seq,
            ))
        };
        let k = key(long, 12);
        assert!(!k.as_str().contains('/'), "digested: {k}");
        assert!(key_in_session(k.as_str(), long));
        assert!(!key_in_session(k.as_str(), &format!("{long}x")));
        assert!(!key_in_session(k.as_str(), "study"));
        // Another sequence number under the same digest is not a key the session made.
        let forged = format!("{}-13", k.as_str().rsplit_once('-').unwrap().0);
        assert!(!key_in_session(&forged, long));
        assert!(!key_in_session("junk-", long));
    }

    #[test]
    fn a_bonus_reason_carries_its_keys_marker() {
        let k = |seq| {
            IdempotencyKey::for_effect(&crowdcore::EffectId::new(
                crowdcore::SessionId::new("s1"),
                seq,
            ))
        };
        let r = bonus_reason("waiting_bonus", &k(4));
        assert!(r.starts_with("waiting_bonus [crowdcore-ref:"), "{r}");
        assert!(r.ends_with(&format!("{}]", bonus_marker(&k(4)))));
        assert_eq!(bonus_marker(&k(4)).len(), BONUS_MARKER_PREFIX.len() + 16);
        assert_ne!(bonus_marker(&k(4)), bonus_marker(&k(5)));
        assert!(!r.contains("s1"), "the worker is not shown the session");
        assert!(bonus_reason("  ", &k(4)).starts_with("bonus [crowdcore-ref:"));
        let long = bonus_reason(&"x".repeat(5_000), &k(4));
        assert_eq!(long.chars().count(), MAX_BONUS_REASON);
        assert!(long.contains(&bonus_marker(&k(4))));
    }

    #[test]
    fn dollars_round_trip() {
        for (cents, text) in [(0, "0.00"), (5, "0.05"), (50, "0.50"), (10_142, "101.42")] {
            assert_eq!(dollars(Money::usd_cents(cents)).unwrap(), text);
            assert_eq!(parse_dollars(text), Some(Money::usd_cents(cents)));
        }
        assert_eq!(parse_dollars("5"), Some(Money::usd_cents(500)));
        assert_eq!(parse_dollars("0.5"), Some(Money::usd_cents(50)));
        for junk in ["", ".5", "1.234", "-1.00", "1,00", "$1"] {
            assert_eq!(parse_dollars(junk), None, "{junk}");
        }
        assert!(dollars(Money::usd_cents(-1)).is_err());
        let eur = Money::new(5, Currency::new("EUR").unwrap());
        assert_eq!(dollars(eur).unwrap_err().code, "CurrencyMismatch");
    }

    #[test]
    fn the_question_escapes_the_url() {
        let xml = external_question("https://x.example/l?a=1&b=<2>", 640);
        assert!(xml.contains("<ExternalURL>https://x.example/l?a=1&amp;b=&lt;2&gt;</ExternalURL>"));
        assert!(xml.contains("<FrameHeight>640</FrameHeight>"));
        assert!(xml.starts_with("<ExternalQuestion xmlns=\"http://mechanicalturk.amazonaws.com/"));
    }

    #[test]
    fn annotations_carry_the_key() {
        let key = IdempotencyKey::for_effect(&crowdcore::EffectId::new(
            crowdcore::SessionId::new("s1"),
            4,
        ));
        let a = annotation(&key);
        assert_eq!(a, "crowdcore:s1/4");
        assert_eq!(key_of_annotation(&a), Some("s1/4"));
        assert_eq!(key_of_annotation("someone else's"), None);
    }

    #[test]
    fn the_fee_follows_mturk_rules() {
        // 9 × 50 ¢ = 4.50 $ + 20 % = 5.40 $; 10 × 50 ¢ = 5 $ + 40 % = 7 $.
        assert_eq!(posting_cost(Money::usd_cents(50), 9), Money::usd_cents(540));
        assert_eq!(
            posting_cost(Money::usd_cents(50), 10),
            Money::usd_cents(700)
        );
        // The minimum commission: one cent on a 1 ¢ HIT.
        assert_eq!(posting_cost(Money::usd_cents(1), 1), Money::usd_cents(2));
    }
}
