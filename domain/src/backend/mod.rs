//! The backend aggregate: one place where CVMs are made — a Cocos manager, the local emulated agent,
//! or a machine its owner runs (bring your own) — with what it offers (confidential platforms, how
//! many VMs at once, labels such as a region, a price) and whether it answered its last health check.
//! A backend belongs to a workspace, or to the whole platform (registered by an operator, usable by
//! every workspace). Which backend runs a CVM is [`crate::cvm::place`]'s decision.

mod command;
mod error;
mod event;
mod state;

pub use command::BackendCommand;
pub use error::BackendError;
pub use event::{
    BackendEvent, BackendHealthChanged, BackendRegistered, BackendRemoved, BackendSettings, BackendUpdated,
    Driver, Price,
};
pub use state::{Backend, BackendStatus};

use crate::aggregate::{Aggregate, CommandContext};
use crate::cvm::ConfidentialPlatform;
use crate::values::check_text;

pub const NAME_MAX: usize = 64;
pub const CAPACITY_MAX: u32 = 100_000;
pub const LABELS_MAX: usize = 32;
pub const LABEL_MAX: usize = 64;
pub const ADDRESS_MAX: usize = 256;
pub const PEM_MAX: usize = 64 * 1024;
pub const DETAIL_MAX: usize = 1024;

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.".contains(&b)
}

fn check_address(address: &str) -> Result<(), BackendError> {
    // `host:port`, the host a name or an address (IPv6 in brackets), the port a number.
    let valid = address.len() <= ADDRESS_MAX
        && address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty()
                && host.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
                && port.parse::<u16>().is_ok_and(|p| p != 0)
        });
    if valid {
        Ok(())
    } else {
        Err(BackendError::Address(address.chars().take(ADDRESS_MAX).collect()))
    }
}

fn check_settings(settings: &BackendSettings) -> Result<(), BackendError> {
    if settings.name.is_empty() || settings.name.len() > NAME_MAX || !settings.name.bytes().all(is_name_char)
    {
        return Err(BackendError::Name);
    }
    if settings.platforms.is_empty() {
        return Err(BackendError::NoPlatform);
    }
    let mut platforms = settings.platforms.clone();
    platforms.sort();
    platforms.dedup();
    if platforms.len() != settings.platforms.len() {
        return Err(BackendError::RepeatedPlatform);
    }
    if settings.capacity == 0 || settings.capacity > CAPACITY_MAX {
        return Err(BackendError::Capacity { max: CAPACITY_MAX });
    }
    if settings.labels.len() > LABELS_MAX {
        return Err(BackendError::TooManyLabels { max: LABELS_MAX });
    }
    for (key, value) in &settings.labels {
        let key_ok = !key.is_empty() && key.len() <= LABEL_MAX && key.bytes().all(is_name_char);
        let value_ok = value.len() <= LABEL_MAX && value.bytes().all(is_name_char);
        if !key_ok || !value_ok {
            return Err(BackendError::Label(key.chars().take(LABEL_MAX).collect()));
        }
    }
    match &settings.driver {
        // The emulated agent protects nothing: it may not pretend to offer a TEE.
        Driver::Local => {
            if settings.platforms != [ConfidentialPlatform::None] {
                return Err(BackendError::LocalIsInsecure);
            }
        }
        Driver::CocosManager { address, ca_pem } => {
            check_address(address)?;
            if !ca_pem.contains("-----BEGIN CERTIFICATE-----") || ca_pem.len() > PEM_MAX {
                return Err(BackendError::CaPem);
            }
        }
        Driver::Byo { agent_address } => {
            if let Some(address) = agent_address {
                check_address(address)?;
            }
        }
    }
    Ok(())
}

impl Aggregate for Backend {
    const TYPE: &'static str = "backend";
    type Command = BackendCommand;
    type Event = BackendEvent;
    type Error = BackendError;

    fn decide(
        &self,
        command: BackendCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<BackendEvent>, BackendError> {
        use BackendCommand as C;
        use BackendStatus as S;
        match (self.status, command) {
            (
                S::New,
                C::Register {
                    id,
                    workspace,
                    settings,
                },
            ) => {
                check_settings(&settings)?;
                Ok(vec![BackendEvent::Registered(BackendRegistered {
                    id,
                    workspace,
                    settings,
                    registered_by: ctx.actor.clone(),
                    registered_at: ctx.now,
                })])
            }
            (S::New, _) => Err(BackendError::NotFound),
            (_, C::Register { .. }) => Err(BackendError::AlreadyExists),
            (S::Removed, _) => Err(BackendError::Removed),
            (S::Active, C::Update { settings }) => {
                check_settings(&settings)?;
                let current = self.settings.as_ref().expect("an active backend has settings");
                if settings.driver.kind() != current.driver.kind() {
                    return Err(BackendError::KindChange);
                }
                if &settings == current {
                    return Ok(vec![]);
                }
                Ok(vec![BackendEvent::Updated(BackendUpdated {
                    settings,
                    updated_by: ctx.actor.clone(),
                    updated_at: ctx.now,
                })])
            }
            (S::Active, C::RecordHealth { healthy, detail }) => {
                check_text("detail", &detail, DETAIL_MAX, false)?;
                if self.healthy == healthy {
                    return Ok(vec![]);
                }
                Ok(vec![BackendEvent::HealthChanged(BackendHealthChanged {
                    healthy,
                    detail,
                    at: ctx.now,
                })])
            }
            (S::Active, C::Remove) => Ok(vec![BackendEvent::Removed(BackendRemoved {
                removed_by: ctx.actor.clone(),
                removed_at: ctx.now,
            })]),
        }
    }

    fn apply(&mut self, event: &BackendEvent) {
        match event {
            BackendEvent::Registered(e) => {
                self.status = BackendStatus::Active;
                self.id = Some(e.id);
                self.workspace = e.workspace;
                self.settings = Some(e.settings.clone());
                // Healthy until a check says otherwise: a backend just registered is tried.
                self.healthy = true;
            }
            BackendEvent::Updated(e) => self.settings = Some(e.settings.clone()),
            BackendEvent::HealthChanged(e) => {
                self.healthy = e.healthy;
                self.health_detail = e.detail.clone();
            }
            BackendEvent::Removed(_) => self.status = BackendStatus::Removed,
        }
    }
}

#[cfg(test)]
mod tests;
