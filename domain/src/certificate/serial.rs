//! Certificate serial numbers as the platform names them: lowercase hexadecimal of the DER integer's
//! magnitude, without leading zero octets. Requests may also write them with colons (`0a:1b:…`, as
//! Prism's certificate service does) and in either case; the decimal form (the Cocos agent reports the
//! serial of its certificate in decimal) is read by its own function, as a string of digits is valid
//! in both.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// RFC 5280 §4.1.2.2: at most 20 octets.
pub const SERIAL_MAX_OCTETS: usize = 20;

/// A certificate's serial number: 1–20 octets, big-endian, no leading zero octet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub struct Serial(Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a certificate serial number: hexadecimal (colons allowed), at most 20 octets, not zero"
)]
pub struct SerialError(pub String);

impl Serial {
    /// The serial with these big-endian octets (leading zeros dropped).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SerialError> {
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        let magnitude = &bytes[first..];
        if magnitude.is_empty() || magnitude.len() > SERIAL_MAX_OCTETS {
            return Err(SerialError(hex(bytes)));
        }
        Ok(Self(magnitude.to_vec()))
    }

    /// Reads the hexadecimal form, with or without colons between octets, in either case.
    pub fn parse(text: &str) -> Result<Self, SerialError> {
        let invalid = || SerialError(text.to_owned());
        let digits: String = text.chars().filter(|c| *c != ':').collect();
        if digits.is_empty()
            || digits.len() > 2 * SERIAL_MAX_OCTETS + 2
            || text.starts_with(':')
            || text.ends_with(':')
            || text.contains("::")
            || !digits.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(invalid());
        }
        let padded = if digits.len() % 2 == 1 {
            format!("0{digits}")
        } else {
            digits
        };
        let bytes: Vec<u8> = (0..padded.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&padded[i..i + 2], 16).map_err(|_| invalid()))
            .collect::<Result<_, _>>()?;
        Self::from_bytes(&bytes).map_err(|_| invalid())
    }

    /// Reads the decimal form.
    pub fn parse_decimal(text: &str) -> Result<Self, SerialError> {
        let invalid = || SerialError(text.to_owned());
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let bytes = decimal_to_bytes(text).ok_or_else(invalid)?;
        Self::from_bytes(&bytes).map_err(|_| invalid())
    }

    /// The octets, big-endian, as the DER integer's magnitude.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The decimal form.
    pub fn to_decimal(&self) -> String {
        // Repeated division of the big-endian octets by 10: a serial is at most 20 octets, so a
        // big-integer crate would be more code to build than this.
        let mut digits = Vec::new();
        let mut number = self.0.clone();
        while number.iter().any(|b| *b != 0) {
            let mut remainder = 0u32;
            for byte in number.iter_mut() {
                let value = (remainder << 8) | u32::from(*byte);
                *byte = (value / 10) as u8;
                remainder = value % 10;
            }
            digits.push(b'0' + remainder as u8);
        }
        digits.reverse();
        String::from_utf8(digits).expect("ASCII digits")
    }
}

/// Decimal digits as big-endian octets; `None` past 20 octets.
fn decimal_to_bytes(text: &str) -> Option<Vec<u8>> {
    let mut bytes: Vec<u8> = vec![0];
    for digit in text.bytes() {
        let mut carry = u32::from(digit - b'0');
        for byte in bytes.iter_mut().rev() {
            let value = u32::from(*byte) * 10 + carry;
            *byte = value as u8;
            carry = value >> 8;
        }
        while carry > 0 {
            bytes.insert(0, carry as u8);
            carry >>= 8;
        }
        if bytes.len() > SERIAL_MAX_OCTETS + 1 {
            return None;
        }
    }
    Some(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl TryFrom<String> for Serial {
    type Error = SerialError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Serial> for String {
    fn from(serial: Serial) -> Self {
        serial.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_written_form_names_the_same_serial() {
        let serial = Serial::from_bytes(&[0x00, 0x0a, 0x1b, 0xff]).unwrap();
        assert_eq!(serial.to_string(), "0a1bff");
        for form in ["0a1bff", "0A1BFF", "a1bff", "0a:1b:ff", "00:0a:1b:ff"] {
            assert_eq!(Serial::parse(form), Ok(serial.clone()), "{form}");
        }
        assert_eq!(serial.to_decimal(), "662527");
        assert_eq!(Serial::parse_decimal("662527"), Ok(serial));
        // Digits alone are hexadecimal to `parse`.
        assert_eq!(Serial::parse("10").unwrap().as_bytes(), [0x10]);
    }

    #[test]
    fn decimal_and_hexadecimal_agree_on_a_twenty_octet_serial() {
        let bytes: Vec<u8> = (1..=20).collect();
        let serial = Serial::from_bytes(&bytes).unwrap();
        let decimal = serial.to_decimal();
        assert_eq!(Serial::parse_decimal(&decimal), Ok(serial.clone()));
        assert_eq!(Serial::parse(&serial.to_string()), Ok(serial));
    }

    #[test]
    fn malformed_zero_and_oversize_serials_are_refused() {
        for bad in [
            "",
            "0",
            "00:00",
            "xyz",
            ":0a",
            "0a:",
            "0a::1b",
            "0x0a",
            &"ff".repeat(21),
        ] {
            assert!(Serial::parse(bad).is_err(), "{bad:?}");
        }
        for bad in ["", "0", "12a", &"9".repeat(60)] {
            assert!(Serial::parse_decimal(bad).is_err(), "{bad:?}");
        }
        assert!(Serial::from_bytes(&[0; 3]).is_err());
    }
}
