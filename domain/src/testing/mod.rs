//! The test kit: given/when/then for aggregates (given past events, when a command, then these events
//! or this rejection — no runtime and no I/O, so a rule's test runs in microseconds), sample public
//! [`keys`] and sample computation definitions ([`samples`]).
//!
//! Built for this crate's tests and, with the `testing` feature, for other crates' tests; never part
//! of a production build.
#![cfg(any(test, feature = "testing"))]

pub mod keys;
pub mod samples;

use chrono::{DateTime, TimeZone, Utc};

use crate::aggregate::{Aggregate, CommandContext};
use crate::ids::Actor;

/// A fixed context: tests must not depend on the wall clock.
pub fn ctx() -> CommandContext {
    CommandContext {
        actor: Actor("alice@example.org".into()),
        now: fixed_time(),
    }
}

pub fn fixed_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
        .single()
        .expect("valid fixed time")
}

pub fn given<A: Aggregate>(history: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let history: Vec<A::Event> = history.into_iter().collect();
    Given {
        state: A::from_events(&history),
        ctx: ctx(),
    }
}

#[derive(Debug)]
pub struct Given<A: Aggregate> {
    state: A,
    ctx: CommandContext,
}

impl<A: Aggregate> Given<A> {
    pub fn by(mut self, actor: &str) -> Self {
        self.ctx.actor = Actor(actor.into());
        self
    }

    /// Decides at another time than the fixed one (expiries, lock-outs).
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.ctx.now = now;
        self
    }

    /// The state the history folds into.
    pub fn state(&self) -> &A {
        &self.state
    }

    pub fn when(self, command: A::Command) -> Then<A> {
        let result = self.state.decide(command, &self.ctx);
        Then {
            state: self.state,
            result,
        }
    }
}

#[derive(Debug)]
pub struct Then<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> Then<A> {
    #[track_caller]
    pub fn then_expect(self, expected: impl IntoIterator<Item = A::Event>) -> A {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected, "unexpected events");
                let mut state = self.state;
                for event in &events {
                    state.apply(event);
                }
                state
            }
            Err(error) => panic!("expected events {expected:?}, got rejection: {error}"),
        }
    }

    #[track_caller]
    pub fn then_rejects(self, expected: A::Error) {
        match self.result {
            Ok(events) => panic!("expected rejection `{expected}`, got events {events:?}"),
            Err(error) => assert_eq!(error, expected),
        }
    }

    /// The raw outcome, for assertions the helpers above do not express.
    pub fn outcome(self) -> Result<Vec<A::Event>, A::Error> {
        self.result
    }
}
