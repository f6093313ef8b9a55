//! The `prism` binary's library half: wiring every service into one process, so that the binary, the
//! end-to-end tests and anyone embedding Prism start the platform the same way.

mod platform;

pub use platform::{Platform, PlatformConfig};
