pub mod account;
pub mod backends;
