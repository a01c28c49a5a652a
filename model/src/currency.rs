//! The supported ISO 4217 currencies.
//!
//! A closed set on purpose: an order in a currency shopflow has no FX feed for
//! could never be converted to USD, so it is rejected at the door
//! (`unknown_currency`) instead of waiting forever inside the dataflow.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A supported currency. The order of variants is the order of [`Currency::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Currency {
    /// US dollar, the reporting currency: every amount is also shown in USD.
    Usd,
    /// Euro.
    Eur,
    /// Pound sterling.
    Gbp,
    /// Japanese yen.
    Jpy,
    /// Canadian dollar.
    Cad,
    /// Australian dollar.
    Aud,
    /// Swiss franc.
    Chf,
    /// Swedish krona.
    Sek,
    /// Indian rupee.
    Inr,
    /// Brazilian real.
    Brl,
}

impl Currency {
    /// Every supported currency, USD first.
    pub const ALL: [Currency; 10] = [
        Currency::Usd,
        Currency::Eur,
        Currency::Gbp,
        Currency::Jpy,
        Currency::Cad,
        Currency::Aud,
        Currency::Chf,
        Currency::Sek,
        Currency::Inr,
        Currency::Brl,
    ];

    /// The three-letter upper-case ISO 4217 code.
    pub const fn code(self) -> &'static str {
        match self {
            Currency::Usd => "USD",
            Currency::Eur => "EUR",
            Currency::Gbp => "GBP",
            Currency::Jpy => "JPY",
            Currency::Cad => "CAD",
            Currency::Aud => "AUD",
            Currency::Chf => "CHF",
            Currency::Sek => "SEK",
            Currency::Inr => "INR",
            Currency::Brl => "BRL",
        }
    }

    /// The English name, for dimension tables and the dashboard.
    pub const fn name(self) -> &'static str {
        match self {
            Currency::Usd => "US Dollar",
            Currency::Eur => "Euro",
            Currency::Gbp => "Pound Sterling",
            Currency::Jpy => "Japanese Yen",
            Currency::Cad => "Canadian Dollar",
            Currency::Aud => "Australian Dollar",
            Currency::Chf => "Swiss Franc",
            Currency::Sek => "Swedish Krona",
            Currency::Inr => "Indian Rupee",
            Currency::Brl => "Brazilian Real",
        }
    }

    /// Looks a code up; codes are case-sensitive (`usd` is not a code).
    pub fn from_code(code: &str) -> Option<Currency> {
        Currency::ALL.into_iter().find(|c| c.code() == code)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_case_sensitive() {
        for c in Currency::ALL {
            assert_eq!(Currency::from_code(c.code()), Some(c));
        }
        assert_eq!(Currency::from_code("usd"), None);
        assert_eq!(Currency::from_code("XYZ"), None);
    }
}
