use super::event::ReactionFailed;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReactionCommand {
    /// A worker gave up on an event (first time, or again after a retry).
    RecordFailure(ReactionFailed),
    /// An operator asks the worker to try the event again.
    Retry,
    /// The retried reaction succeeded.
    Resolve,
}
