//! Certificates the platform's authority issues: the profiles that bound what each kind of entity's
//! certificate may say, and serial numbers in the forms requests use.

mod profile;
mod serial;

pub use profile::{COMMON_NAME_MAX, DNS_NAME_MAX, NAMES_MAX, Profile, ProfileError, Subject, URI_MAX};
pub use serial::{SERIAL_MAX_OCTETS, Serial, SerialError};
