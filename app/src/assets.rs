//! Assets: a workspace's algorithm and dataset records, their samples, and linking them to
//! computations.
//!
//! An asset records what a file is (kind, MIME type, SHA3-256, base name, description), never the file:
//! its provider sends that straight to a run's attested agent. A sample of at most
//! [`SAMPLE_MAX`](prism_domain::asset::SAMPLE_MAX) bytes may be kept by the platform, so that the other
//! participants can see what the data looks like; its bytes are kept beside the log (the
//! [`BlobStore`](prism_store::BlobStore)), written before the event that names them and checked against
//! that event's SHA-256 whenever they are read back.
//!
//! Linking an asset is a change of its computation ([`Change::LinkAsset`]) that its provider asks for:
//! applied at once, or — once the computation's participants have approved it — proposed to them, as
//! every change of the manifest is (see [`crate::Governance`]).

use bytes::Bytes;
use prism_domain::access::Permission;
use prism_domain::asset::{
    Asset, AssetChanges, AssetCommand, AssetError, AssetEvent, AssetRecord, AssetStatus, SAMPLE_MAX, Sample,
    blob_name,
};
use prism_domain::computation::{Change, Computation, ComputationCommand, LinkedAsset};
use prism_domain::values::MimeType;
use prism_domain::{AssetId, ComputationId, ParticipantId, UserId, WorkspaceId};
use prism_projections::{ASSETS, AssetFilter, AssetView, COMPUTATIONS, Page, PageRequest, WORKSPACES};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tracing::warn;

use crate::governance::ChangeOutcome;
use crate::{
    Action, App, AppError, Caller, Command, CommandOptions, ErrorKind, Executed, ReadOptions, Target,
    workspaces,
};

const WHAT: &str = "asset";

#[derive(Debug, Clone, Copy)]
pub struct Assets<'a> {
    app: &'a App,
}

/// A sample's bytes as the platform keeps them, checked against what the log says they are.
#[derive(Debug, Clone)]
pub struct SampleContent {
    pub bytes: Bytes,
    pub mime_type: MimeType,
    /// SHA-256 (hex) of the bytes.
    pub sha256: String,
    /// The asset's file name, for a client that saves the sample.
    pub file_name: String,
}

fn not_found(id: AssetId) -> AppError {
    AppError::not_found(format!("asset {id} not found"))
}

/// The user a caller is: assets belong to users, and only users provide them.
fn user_of(caller: &Caller, what: &str) -> Result<UserId, AppError> {
    caller.user().map(|user| user.id).ok_or_else(|| {
        AppError::new(
            ErrorKind::Forbidden,
            format!("only a user signed in (or one of their API keys) can {what}"),
        )
    })
}

impl<'a> Assets<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    /// Records an asset of `workspace`, owned by the caller (`assets.manage`).
    pub async fn register(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        record: AssetRecord,
    ) -> Result<Executed<Asset>, AppError> {
        self.app
            .authorize(caller, Action::in_workspace(Permission::AssetsManage, workspace))
            .await?;
        let owner = user_of(caller, "register an asset")?;
        self.app.require_active_workspace(workspace, "assets").await?;
        let command = Command {
            what: WHAT,
            operation: "register",
            permission: Permission::AssetsManage,
            target: Target::New {
                proposed: uuid::Uuid::now_v7().to_string(),
            },
            workspace: Some(workspace),
            input: &record,
        };
        self.app
            .execute_authorized(caller, options, command, |id| AssetCommand::Register {
                id: AssetId(id.parse().expect("the service proposes UUIDs")),
                workspace_id: workspace,
                owner,
                record: record.clone(),
            })
            .await
    }

    /// Changes the description or the MIME type of one's own asset (`assets.manage`).
    pub async fn update(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: AssetId,
        changes: AssetChanges,
    ) -> Result<Executed<Asset>, AppError> {
        let (by, _) = self.owned(caller, workspace, id, "change an asset").await?;
        self.execute(caller, options, workspace, id, "update", &changes, || {
            AssetCommand::Update {
                by,
                changes: changes.clone(),
            }
        })
        .await
    }

    /// Attaches a sample to one's own asset (`assets.manage`), replacing any before it. `body` gives
    /// its bytes; it is awaited only once the caller may attach one, so a stranger's upload is refused
    /// before it is read. `body` is to fail with [`ErrorKind::TooLarge`] past
    /// [`SAMPLE_MAX`](prism_domain::asset::SAMPLE_MAX) bytes.
    pub async fn attach_sample(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: AssetId,
        mime_type: MimeType,
        body: impl Future<Output = Result<Bytes, AppError>>,
    ) -> Result<Executed<Asset>, AppError> {
        let (by, state) = self.owned(caller, workspace, id, "attach a sample").await?;
        if state.status == AssetStatus::Archived {
            return Err(AppError::rejected(AssetError::Archived));
        }
        let bytes = body.await?;
        let sample = Sample {
            sha256: hex::encode(Sha256::digest(&bytes)),
            size: bytes.len() as u64,
            mime_type,
        };
        let name = sample.blob_name(id);
        #[derive(Serialize)]
        struct Input<'a> {
            sample: &'a Sample,
        }
        // Empty or too large: refused before anything is kept.
        if sample.size == 0 {
            return Err(AppError::rejected(AssetError::EmptySample));
        }
        if sample.size > SAMPLE_MAX {
            return Err(AppError::new(
                ErrorKind::TooLarge,
                format!("a sample has at most {SAMPLE_MAX} bytes"),
            ));
        }
        let blobs = &self.app.inner.blobs;
        self.app
            .bounded(async { Ok(blobs.put(&name, bytes).await?) })
            .await?;
        let executed = self
            .execute(
                caller,
                options,
                workspace,
                id,
                "attach_sample",
                &Input { sample: &sample },
                || AssetCommand::AttachSample {
                    by,
                    sample: sample.clone(),
                },
            )
            .await;
        match &executed {
            Ok(executed) => self.forget_replaced(id, &executed.outcome.events).await,
            // Refused: the bytes are kept only if the asset names them anyway (the same sample again).
            Err(_) => {
                let current = self.load(id).await.ok();
                let named = current
                    .and_then(|a| a.sample)
                    .is_some_and(|s| s.sample.sha256 == sample.sha256);
                if !named {
                    self.forget(&name).await;
                }
            }
        }
        executed
    }

    /// Removes the sample of one's own asset (`assets.manage`); its bytes are no longer kept.
    pub async fn remove_sample(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: AssetId,
    ) -> Result<Executed<Asset>, AppError> {
        let (by, _) = self.owned(caller, workspace, id, "remove a sample").await?;
        let executed = self
            .execute(caller, options, workspace, id, "remove_sample", &(), || {
                AssetCommand::RemoveSample { by }
            })
            .await?;
        self.forget_replaced(id, &executed.outcome.events).await;
        Ok(executed)
    }

    /// Takes one's own asset out of use (`assets.manage`): refused while an active computation links
    /// it. Its sample goes with it.
    pub async fn archive(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: AssetId,
    ) -> Result<Executed<Asset>, AppError> {
        let (by, _) = self.owned(caller, workspace, id, "archive an asset").await?;
        let linked_to = self.linked_to(id).await?;
        let executed = self
            .execute(caller, options, workspace, id, "archive", &(), || {
                AssetCommand::Archive {
                    by,
                    linked_to: linked_to.clone(),
                }
            })
            .await?;
        self.forget_replaced(id, &executed.outcome.events).await;
        Ok(executed)
    }

    /// One asset of `workspace` (`assets.read`), with the active computations that link it.
    pub async fn get(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: AssetId,
        read: ReadOptions,
    ) -> Result<AssetView, AppError> {
        self.app
            .authorize(caller, Action::in_workspace(Permission::AssetsRead, workspace))
            .await?;
        self.app.wait_read(&[ASSETS, COMPUTATIONS], read).await?;
        self.app
            .read_models()?
            .asset(workspace, id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// A workspace's assets in creation order (`assets.read`), filtered by kind, owner and status.
    pub async fn list(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        filter: &AssetFilter,
        page: PageRequest,
        read: ReadOptions,
    ) -> Result<Page<AssetView>, AppError> {
        self.app
            .authorize(caller, Action::in_workspace(Permission::AssetsRead, workspace))
            .await?;
        self.app
            .wait_read(&[WORKSPACES, ASSETS, COMPUTATIONS], read)
            .await?;
        let models = self.app.read_models()?;
        if models.workspace(workspace).await?.is_none() {
            return Err(workspaces::not_found(workspace));
        }
        Ok(models.assets(workspace, filter, page).await?)
    }

    /// The sample of an asset of `workspace` (`assets.read`), as the log has it now: its bytes, checked
    /// against the SHA-256 the log recorded for them.
    pub async fn sample(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: AssetId,
    ) -> Result<SampleContent, AppError> {
        self.app
            .authorize(caller, Action::in_workspace(Permission::AssetsRead, workspace))
            .await?;
        let state = self.in_workspace(workspace, id).await?;
        let file_name = state.record().file_name.to_string();
        let Some(attached) = state.sample else {
            return Err(AppError::not_found(format!("asset {id} has no sample")));
        };
        let sample = attached.sample;
        let name = sample.blob_name(id);
        let blobs = &self.app.inner.blobs;
        let bytes = self
            .app
            .bounded(async { Ok(blobs.get(&name).await?) })
            .await?
            .ok_or_else(|| AppError::internal(format!("the bytes of sample {name} are missing")))?;
        if hex::encode(Sha256::digest(&bytes)) != sample.sha256 {
            return Err(AppError::internal(format!(
                "the bytes kept for sample {name} are not the ones the log recorded"
            )));
        }
        Ok(SampleContent {
            bytes,
            mime_type: sample.mime_type,
            sha256: sample.sha256,
            file_name,
        })
    }

    /// Links the caller's own asset to a computation (`computation.assets.link`): its algorithm, or
    /// one more of its datasets, provided by the caller. Once the computation is approved, this is
    /// proposed to its participants like any change of its manifest.
    pub async fn link(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        computation: ComputationId,
        asset: AssetId,
    ) -> Result<ChangeOutcome, AppError> {
        self.change_links(caller, options, workspace, computation, asset, Linking::Link)
            .await
    }

    /// Takes a linked asset out of a computation (`computation.assets.link`), as its provider. Once the
    /// computation is approved, this is proposed to its participants like any change of its manifest.
    pub async fn unlink(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        computation: ComputationId,
        asset: AssetId,
    ) -> Result<ChangeOutcome, AppError> {
        self.change_links(caller, options, workspace, computation, asset, Linking::Unlink)
            .await
    }

    /// Links or unlinks `asset` as the caller, the participant it is: authorised, the computation
    /// found in the workspace, and (to link) the asset's record read, before the change is asked for.
    async fn change_links(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        computation: ComputationId,
        asset: AssetId,
        linking: Linking,
    ) -> Result<ChangeOutcome, AppError> {
        #[derive(Serialize)]
        struct Input {
            asset: AssetId,
        }
        let input = Input { asset };
        let (operation, what) = match linking {
            Linking::Link => ("link_asset", "link an asset"),
            Linking::Unlink => ("unlink_asset", "unlink an asset"),
        };
        let command = link_command(operation, workspace, computation, &input);
        self.app
            .authorize_command::<Computation, _>(caller, &command)
            .await?;
        let by = ParticipantId::User(user_of(caller, what)?);
        self.computation_in(workspace, computation).await?;
        let change = match linking {
            Linking::Link => Change::LinkAsset(self.linkable(workspace, asset).await?),
            Linking::Unlink => Change::UnlinkAsset { asset },
        };
        let executed = self
            .app
            .execute_authorized(caller, options, command, |_| ComputationCommand::Change {
                change: change.clone(),
                by: Some(by.clone()),
            })
            .await?;
        self.app.governance().outcome(caller, executed).await
    }

    /// The asset's state, from the log.
    pub async fn load(&self, id: AssetId) -> Result<Asset, AppError> {
        self.app
            .bounded(async { Ok(self.app.repository::<Asset>().load(&id).await?.state) })
            .await
    }

    /// The asset `id` of `workspace`; one of another workspace is "not found".
    /// Asset `asset` of the workspace as a link takes it into a computation; an archived one is
    /// linked no more.
    pub(crate) async fn linkable(
        &self,
        workspace: WorkspaceId,
        asset: AssetId,
    ) -> Result<LinkedAsset, AppError> {
        let state = self.in_workspace(workspace, asset).await?;
        if state.status == AssetStatus::Archived {
            return Err(AppError::new(
                ErrorKind::StateConflict,
                format!("asset {asset} is archived: it can no longer be linked"),
            ));
        }
        let record = state.record();
        Ok(LinkedAsset {
            asset,
            kind: record.kind,
            provider: ParticipantId::User(state.owner.expect("an existing asset has an owner")),
            hash: record.sha3_256.clone(),
            name: record.file_name.clone(),
        })
    }

    async fn in_workspace(&self, workspace: WorkspaceId, id: AssetId) -> Result<Asset, AppError> {
        let state = self.load(id).await?;
        if state.status == AssetStatus::New || state.workspace_id != Some(workspace) {
            return Err(not_found(id));
        }
        Ok(state)
    }

    /// Authorises a change of asset `id` (`assets.manage`) and checks, before anything is read or
    /// kept, that it is the caller's (the asset refuses any other, too).
    async fn owned(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: AssetId,
        what: &str,
    ) -> Result<(UserId, Asset), AppError> {
        self.app
            .authorize(caller, Action::in_workspace(Permission::AssetsManage, workspace))
            .await?;
        let by = user_of(caller, what)?;
        let state = self.in_workspace(workspace, id).await?;
        let owner = state.owner.expect("an existing asset has an owner");
        if owner != by {
            return Err(AppError::rejected(AssetError::NotOwner { owner }));
        }
        Ok((by, state))
    }

    #[allow(clippy::too_many_arguments)]
    async fn execute<I: Serialize>(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: AssetId,
        operation: &'static str,
        input: &I,
        make: impl FnOnce() -> AssetCommand,
    ) -> Result<Executed<Asset>, AppError> {
        let command = Command {
            what: WHAT,
            operation,
            permission: Permission::AssetsManage,
            target: Target::Existing(id.to_string()),
            workspace: Some(workspace),
            input,
        };
        self.app
            .execute_authorized(caller, options, command, |_| make())
            .await
    }

    /// The active computations that link `asset`, as of the end of the log now (waiting for the
    /// computations read model to get there).
    async fn linked_to(&self, asset: AssetId) -> Result<Vec<ComputationId>, AppError> {
        let last = self
            .app
            .bounded(async { Ok(self.app.log().last_sequence().await?) })
            .await?;
        let read = self.app.read_models()?;
        read.wait_for(COMPUTATIONS, last, self.app.config().read_wait)
            .await?;
        read.active_computations_linking_as_of(asset, last)
            .await?
            .ok_or_else(|| {
                AppError::new(
                    ErrorKind::Lagging,
                    "the computations read model is being rebuilt; retry shortly",
                )
            })
    }

    /// The computation `id` of `workspace`; one of another workspace is "not found".
    async fn computation_in(&self, workspace: WorkspaceId, id: ComputationId) -> Result<(), AppError> {
        let state = self
            .app
            .bounded(async { Ok(self.app.repository::<Computation>().existing_state(&id).await?) })
            .await?;
        if state.workspace_id != Some(workspace) {
            return Err(AppError::not_found(format!("computation {id} not found")));
        }
        Ok(())
    }

    /// Forgets the bytes of the samples `events` took out (replaced or removed).
    async fn forget_replaced(&self, id: AssetId, events: &[AssetEvent]) {
        for event in events {
            let gone = match event {
                AssetEvent::SampleAttached(e) => e.replaced.as_deref(),
                AssetEvent::SampleRemoved(e) => Some(e.sha256.as_str()),
                _ => None,
            };
            if let Some(sha256) = gone {
                self.forget(&blob_name(id, sha256)).await;
            }
        }
    }

    /// Best effort: bytes no event names any more are only wasted space, never exposed (a sample is
    /// read through the asset's current record), so a failure is logged and not answered.
    async fn forget(&self, name: &str) {
        let blobs = &self.app.inner.blobs;
        let deleted = self.app.bounded(async { Ok(blobs.delete(name).await?) }).await;
        if let Err(e) = deleted {
            warn!(error = %e, blob = name, "could not delete the bytes of a sample no longer kept");
        }
    }
}

/// Whether an asset goes into a computation or out of it.
#[derive(Debug, Clone, Copy)]
enum Linking {
    Link,
    Unlink,
}

fn link_command<'a, I: Serialize>(
    operation: &'static str,
    workspace: WorkspaceId,
    computation: ComputationId,
    input: &'a I,
) -> Command<'a, I> {
    Command {
        what: "computation",
        operation,
        permission: Permission::ComputationAssetsLink,
        target: Target::Existing(computation.to_string()),
        workspace: Some(workspace),
        input,
    }
}
