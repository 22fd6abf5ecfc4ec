//! One spelling per enum variant, shared by JSON and the database.
//!
//! serde spells the vocabulary's enums in JSON; the database stores the same words in `text`
//! columns. [`spelled!`] gives an enum `as_str`, `parse`, `ALL`, `Display` and
//! `TryFrom<String>` (what the host's row types decode through) from one table, and each
//! enum's tests check that the table and serde agree.

/// A word that is not one of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {kind}")]
pub struct UnknownSpelling {
    /// The enum's name.
    pub kind: &'static str,
    /// What was found.
    pub value: String,
}

macro_rules! spelled {
    ($enum:ident { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl $enum {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$enum] = &[$($enum::$variant),+];

            /// The spelling used in JSON and in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($enum::$variant => $word),+
                }
            }

            /// Parses the spelling used in JSON and in the database.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($word => Some($enum::$variant),)+
                    _ => None,
                }
            }
        }

        impl core::fmt::Display for $enum {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl TryFrom<String> for $enum {
            type Error = $crate::spelling::UnknownSpelling;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                $enum::parse(&value).ok_or($crate::spelling::UnknownSpelling {
                    kind: stringify!($enum),
                    value,
                })
            }
        }
    };
}

pub(crate) use spelled;
