//! Exact fixed-point decimals for money and FX rates.
//!
//! Money never passes through `f64`: a JSON number is parsed digit by digit
//! from its text into an integer count of the smallest unit (cents for
//! [`Money`], millionths for [`Rate`]), sums are integer sums, and the only
//! division (converting to USD) rounds half to even at a stated place.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// A non-overflowing fixed-point number with `S` decimal places, stored as an
/// integer count of `10^-S` units.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Fixed<const S: u32>(i64);

/// An amount of money with exactly 2 decimal places (fits `numeric(18,2)`).
pub type Money = Fixed<2>;

/// An FX rate with 6 decimal places: units of a currency per 1 USD.
pub type Rate = Fixed<6>;

/// Why a decimal text was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecimalError {
    /// Not a JSON number at all.
    Syntax,
    /// Below the allowed minimum (negative money, or a rate that is not positive).
    TooSmall,
    /// Above the allowed maximum.
    TooLarge,
    /// More decimal places than the type holds.
    TooPrecise,
}

impl<const S: u32> Fixed<S> {
    /// Zero.
    pub const ZERO: Self = Fixed(0);
    /// `10^S`: how many units make one.
    pub const ONE_UNITS: i64 = 10i64.pow(S);

    /// From a count of `10^-S` units (cents for money).
    pub const fn from_units(units: i64) -> Self {
        Fixed(units)
    }

    /// The count of `10^-S` units.
    pub const fn units(self) -> i64 {
        self.0
    }

    /// Parses the text of a JSON number exactly, accepting values in
    /// `[min_units, max_units]` (in `10^-S` units).
    pub fn parse(text: &str, min_units: i64, max_units: i64) -> Result<Self, DecimalError> {
        let units = parse_units(text, S)?;
        if units < i128::from(min_units) {
            Err(DecimalError::TooSmall)
        } else if units > i128::from(max_units) {
            Err(DecimalError::TooLarge)
        } else {
            Ok(Fixed(units as i64))
        }
    }

    /// Checked sum; `None` on overflow of the 64-bit unit count.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Fixed)
    }
}

impl Money {
    /// The largest amount the warehouse's `numeric(18,2)` holds.
    pub const MAX: Money = Fixed(999_999_999_999_999_999);

    /// Converts an amount in some currency to USD at `rate` (units per USD),
    /// rounding half to even to the cent: `round_half_even(self / rate, 2)`.
    pub fn to_usd(self, rate: Rate) -> Money {
        // cents_usd = cents * 10^6 / micro_rate, exactly, then rounded.
        let num = i128::from(self.0) * 1_000_000;
        Fixed(div_round_half_even(num, i128::from(rate.0)) as i64)
    }

    /// Converts a USD amount into a currency at `rate`, rounding half to even
    /// to the cent: `round_half_even(self * rate, 2)`.
    pub fn from_usd(self, rate: Rate) -> Money {
        let num = i128::from(self.0) * i128::from(rate.0);
        Fixed(div_round_half_even(num, 1_000_000) as i64)
    }

    /// `round_half_even(self / n, 2)`, for averages such as AOV. `n` must be > 0.
    pub fn div_count(self, n: u64) -> Money {
        assert!(n > 0, "average over an empty set");
        Fixed(div_round_half_even(i128::from(self.0), i128::from(n)) as i64)
    }

    /// Rounds half to even to a whole number of currency units (as for yen).
    pub fn round_to_whole(self) -> Money {
        Fixed(div_round_half_even(i128::from(self.0), 100) as i64 * 100)
    }
}

impl Rate {
    /// The largest rate accepted (fits `numeric(18,6)`).
    pub const MAX: Rate = Fixed(999_999_999_999_999_999);
}

/// `round_half_even(num / den)` for `den > 0`.
pub fn div_round_half_even(num: i128, den: i128) -> i128 {
    assert!(den > 0, "division by a non-positive number");
    let q = num.div_euclid(den);
    let r = num.rem_euclid(den);
    match (2 * r).cmp(&den) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
    }
}

/// Parses JSON number text into a count of `10^-scale` units, exactly.
fn parse_units(text: &str, scale: u32) -> Result<i128, DecimalError> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], parse_exponent(&rest[i + 1..])?),
        None => (rest, 0),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let frac_part = frac_part.unwrap_or("");
    let valid_int = !int_part.is_empty()
        && int_part.bytes().all(|b| b.is_ascii_digit())
        && !(int_part.len() > 1 && int_part.starts_with('0'));
    let valid_frac = mantissa.len() == int_part.len()
        || (!frac_part.is_empty() && frac_part.bytes().all(|b| b.is_ascii_digit()));
    if !valid_int || !valid_frac {
        return Err(DecimalError::Syntax);
    }
    // value = digits * 10^(exponent - frac_len); units = value * 10^scale.
    let digits: Vec<u8> = int_part
        .bytes()
        .chain(frac_part.bytes())
        .map(|b| b - b'0')
        .collect();
    let first = digits.iter().position(|&d| d != 0);
    let Some(first) = first else { return Ok(0) };
    let digits = &digits[first..];
    let shift = exponent - frac_part.len() as i64 + i64::from(scale);
    let trailing_zeros = digits.iter().rev().take_while(|&&d| d == 0).count() as i64;
    let kept = if shift < 0 {
        if -shift > trailing_zeros {
            return Err(DecimalError::TooPrecise);
        }
        &digits[..digits.len() - (-shift) as usize]
    } else {
        digits
    };
    let extra_zeros = shift.max(0);
    if kept.len() as i64 + extra_zeros > 37 {
        return Err(if negative {
            DecimalError::TooSmall
        } else {
            DecimalError::TooLarge
        });
    }
    let mut units: i128 = 0;
    for &d in kept {
        units = units * 10 + i128::from(d);
    }
    units *= 10i128.pow(extra_zeros as u32);
    Ok(if negative { -units } else { units })
}

fn parse_exponent(text: &str) -> Result<i64, DecimalError> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DecimalError::Syntax);
    }
    // Saturate absurd exponents: anything past 10^6 is out of range either way.
    let magnitude: i64 = digits.parse().unwrap_or(i64::MAX).min(1_000_000);
    Ok(if text.starts_with('-') {
        -magnitude
    } else {
        magnitude
    })
}

impl<const S: u32> Add for Fixed<S> {
    type Output = Self;
    fn add(self, other: Self) -> Self {
        Fixed(self.0 + other.0)
    }
}

impl<const S: u32> AddAssign for Fixed<S> {
    fn add_assign(&mut self, other: Self) {
        self.0 += other.0;
    }
}

impl<const S: u32> Sub for Fixed<S> {
    type Output = Self;
    fn sub(self, other: Self) -> Self {
        Fixed(self.0 - other.0)
    }
}

impl<const S: u32> std::iter::Sum for Fixed<S> {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Fixed(0), Add::add)
    }
}

impl<const S: u32> fmt::Display for Fixed<S> {
    /// Always exactly `S` decimal places: `12.50`, `-0.05`, `0.921345`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let one = Self::ONE_UNITS.unsigned_abs();
        let abs = self.0.unsigned_abs();
        let sign = if self.0 < 0 { "-" } else { "" };
        write!(
            f,
            "{sign}{}.{:0width$}",
            abs / one,
            abs % one,
            width = S as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(text: &str) -> Result<Money, DecimalError> {
        Money::parse(text, 0, Money::MAX.units())
    }

    #[test]
    fn parses_plain_fraction_and_exponent_forms_exactly() {
        assert_eq!(money("19.99").unwrap().units(), 1999);
        assert_eq!(money("0").unwrap().units(), 0);
        assert_eq!(money("-0").unwrap().units(), 0);
        assert_eq!(money("1.5e1").unwrap().units(), 1500);
        assert_eq!(money("1500e-2").unwrap().units(), 1500);
        assert_eq!(money("1.500").unwrap().units(), 150);
        assert_eq!(money("0.1E+1").unwrap().units(), 100);
        assert_eq!(money("0e99999999999999999999").unwrap().units(), 0);
        assert_eq!(money("9999999999999999.99").unwrap(), Money::MAX);
    }

    #[test]
    fn refuses_what_does_not_fit() {
        assert_eq!(money("1.005"), Err(DecimalError::TooPrecise));
        assert_eq!(money("1e-3"), Err(DecimalError::TooPrecise));
        assert_eq!(money("-0.01"), Err(DecimalError::TooSmall));
        assert_eq!(money("10000000000000000"), Err(DecimalError::TooLarge));
        assert_eq!(money("1e400"), Err(DecimalError::TooLarge));
        assert_eq!(money("01"), Err(DecimalError::Syntax));
        assert_eq!(money("1."), Err(DecimalError::Syntax));
        assert_eq!(money("abc"), Err(DecimalError::Syntax));
    }

    #[test]
    fn rates_hold_six_places() {
        let r = Rate::parse("0.921345", 1, Rate::MAX.units()).unwrap();
        assert_eq!(r.units(), 921_345);
        assert_eq!(r.to_string(), "0.921345");
        assert_eq!(
            Rate::parse("0.0000001", 1, i64::MAX),
            Err(DecimalError::TooPrecise)
        );
        assert_eq!(Rate::parse("0", 1, i64::MAX), Err(DecimalError::TooSmall));
    }

    #[test]
    fn conversion_rounds_half_to_even() {
        let rate = Rate::from_units(2_000_000); // 2 units per USD
        assert_eq!(Money::from_units(1).to_usd(rate).units(), 0); // 0.005 -> 0.00
        assert_eq!(Money::from_units(3).to_usd(rate).units(), 2); // 0.015 -> 0.02
        assert_eq!(Money::from_units(5).to_usd(rate).units(), 2); // 0.025 -> 0.02
        assert_eq!(Money::from_units(1000).div_count(3).units(), 333);
        assert_eq!(Money::from_units(1999).from_usd(rate).units(), 3998);
        assert_eq!(Money::from_units(15050).round_to_whole().units(), 15000);
        assert_eq!(Money::from_units(15150).round_to_whole().units(), 15200);
    }

    #[test]
    fn displays_fixed_places() {
        assert_eq!(Money::from_units(1250).to_string(), "12.50");
        assert_eq!(Money::from_units(-5).to_string(), "-0.05");
        assert_eq!(Money::ZERO.to_string(), "0.00");
    }
}
