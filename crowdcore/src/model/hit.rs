//! The HIT specification (the seed systems' "ProtoHIT"): what a platform needs to post work.

use serde::{Deserialize, Serialize};

use super::Money;

/// Everything a platform needs to post a HIT. Platform-neutral: each backend maps it onto its
/// own API (MTurk `CreateHITType` + ExternalQuestion, a Toloka pool, the local marketplace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HitSpec {
    /// Short title shown in the platform's work list.
    pub title: String,
    /// What the work is, for workers deciding whether to accept.
    pub description: String,
    /// Search keywords.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Base pay per assignment.
    pub reward: Money,
    /// How long a worker may hold an accepted assignment, in milliseconds.
    pub assignment_duration_ms: u64,
    /// How long the HIT stays listed, in milliseconds.
    pub lifetime_ms: u64,
    /// The largest number of assignments (slots) the HIT may ever have.
    pub max_assignments: u32,
    /// How long after submission an assignment is approved automatically, in milliseconds.
    pub auto_approval_delay_ms: u64,
    /// Who may accept the HIT.
    #[serde(default)]
    pub qualifications: Vec<QualificationRequirement>,
    /// The page workers are sent to (an MTurk ExternalQuestion URL, an iframe source).
    pub landing_url: String,
    /// Height of the frame the landing page is shown in, in pixels.
    pub frame_height: u32,
}

/// A condition a worker must meet to accept a HIT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum QualificationRequirement {
    /// Percentage of the worker's past assignments that were approved, at least `min_percent`.
    ApprovalRate {
        /// 0 to 100.
        min_percent: u8,
    },
    /// Number of the worker's approved assignments, at least `min`.
    ApprovedCount {
        /// Lower bound.
        min: u32,
    },
    /// The worker's country is one of `countries` (ISO 3166-1 alpha-2 codes, such as `US`).
    Locale {
        /// Allowed countries.
        countries: Vec<String>,
    },
    /// A requester-defined qualification compared with a value.
    Custom {
        /// The qualification type's id on the platform.
        qualification: String,
        /// How the worker's value is compared with `value`.
        comparator: Comparator,
        /// The value to compare with; ignored by `Exists` and `DoesNotExist`.
        #[serde(default)]
        value: i64,
    },
}

/// How a worker's qualification value is compared with a requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparator {
    /// Less than.
    LessThan,
    /// Less than or equal to.
    LessThanOrEqualTo,
    /// Greater than.
    GreaterThan,
    /// Greater than or equal to.
    GreaterThanOrEqualTo,
    /// Equal to.
    EqualTo,
    /// Not equal to.
    NotEqualTo,
    /// The worker has the qualification, whatever its value.
    Exists,
    /// The worker does not have the qualification.
    DoesNotExist,
}

impl Comparator {
    /// Whether a worker holding `held` (or nothing) meets `comparator value`.
    pub fn admits(self, held: Option<i64>, value: i64) -> bool {
        match (self, held) {
            (Comparator::DoesNotExist, held) => held.is_none(),
            (Comparator::Exists, held) => held.is_some(),
            (_, None) => false,
            (Comparator::LessThan, Some(v)) => v < value,
            (Comparator::LessThanOrEqualTo, Some(v)) => v <= value,
            (Comparator::GreaterThan, Some(v)) => v > value,
            (Comparator::GreaterThanOrEqualTo, Some(v)) => v >= value,
            (Comparator::EqualTo, Some(v)) => v == value,
            (Comparator::NotEqualTo, Some(v)) => v != value,
        }
    }
}

/// A [`HitSpec`] no platform would accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The title is empty.
    #[error("the title is empty")]
    EmptyTitle,
    /// The reward is negative.
    #[error("the reward {0} is negative")]
    NegativeReward(Money),
    /// A duration or lifetime is zero.
    #[error("{0} must be greater than zero")]
    ZeroDuration(&'static str),
    /// `max_assignments` is zero.
    #[error("max_assignments must be at least 1")]
    NoAssignments,
    /// The landing URL is not an absolute http(s) URL.
    #[error("landing_url {0:?} is not an absolute http or https URL")]
    BadLandingUrl(String),
    /// An approval rate above 100 %.
    #[error("approval rate {0} is above 100")]
    BadApprovalRate(u8),
    /// A locale requirement with no country, or a country that is not two uppercase letters.
    #[error("locale requirement {0:?} is not a list of two-letter country codes")]
    BadLocale(Vec<String>),
}

impl HitSpec {
    /// A HIT titled `title`, paying `reward` for work on the page at `landing_url`, with
    /// defaults for the rest: the title as its description, no keywords, no qualifications,
    /// an hour to hold an assignment, listed for a day, up to 1 000 slots, approved
    /// automatically after three days, shown in a frame 800 pixels high. Change the fields
    /// that matter to the study:
    ///
    /// ```
    /// use crowdcore::{HitSpec, Money};
    ///
    /// let mut spec = HitSpec::new("Label photos", Money::usd_cents(50), "https://lab.example/work");
    /// spec.assignment_duration_ms = 30 * 60_000;
    /// assert!(spec.validate().is_ok());
    /// ```
    pub fn new(title: impl Into<String>, reward: Money, landing_url: impl Into<String>) -> Self {
        let title = title.into();
        Self {
            description: title.clone(),
            title,
            keywords: Vec::new(),
            reward,
            assignment_duration_ms: 3_600_000,
            lifetime_ms: 86_400_000,
            max_assignments: 1_000,
            auto_approval_delay_ms: 3 * 86_400_000,
            qualifications: Vec::new(),
            landing_url: landing_url.into(),
            frame_height: 800,
        }
    }

    /// Checks what every platform requires; backends add their own limits on top.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.title.trim().is_empty() {
            return Err(SpecError::EmptyTitle);
        }
        if self.reward.minor < 0 {
            return Err(SpecError::NegativeReward(self.reward));
        }
        for (name, ms) in [
            ("assignment_duration_ms", self.assignment_duration_ms),
            ("lifetime_ms", self.lifetime_ms),
        ] {
            if ms == 0 {
                return Err(SpecError::ZeroDuration(name));
            }
        }
        if self.max_assignments == 0 {
            return Err(SpecError::NoAssignments);
        }
        let url = self.landing_url.as_str();
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        if !rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/')) {
            return Err(SpecError::BadLandingUrl(self.landing_url.clone()));
        }
        for q in &self.qualifications {
            match q {
                QualificationRequirement::ApprovalRate { min_percent } if *min_percent > 100 => {
                    return Err(SpecError::BadApprovalRate(*min_percent));
                }
                QualificationRequirement::Locale { countries }
                    if countries.is_empty()
                        || !countries
                            .iter()
                            .all(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase())) =>
                {
                    return Err(SpecError::BadLocale(countries.clone()));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> HitSpec {
        HitSpec {
            title: "Label photos in real time".into(),
            description: "Wait for a task, then label photos as they arrive.".into(),
            keywords: vec!["real-time".into(), "labeling".into()],
            reward: Money::usd_cents(50),
            assignment_duration_ms: 3_600_000,
            lifetime_ms: 86_400_000,
            max_assignments: 9,
            auto_approval_delay_ms: 259_200_000,
            qualifications: vec![
                QualificationRequirement::ApprovalRate { min_percent: 95 },
                QualificationRequirement::ApprovedCount { min: 100 },
                QualificationRequirement::Locale {
                    countries: vec!["US".into()],
                },
            ],
            landing_url: "https://study.example/land".into(),
            frame_height: 800,
        }
    }

    #[test]
    fn a_sensible_spec_validates_and_round_trips() {
        let s = spec();
        s.validate().unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<HitSpec>(&json).unwrap(), s);
    }

    #[test]
    fn bad_specs_are_rejected() {
        type Case = (fn(&mut HitSpec), SpecError);
        let cases: Vec<Case> = vec![
            (|s| s.title = " ".into(), SpecError::EmptyTitle),
            (
                |s| s.reward = Money::usd_cents(-1),
                SpecError::NegativeReward(Money::usd_cents(-1)),
            ),
            (
                |s| s.lifetime_ms = 0,
                SpecError::ZeroDuration("lifetime_ms"),
            ),
            (|s| s.max_assignments = 0, SpecError::NoAssignments),
            (
                |s| s.landing_url = "ftp://x".into(),
                SpecError::BadLandingUrl("ftp://x".into()),
            ),
            (
                |s| s.landing_url = "https:///x".into(),
                SpecError::BadLandingUrl("https:///x".into()),
            ),
            (
                |s| {
                    s.qualifications =
                        vec![QualificationRequirement::ApprovalRate { min_percent: 101 }]
                },
                SpecError::BadApprovalRate(101),
            ),
            (
                |s| {
                    s.qualifications = vec![QualificationRequirement::Locale {
                        countries: vec!["usa".into()],
                    }]
                },
                SpecError::BadLocale(vec!["usa".into()]),
            ),
        ];
        for (mutate, expected) in cases {
            let mut s = spec();
            mutate(&mut s);
            assert_eq!(s.validate(), Err(expected));
        }
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let mut v = serde_json::to_value(spec()).unwrap();
        v["colour"] = "blue".into();
        assert!(serde_json::from_value::<HitSpec>(v).is_err());
    }

    #[test]
    fn comparators_follow_mturk_semantics() {
        use Comparator::*;
        assert!(GreaterThanOrEqualTo.admits(Some(5), 5));
        assert!(!GreaterThan.admits(Some(5), 5));
        assert!(!LessThan.admits(None, 5));
        assert!(Exists.admits(Some(0), 99));
        assert!(DoesNotExist.admits(None, 0));
        assert!(!DoesNotExist.admits(Some(1), 0));
        assert!(NotEqualTo.admits(Some(1), 0));
    }
}
