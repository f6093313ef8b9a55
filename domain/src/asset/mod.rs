//! The asset aggregate: an algorithm or a dataset of a workspace as the platform knows it — its kind,
//! how an algorithm runs, its MIME type, its SHA3-256 digest, the base name its file goes by, a
//! description, and optionally a small sample of it. The file itself never reaches the platform: its
//! provider sends it straight to the attested agent of a run, which checks it against the digest and
//! the name. An asset belongs to the user who registered it; only that user changes it, and it is that
//! user a computation names as the provider when the asset is linked to it (see
//! [`crate::computation::Change::LinkAsset`]).
//!
//! The digest and the file name never change: a computation's manifest names them and its
//! participants consent to them, so a file with another digest or name is another asset.

mod command;
mod error;
mod event;
mod state;

pub use command::{AssetChanges, AssetCommand};
pub use error::AssetError;
pub use event::{AssetArchived, AssetEvent, AssetRegistered, AssetUpdated, SampleAttached, SampleRemoved};
pub use state::{
    AlgorithmType, Asset, AssetKind, AssetRecord, AssetStatus, AttachedSample, Sample, blob_name,
};

use crate::aggregate::{Aggregate, CommandContext};
use crate::ids::UserId;
use crate::values::check_text;

pub const DESCRIPTION_MAX: usize = 4096;
/// The largest sample the platform keeps: 10 MiB (10,485,760 bytes).
pub const SAMPLE_MAX: u64 = 10 * 1024 * 1024;

fn check_record(record: &AssetRecord) -> Result<(), AssetError> {
    match (record.kind, record.algorithm_type) {
        (AssetKind::Algorithm, None) => return Err(AssetError::AlgorithmTypeRequired),
        (AssetKind::Dataset, Some(_)) => return Err(AssetError::AlgorithmTypeForDataset),
        _ => {}
    }
    check_description(&record.description)
}

fn check_description(description: &str) -> Result<(), AssetError> {
    Ok(check_text("description", description, DESCRIPTION_MAX, false)?)
}

fn check_sample(sample: &Sample) -> Result<(), AssetError> {
    let digest = &sample.sha256;
    if digest.len() != 64
        || !digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(AssetError::SampleDigest(digest.chars().take(64).collect()));
    }
    if sample.size == 0 {
        return Err(AssetError::EmptySample);
    }
    if sample.size > SAMPLE_MAX {
        return Err(AssetError::SampleTooLarge {
            size: sample.size,
            max: SAMPLE_MAX,
        });
    }
    Ok(())
}

impl Asset {
    fn owned_by(&self, by: UserId) -> Result<(), AssetError> {
        let owner = self.owner.expect("an existing asset has an owner");
        if owner == by {
            Ok(())
        } else {
            Err(AssetError::NotOwner { owner })
        }
    }
}

impl Aggregate for Asset {
    const TYPE: &'static str = "asset";
    type Command = AssetCommand;
    type Event = AssetEvent;
    type Error = AssetError;

    fn decide(&self, command: AssetCommand, ctx: &CommandContext) -> Result<Vec<AssetEvent>, AssetError> {
        use AssetCommand as C;
        use AssetStatus as S;
        match (self.status, command) {
            (
                S::New,
                C::Register {
                    id,
                    workspace_id,
                    owner,
                    mut record,
                },
            ) => {
                record.description = record.description.trim().to_owned();
                check_record(&record)?;
                Ok(vec![AssetEvent::Registered(AssetRegistered {
                    id,
                    workspace_id,
                    owner,
                    record,
                    registered_by: ctx.actor.clone(),
                    registered_at: ctx.now,
                })])
            }
            (S::New, _) => Err(AssetError::NotFound),
            (_, C::Register { .. }) => Err(AssetError::AlreadyExists),
            // Whose it is comes before what it is: a stranger learns nothing more.
            (S::Archived, C::Update { by, .. } | C::AttachSample { by, .. } | C::RemoveSample { by }) => {
                self.owned_by(by)?;
                Err(AssetError::Archived)
            }
            (S::Archived, C::Archive { by, .. }) => {
                self.owned_by(by)?;
                Ok(vec![])
            }
            (S::Active, C::Update { by, changes }) => {
                self.owned_by(by)?;
                let mut changes = changes;
                changes.description = changes.description.map(|d| d.trim().to_owned());
                if let Some(description) = &changes.description {
                    check_description(description)?;
                }
                let changes = changes.without_unchanged(self.record());
                if changes.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![AssetEvent::Updated(AssetUpdated {
                    changes,
                    updated_by: ctx.actor.clone(),
                    updated_at: ctx.now,
                })])
            }
            (S::Active, C::AttachSample { by, sample }) => {
                self.owned_by(by)?;
                check_sample(&sample)?;
                let current = self.sample.as_ref().map(|s| &s.sample);
                if current == Some(&sample) {
                    return Ok(vec![]);
                }
                let replaced = current
                    .map(|s| s.sha256.clone())
                    .filter(|previous| *previous != sample.sha256);
                Ok(vec![AssetEvent::SampleAttached(SampleAttached {
                    sample,
                    replaced,
                    attached_by: ctx.actor.clone(),
                    attached_at: ctx.now,
                })])
            }
            (S::Active, C::RemoveSample { by }) => {
                self.owned_by(by)?;
                Ok(self.sample_removed(ctx).into_iter().collect())
            }
            (S::Active, C::Archive { by, linked_to }) => {
                self.owned_by(by)?;
                if !linked_to.is_empty() {
                    return Err(AssetError::StillLinked {
                        computations: linked_to,
                    });
                }
                // An archived asset serves nobody: its sample goes with it.
                let mut events: Vec<AssetEvent> = self.sample_removed(ctx).into_iter().collect();
                events.push(AssetEvent::Archived(AssetArchived {
                    archived_by: ctx.actor.clone(),
                    archived_at: ctx.now,
                }));
                Ok(events)
            }
        }
    }

    fn apply(&mut self, event: &AssetEvent) {
        match event {
            AssetEvent::Registered(e) => {
                self.status = AssetStatus::Active;
                self.id = Some(e.id);
                self.workspace_id = Some(e.workspace_id);
                self.owner = Some(e.owner);
                self.record = Some(e.record.clone());
            }
            AssetEvent::Updated(e) => {
                if let Some(record) = &mut self.record {
                    e.changes.applied_to(record);
                }
            }
            AssetEvent::SampleAttached(e) => {
                self.sample = Some(AttachedSample {
                    sample: e.sample.clone(),
                    attached_at: e.attached_at,
                });
            }
            AssetEvent::SampleRemoved(_) => self.sample = None,
            AssetEvent::Archived(_) => self.status = AssetStatus::Archived,
        }
    }
}

impl Asset {
    /// The removal of the sample, when there is one.
    fn sample_removed(&self, ctx: &CommandContext) -> Option<AssetEvent> {
        self.sample.as_ref().map(|attached| {
            AssetEvent::SampleRemoved(SampleRemoved {
                sha256: attached.sample.sha256.clone(),
                removed_by: ctx.actor.clone(),
                removed_at: ctx.now,
            })
        })
    }
}

#[cfg(test)]
mod tests;
