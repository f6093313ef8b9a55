//! A small bank account: the sample cqrs-es aggregate of the contract tests and the benchmark.
#![allow(dead_code)]

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub owner: Option<String>,
    pub balance: i64,
    /// Events applied so far.
    pub events: u64,
}

#[derive(Debug, Clone)]
pub enum AccountCommand {
    Open {
        owner: String,
    },
    Deposit {
        amount: i64,
    },
    Withdraw {
        amount: i64,
    },
    /// Several deposits decided at once: one commit of several events.
    DepositEach {
        amounts: Vec<i64>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountEvent {
    Opened { owner: String },
    Deposited { amount: i64 },
    Withdrawn { amount: i64 },
}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> String {
        match self {
            AccountEvent::Opened { .. } => "Opened",
            AccountEvent::Deposited { .. } => "Deposited",
            AccountEvent::Withdrawn { .. } => "Withdrawn",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("the account is not open")]
    NotOpen,
    #[error("amounts must be positive")]
    NotPositive,
    #[error("the balance is {balance}, less than {amount}")]
    InsufficientFunds { balance: i64, amount: i64 },
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;
    type Services = ();

    async fn handle(
        &mut self,
        command: AccountCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), AccountError> {
        match command {
            AccountCommand::Open { owner } => {
                if self.owner.is_some() {
                    return Err(AccountError::AlreadyOpen);
                }
                sink.write(AccountEvent::Opened { owner }, self).await;
            }
            AccountCommand::Deposit { amount } => {
                self.check_deposit(amount)?;
                sink.write(AccountEvent::Deposited { amount }, self).await;
            }
            AccountCommand::DepositEach { amounts } => {
                for &amount in &amounts {
                    self.check_deposit(amount)?;
                }
                for amount in amounts {
                    sink.write(AccountEvent::Deposited { amount }, self).await;
                }
            }
            AccountCommand::Withdraw { amount } => {
                self.check_deposit(amount)?;
                if self.balance < amount {
                    return Err(AccountError::InsufficientFunds {
                        balance: self.balance,
                        amount,
                    });
                }
                sink.write(AccountEvent::Withdrawn { amount }, self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: AccountEvent) {
        self.events += 1;
        match event {
            AccountEvent::Opened { owner } => self.owner = Some(owner),
            AccountEvent::Deposited { amount } => self.balance += amount,
            AccountEvent::Withdrawn { amount } => self.balance -= amount,
        }
    }
}

impl Account {
    fn check_deposit(&self, amount: i64) -> Result<(), AccountError> {
        if self.owner.is_none() {
            return Err(AccountError::NotOpen);
        }
        if amount <= 0 {
            return Err(AccountError::NotPositive);
        }
        Ok(())
    }
}
