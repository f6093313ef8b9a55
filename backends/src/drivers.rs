//! Which [`Driver`] serves a backend: made from the backend's recorded settings, kept while they stay
//! the same (a manager's connection is reused), made again when they change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prism_domain::BackendId;
use prism_domain::backend::Driver as DriverSettings;

use crate::{ByoDriver, Driver, DriverError, LocalDriver, ManagerConfig, ManagerDriver};

/// The certificate and key (PEM) the platform presents to Cocos managers.
#[derive(Clone)]
pub struct ClientIdentity {
    /// The certificate followed by its intermediates.
    pub certificate_chain_pem: String,
    pub private_key_pem: String,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity").finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
pub struct Drivers {
    local: Option<Arc<LocalDriver>>,
    manager_identity: Option<ClientIdentity>,
    made: Mutex<HashMap<BackendId, Made>>,
}

/// A driver made for a backend, and the settings it was made from.
type Made = (DriverSettings, Arc<dyn Driver>);

impl Drivers {
    /// Drivers that can run the local emulated agent (`local`: none without) and reach Cocos
    /// managers with `manager_identity` (none without).
    pub fn new(local: Option<LocalDriver>, manager_identity: Option<ClientIdentity>) -> Self {
        Self {
            local: local.map(Arc::new),
            manager_identity,
            made: Mutex::new(HashMap::new()),
        }
    }

    /// The driver of backend `id`, whose settings are `settings`.
    pub fn driver(&self, id: BackendId, settings: &DriverSettings) -> Result<Arc<dyn Driver>, DriverError> {
        let mut made = self.made.lock().expect("the drivers' lock is never poisoned");
        if let Some((known, driver)) = made.get(&id)
            && known == settings
        {
            return Ok(driver.clone());
        }
        let driver: Arc<dyn Driver> = match settings {
            DriverSettings::Local => self
                .local
                .clone()
                .ok_or(DriverError::Unsupported("this platform runs no local backend"))?,
            DriverSettings::Byo { agent_address } => Arc::new(ByoDriver {
                agent_address: agent_address.clone(),
            }),
            DriverSettings::CocosManager { address, ca_pem } => {
                let identity = self.manager_identity.as_ref().ok_or(DriverError::Unsupported(
                    "this platform has no client certificate for Cocos managers",
                ))?;
                let config = ManagerConfig::new(
                    address.clone(),
                    ca_pem.clone(),
                    identity.certificate_chain_pem.clone(),
                    identity.private_key_pem.clone(),
                );
                Arc::new(ManagerDriver::new(config).map_err(|e| DriverError::Refused(e.to_string()))?)
            }
        };
        made.insert(id, (settings.clone(), driver.clone()));
        Ok(driver)
    }
}
