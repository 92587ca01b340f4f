//! Money as integer minor units. There are no floats anywhere near money in crowdcore.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An ISO 4217 currency code: three ASCII uppercase letters, such as `USD`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

/// A currency code that is not three ASCII uppercase letters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("currency code {0:?} is not three uppercase ASCII letters")]
pub struct CurrencyError(pub String);

impl Currency {
    /// US dollars, the currency of MTurk and Toloka.
    pub const USD: Currency = Currency(*b"USD");

    /// Parses a three-letter code.
    pub fn new(code: &str) -> Result<Self, CurrencyError> {
        match code.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Self([a, b, c])),
            _ => Err(CurrencyError(code.to_owned())),
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // The constructor admits only ASCII uppercase letters, which are valid UTF-8.
        std::str::from_utf8(&self.0).expect("currency codes are ASCII")
    }
}

impl Default for Currency {
    fn default() -> Self {
        Self::USD
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Currency::new(&s).map_err(serde::de::Error::custom)
    }
}

/// An amount of money: integer minor units (cents for USD) and a currency.
///
/// Arithmetic is checked: adding different currencies or overflowing is an error, never a
/// silent wrap or a float rounding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Minor units (cents for USD). Negative amounts are refunds or corrections.
    pub minor: i64,
    /// The currency of the amount.
    pub currency: Currency,
}

/// Money arithmetic that cannot be done exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The two amounts are in different currencies.
    #[error("cannot combine {0} with {1}")]
    CurrencyMismatch(Currency, Currency),
    /// The result does not fit in 64-bit minor units.
    #[error("money amount overflows")]
    Overflow,
}

impl Money {
    /// `minor` units of `currency`.
    pub const fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// US cents.
    pub const fn usd_cents(cents: i64) -> Self {
        Self::new(cents, Currency::USD)
    }

    /// Nothing, in `currency`.
    pub const fn zero(currency: Currency) -> Self {
        Self::new(0, currency)
    }

    /// Whether the amount is zero.
    pub const fn is_zero(&self) -> bool {
        self.minor == 0
    }

    /// `self + other`, if the currencies agree and the sum fits.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    /// `self - other`, if the currencies agree and the difference fits.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    /// `self × n`, if the product fits.
    pub fn checked_mul(self, n: i64) -> Result<Money, MoneyError> {
        let minor = self.minor.checked_mul(n).ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency, other.currency))
        }
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Money {
    /// Two decimal places, as for every currency crowd platforms pay in (`1.25 USD`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        write!(f, "{sign}{}.{:02} {}", abs / 100, abs % 100, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_is_checked() {
        let a = Money::usd_cents(150);
        assert_eq!(
            a.checked_add(Money::usd_cents(25)),
            Ok(Money::usd_cents(175))
        );
        assert_eq!(
            a.checked_sub(Money::usd_cents(200)),
            Ok(Money::usd_cents(-50))
        );
        assert_eq!(a.checked_mul(3), Ok(Money::usd_cents(450)));
        let eur = Money::new(1, Currency::new("EUR").unwrap());
        assert_eq!(
            a.checked_add(eur),
            Err(MoneyError::CurrencyMismatch(Currency::USD, eur.currency))
        );
        assert_eq!(
            Money::usd_cents(i64::MAX).checked_add(a),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn displays_and_serializes_plainly() {
        assert_eq!(Money::usd_cents(-1205).to_string(), "-12.05 USD");
        let json = serde_json::to_string(&Money::usd_cents(7)).unwrap();
        assert_eq!(json, r#"{"minor":7,"currency":"USD"}"#);
        assert!(serde_json::from_str::<Money>(r#"{"minor":7,"currency":"usd"}"#).is_err());
    }
}

/// Serde helper: `Money` as `{"amount_cents": 125, "currency": "USD"}`, the shape of amounts in
/// the replay format (use with `#[serde(flatten, with = "…")]`).
pub mod money_as_cents {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Currency, Money};

    #[derive(Serialize, Deserialize)]
    struct Cents {
        amount_cents: i64,
        currency: Currency,
    }

    /// Serializes `money` as `amount_cents` and `currency`.
    pub fn serialize<S: Serializer>(money: &Money, s: S) -> Result<S::Ok, S::Error> {
        Cents {
            amount_cents: money.minor,
            currency: money.currency,
        }
        .serialize(s)
    }

    /// Reads `amount_cents` and `currency`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        let c = Cents::deserialize(d)?;
        Ok(Money::new(c.amount_cents, c.currency))
    }
}
