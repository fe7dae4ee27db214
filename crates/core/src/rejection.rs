//! Why an upload is refused for good. The names are part of the contract (docs/CONTRACTS.md):
//! the Lambda error name is `ImageRejected.<code>` and never changes.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RejectionCode {
    /// The object has no bytes.
    Empty,
    /// The bytes are not an image of any kind we recognise.
    NotAnImage,
    /// An image format we do not decode, or one the profile does not accept.
    UnsupportedFormat,
    /// More bytes than the profile accepts.
    TooLarge,
    /// More pixels than the profile accepts (read from the header, before decoding).
    TooManyPixels,
    /// The header or the data is malformed or truncated.
    Corrupt,
}

impl RejectionCode {
    pub const ALL: [RejectionCode; 6] = [
        RejectionCode::Empty,
        RejectionCode::NotAnImage,
        RejectionCode::UnsupportedFormat,
        RejectionCode::TooLarge,
        RejectionCode::TooManyPixels,
        RejectionCode::Corrupt,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectionCode::Empty => "Empty",
            RejectionCode::NotAnImage => "NotAnImage",
            RejectionCode::UnsupportedFormat => "UnsupportedFormat",
            RejectionCode::TooLarge => "TooLarge",
            RejectionCode::TooManyPixels => "TooManyPixels",
            RejectionCode::Corrupt => "Corrupt",
        }
    }

    /// The error name the state machine matches, e.g. `ImageRejected.TooManyPixels`.
    pub fn error_name(self) -> &'static str {
        match self {
            RejectionCode::Empty => "ImageRejected.Empty",
            RejectionCode::NotAnImage => "ImageRejected.NotAnImage",
            RejectionCode::UnsupportedFormat => "ImageRejected.UnsupportedFormat",
            RejectionCode::TooLarge => "ImageRejected.TooLarge",
            RejectionCode::TooManyPixels => "ImageRejected.TooManyPixels",
            RejectionCode::Corrupt => "ImageRejected.Corrupt",
        }
    }

    /// The inverse of `error_name` (accepts the bare code too).
    pub fn from_error_name(name: &str) -> Option<RejectionCode> {
        let code = name.strip_prefix("ImageRejected.").unwrap_or(name);
        RejectionCode::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

impl fmt::Display for RejectionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused upload: the stable code plus a human explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub code: RejectionCode,
    pub message: String,
}

impl Rejection {
    pub fn new(code: RejectionCode, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
        }
    }

    pub fn corrupt(message: impl Into<String>) -> Self {
        Rejection::new(RejectionCode::Corrupt, message)
    }

    pub fn error_name(&self) -> &'static str {
        self.code.error_name()
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.error_name(), self.message)
    }
}

impl std::error::Error for Rejection {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_round_trip() {
        for code in RejectionCode::ALL {
            assert_eq!(
                code.error_name(),
                format!("ImageRejected.{}", code.as_str())
            );
            assert_eq!(
                RejectionCode::from_error_name(code.error_name()),
                Some(code)
            );
        }
        assert_eq!(RejectionCode::from_error_name("Ferrotype.Transient"), None);
    }

    #[test]
    fn serialises_code_as_its_name() {
        let r = Rejection::new(RejectionCode::TooManyPixels, "too big");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["code"], "TooManyPixels");
        assert_eq!(r.to_string(), "ImageRejected.TooManyPixels: too big");
    }
}
