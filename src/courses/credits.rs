//! Credits as PostgreSQL stores them (`numeric(4,1)`), held exactly in tenths
//! so 4.5 stays 4.5: no floating point between the API and the column.

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::data_types::PgNumeric;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Numeric;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Code, FieldError};

/// 0.0–99.9 in steps of 0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = Numeric)]
pub struct Credits {
    tenths: i32,
}

impl Credits {
    pub const DEFAULT: Credits = Credits { tenths: 30 };
    const MAX_TENTHS: i32 = 999;

    /// From a JSON number: 0–99.9 with at most one decimal place.
    pub fn parse(value: f64) -> Result<Self, FieldError> {
        let tenths = value * 10.0;
        if !value.is_finite() || (tenths - tenths.round()).abs() > 1e-6 {
            return Err(FieldError::new(Code::Precision).with("step", 0.1));
        }
        let tenths = tenths.round();
        if !(0.0..=f64::from(Self::MAX_TENTHS)).contains(&tenths) {
            return Err(FieldError::new(Code::OutOfRange)
                .with("min", 0)
                .with("max", 99.9));
        }
        Ok(Credits {
            tenths: tenths as i32,
        })
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.tenths) / 10.0
    }
}

impl Serialize for Credits {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.as_f64())
    }
}

impl<'de> Deserialize<'de> for Credits {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Credits::parse(f64::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl ToSql<Numeric, Pg> for Credits {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        // numeric's base-10000 digits: the whole part, then the tenth as thousandths.
        let (whole, tenth) = (self.tenths / 10, self.tenths % 10);
        let (weight, digits) = match (whole, tenth) {
            (0, 0) => (0, vec![]),
            (0, t) => (-1, vec![t as i16 * 1000]),
            (w, 0) => (0, vec![w as i16]),
            (w, t) => (0, vec![w as i16, t as i16 * 1000]),
        };
        let numeric = PgNumeric::Positive {
            weight,
            scale: 1,
            digits,
        };
        <PgNumeric as ToSql<Numeric, Pg>>::to_sql(&numeric, &mut out.reborrow())
    }
}

impl FromSql<Numeric, Pg> for Credits {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        let PgNumeric::Positive { weight, digits, .. } = PgNumeric::from_sql(bytes)? else {
            return Err("credits must be a positive number".into());
        };
        let mut tenths: i64 = 0;
        for (i, digit) in digits.iter().enumerate() {
            // Each digit is worth 10000^(weight - i) units, i.e. 10^(4(weight - i) + 1) tenths.
            let exponent = 4 * (i32::from(weight) - i as i32) + 1;
            let digit = i64::from(*digit);
            tenths += if exponent >= 0 {
                digit * 10_i64.pow(exponent as u32)
            } else {
                digit / 10_i64.pow((-exponent) as u32)
            };
        }
        let tenths = i32::try_from(tenths).map_err(|_| "credits out of range")?;
        Ok(Credits { tenths })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tenths_and_refuses_the_rest() {
        assert_eq!(Credits::parse(4.5).unwrap().as_f64(), 4.5);
        assert_eq!(Credits::parse(0.0).unwrap().as_f64(), 0.0);
        assert_eq!(Credits::parse(99.9).unwrap().as_f64(), 99.9);
        assert!(Credits::parse(100.0).is_err());
        assert!(Credits::parse(-0.1).is_err());
        assert!(Credits::parse(3.25).is_err());
        assert!(Credits::parse(f64::NAN).is_err());
    }
}
