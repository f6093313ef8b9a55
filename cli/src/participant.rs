//! The participants' commands: sign in, consent to a computation's manifest, send the algorithm or
//! a dataset straight to a run's attested agent, fetch the result, see the run's attestation.
//!
//! Before anything is sent, the CLI checks for itself what it is about to trust: the file's SHA3-256
//! is the one the run's manifest declares, and the appraisal that let the run take inputs holds
//! when this program appraises the recorded evidence again and checks its EAR against the
//! platform's public JWK Set (`prism attestation verify` does the same offline). The bytes go to
//! the agent over TLS pinned to the platform's certificate authority; the platform only receives a
//! receipt with the digest.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use indicatif::{ProgressBar, ProgressStyle};
use prism_agents::AgentEndpoint;
use prism_agents::participant::{ParticipantClient, ParticipantKey, Progress};
use prism_attestation::Mode;
use prism_domain::cvm::CvmAttestationAppraised;
use prism_domain::run::manifest::consent_message;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest as _;

/// Where a signed-in participant's session is kept, unless `PRISM_CREDENTIALS` says otherwise.
fn credentials_path() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("PRISM_CREDENTIALS") {
        return Ok(PathBuf::from(path));
    }
    let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set; set PRISM_CREDENTIALS"))?;
    Ok(PathBuf::from(home).join(".config/prism/credentials.json"))
}

/// A signed-in session: the platform's URL and the access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub url: String,
    pub access_token: String,
}

impl Session {
    /// The session `prism login` saved, or `PRISM_URL` and `PRISM_TOKEN`.
    pub fn load() -> anyhow::Result<Self> {
        if let (Ok(url), Ok(access_token)) = (std::env::var("PRISM_URL"), std::env::var("PRISM_TOKEN")) {
            return Ok(Self { url, access_token });
        }
        let path = credentials_path()?;
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("not signed in ({} is missing): run `prism login`", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a saved session", path.display()))
    }

    fn save(&self) -> anyhow::Result<PathBuf> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = credentials_path()?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // The token is a credential: readable by its owner only, from the first byte written.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        file.write_all(serde_json::to_string_pretty(self)?.as_bytes())?;
        Ok(path)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url.trim_end_matches('/'))
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let mut request = http()
            .request(method, self.url(path))
            .bearer_auth(&self.access_token);
        if let Some(body) = body {
            request = request.json(body);
        }
        answer(
            request
                .send()
                .await
                .with_context(|| format!("cannot reach {}", self.url))?,
        )
        .await
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client with no custom TLS settings builds")
}

/// The body of a 2xx answer; a problem document's title and detail otherwise.
async fn answer(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let detail = body["detail"]
        .as_str()
        .or(body["error_description"].as_str())
        .unwrap_or("");
    bail!("{status}: {detail}")
}

/// `prism computations list`: the workspace's computations, one per line (id, status, name),
/// every page of them.
pub async fn list_computations(session: &Session, workspace: &str) -> anyhow::Result<()> {
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/{workspace}/computations?cursor={cursor}"),
            None => format!("/{workspace}/computations"),
        };
        let page = session.get(&path).await.context("listing the computations")?;
        for computation in page["items"].as_array().into_iter().flatten() {
            println!(
                "{}  {:<8}  {}",
                computation["id"].as_str().unwrap_or_default(),
                computation["status"].as_str().unwrap_or_default(),
                computation["name"].as_str().unwrap_or_default()
            );
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(()),
        }
    }
}

/// `prism computations get`: the computation as the API shows it.
pub async fn show_computation(session: &Session, workspace: &str, computation: &str) -> anyhow::Result<()> {
    let shown = session
        .get(&format!("/{workspace}/computations/{computation}"))
        .await
        .context("reading the computation")?;
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(())
}

/// `prism computations export`: the computation as a document, to `out` or standard output.
pub async fn export_computation(
    session: &Session,
    workspace: &str,
    computation: &str,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let document = session
        .get(&format!("/{workspace}/computations/{computation}/export"))
        .await
        .context("exporting the computation")?;
    let text = serde_json::to_string_pretty(&document)? + "\n";
    match out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("exported to {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// `prism computations import`: a new computation of the workspace from a document; prints its id.
pub async fn import_computation(session: &Session, workspace: &str, file: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let document: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    let created = session
        .post(&format!("/{workspace}/computations/import"), &document)
        .await
        .context("importing the computation")?;
    println!("{}", created["id"].as_str().unwrap_or_default());
    Ok(())
}

/// `prism login`: signs in with a password and keeps the session for the other commands.
pub async fn login(url: &str, email: &str, password: &str) -> anyhow::Result<()> {
    let response = http()
        .post(format!("{}/oauth/token", url.trim_end_matches('/')))
        .form(&[
            ("grant_type", "password"),
            ("username", email),
            ("password", password),
        ])
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let tokens = answer(response).await.context("signing in")?;
    let access_token = tokens["access_token"]
        .as_str()
        .ok_or_else(|| anyhow!("the platform answered without an access token"))?
        .to_owned();
    let path = Session {
        url: url.to_owned(),
        access_token,
    }
    .save()?;
    println!("signed in as {email}; session saved in {}", path.display());
    Ok(())
}

fn read_key(path: &Path) -> anyhow::Result<ParticipantKey> {
    let pem = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(ParticipantKey::from_pkcs8_pem(&pem)?)
}

fn sha3_hex(bytes: &[u8]) -> String {
    hex::encode(<sha3::Sha3_256 as sha2::Digest>::digest(bytes))
}

/// `prism consent sign`: signs the computation's current manifest id with the participant's key.
pub async fn consent(
    session: &Session,
    workspace: &str,
    computation: &str,
    key: &Path,
) -> anyhow::Result<()> {
    let key = read_key(key)?;
    let base = format!("/{workspace}/computations/{computation}");
    let manifest = session
        .get(&format!("{base}/manifest"))
        .await
        .context("reading the manifest")?;
    let manifest_id = manifest["manifest_id"]
        .as_str()
        .ok_or_else(|| anyhow!("the platform answered without a manifest id"))?;
    // Sign only what this program has checked is the manifest: its id is the SHA-256 of the
    // canonical encoding, and that encoding is the manifest shown.
    let canonical = manifest["canonical"]
        .as_str()
        .ok_or_else(|| anyhow!("the platform answered without the manifest's canonical encoding"))?;
    let computed = hex::encode(sha2::Sha256::digest(canonical.as_bytes()));
    let parsed: Value = serde_json::from_str(canonical).context("the canonical manifest is not JSON")?;
    if computed != manifest_id || parsed != manifest["manifest"] {
        bail!("the manifest id is not the SHA-256 of the manifest shown; nothing was signed");
    }
    println!(
        "manifest {manifest_id}: algorithm {}, {} dataset(s), {} participant(s), result to {}",
        parsed["algorithm"]["sha3_256"].as_str().unwrap_or("none"),
        parsed["datasets"].as_array().map_or(0, Vec::len),
        parsed["participants"].as_array().map_or(0, Vec::len),
        parsed["result_consumers"]
    );
    let signature = key.sign(&consent_message(manifest_id))?;
    let consented = session
        .post(
            &format!("{base}/consents"),
            &json!({
                "manifest_id": manifest_id,
                "signature": base64::engine::general_purpose::STANDARD.encode(signature),
            }),
        )
        .await
        .context("consenting")?;
    let missing = consented["consent"]["missing"].as_array().map_or(0, Vec::len);
    println!("consented to manifest {manifest_id}; {missing} signature(s) still missing");
    Ok(())
}

/// What the participant sends.
#[derive(Debug, Clone)]
pub enum Input {
    Algorithm {
        algo_type: String,
        requirements: Option<PathBuf>,
    },
    Dataset,
}

/// The run's agent, once its appraisal holds for this program too.
async fn attested_agent(
    session: &Session,
    workspace: &str,
    run: &str,
    insecure_development: bool,
) -> anyhow::Result<ParticipantClient> {
    let connection = session
        .get(&format!("/{workspace}/runs/{run}/connection"))
        .await
        .context("reading the run's connection details")?;
    let appraisal: CvmAttestationAppraised = serde_json::from_value(connection["attestation"].clone())
        .context("the run's appraisal is not one this program reads")?;
    let jwks = session
        .get("/attestation/jwks.json")
        .await
        .context("reading the platform's JWK Set")?;
    let mode = if insecure_development {
        Mode::InsecureDevelopment
    } else {
        Mode::Secure
    };
    let checked = crate::attestation::reverify(std::slice::from_ref(&appraisal), Some(&jwks), mode)?;
    let checked = checked.first().expect("one appraisal in, one out");
    if !checked.holds() {
        let reasons: Vec<String> = checked.verdict.failures.iter().map(ToString::to_string).collect();
        let ear = match &checked.ear {
            Some(Err(e)) => format!("; EAR: {e}"),
            _ => String::new(),
        };
        bail!(
            "the run's attestation does not hold here ({:?}{}{ear}); nothing was sent{}",
            checked.verdict.outcome,
            if reasons.is_empty() {
                String::new()
            } else {
                format!(": {}", reasons.join("; "))
            },
            if insecure_development {
                ""
            } else {
                " (a development platform without a TEE needs --insecure-development)"
            }
        );
    }
    for warning in &checked.verdict.warnings {
        eprintln!("warning: {warning}");
    }
    consented_policy(session, workspace, run, &appraisal).await?;
    let text = |field: &str| {
        connection[field]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("the connection details lack `{field}`"))
    };
    let endpoint = AgentEndpoint {
        address: text("agent_address")?,
        server_name: text("server_name")?,
        roots_pem: text("ca_pem")?,
        client: None,
    };
    let agent = ParticipantClient::connect(&endpoint).await?;
    // The evidence must be of the very agent this connection reached: bound to a nonce and to the
    // key of the certificate it showed here — else the platform could pair a genuine appraisal with
    // another endpoint.
    let spki = agent.agent_key()?;
    match &appraisal.verdict.binding {
        prism_attestation::Binding::Fresh {
            nonce,
            agent_key_sha256,
        } => {
            let nonce = prism_attestation::Nonce::from_hex(&hex::encode(&nonce.0))
                .ok_or_else(|| anyhow!("the appraisal's nonce is not 32 bytes"))?;
            let bound = prism_attestation::binding::fresh_report_data(&nonce, &spki);
            if agent_key_sha256.0 != sha2::Sha256::digest(&spki).as_slice()
                || appraisal.expected_report_data != hex::encode(bound)
            {
                bail!(
                    "the agent at {} is not the one whose evidence was appraised (its TLS key differs); nothing was sent",
                    endpoint.address
                );
            }
        }
        // A real Cocos agent on a machine without a TEE answers no nonce: all there is, is its
        // start-up report, which proves nothing and binds nothing to this connection. Taken only
        // when the user said so, and said out loud.
        prism_attestation::Binding::StartupCertificate { .. }
            if insecure_development && appraisal.verdict.platform == prism_attestation::Platform::None =>
        {
            eprintln!(
                "warning: INSECURE: the agent at {} has no TEE and gave no fresh evidence; nothing binds its \
                 start-up report to this connection",
                endpoint.address
            );
        }
        prism_attestation::Binding::StartupCertificate { .. } => {
            bail!("the run's appraisal is not of fresh evidence bound to the agent's key; nothing was sent")
        }
    }
    Ok(agent)
}

/// Checks that the evidence was appraised against a policy the participants consented to: the
/// run's manifest names the computation's attestation policies by the digest of their set
/// (`attestation_policy_sha256`, see `docs/manifest.md`); the policies the computation shows must
/// hash to it, and the appraisal's policy must be one of them — or the platform's default, when
/// the set names none for the computation. Otherwise a platform could appraise against a policy
/// weaker than the one consented to, and the appraisal would still re-verify.
async fn consented_policy(
    session: &Session,
    workspace: &str,
    run: &str,
    appraisal: &CvmAttestationAppraised,
) -> anyhow::Result<()> {
    let state = session
        .get(&format!("/{workspace}/runs/{run}"))
        .await
        .context("reading the run")?;
    let consented = state["manifest"]["attestation_policy_sha256"]
        .as_str()
        .ok_or_else(|| anyhow!("the run's manifest names no attestation policies"))?;
    let computation = state["computation"]
        .as_str()
        .ok_or_else(|| anyhow!("the run names no computation"))?;
    let policies = session
        .get(&format!(
            "/{workspace}/computations/{computation}/attestation-policy"
        ))
        .await
        .context("reading the computation's attestation policies")?;
    let used = hex::encode(&appraisal.verdict.policy_sha256.0);
    if hex::encode(appraisal.policy.digest()) != used {
        bail!("the appraisal's recorded policy is not the one its verdict names; nothing was sent");
    }
    policy_in_consented_set(consented, &policies, &used)
}

/// Whether `used` (a policy's digest, hex) is in the set of attestation policies `policies` (as
/// `GET …/attestation-policy` shows them) and that set is the one whose digest is `consented`.
fn policy_in_consented_set(consented: &str, policies: &Value, used: &str) -> anyhow::Result<()> {
    let digest_of = |versioned: &Value| versioned["policy_sha256"].as_str().map(str::to_owned);
    let own = digest_of(&policies["policy"]);
    let backends: std::collections::BTreeMap<String, String> = policies["backends"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(backend, versioned)| Some((backend.clone(), digest_of(versioned)?)))
        .collect();
    // The same canonical JSON the platform hashes (serde_json orders keys).
    let set = json!({"backends": backends, "computation": own});
    if hex::encode(sha2::Sha256::digest(set.to_string())) != consented {
        bail!(
            "the computation's attestation policies are not those its participants consented to for this \
             run; nothing was sent"
        );
    }
    let default = own
        .is_none()
        .then(|| hex::encode(prism_attestation::Policy::default().digest()));
    if !own
        .iter()
        .chain(backends.values())
        .chain(default.iter())
        .any(|allowed| allowed == used)
    {
        bail!(
            "the run's evidence was appraised against a policy (SHA-256 {used}) its participants did not \
             consent to; nothing was sent"
        );
    }
    Ok(())
}

fn progress_bar(length: Option<u64>, what: &str) -> (ProgressBar, Progress) {
    let bar = match length {
        Some(length) => ProgressBar::new(length),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    let reporter = bar.clone();
    (bar, Arc::new(move |done| reporter.set_position(done)))
}

/// `prism algo upload` and `prism data upload`: checks the file against the manifest and the run's
/// attestation, sends it to the agent, and gives the platform a receipt.
pub async fn upload(
    session: &Session,
    workspace: &str,
    run: &str,
    key: &Path,
    file: &Path,
    input: Input,
    insecure_development: bool,
) -> anyhow::Result<()> {
    let key = read_key(key)?;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let digest = sha3_hex(&bytes);
    let state = session
        .get(&format!("/{workspace}/runs/{run}"))
        .await
        .context("reading the run")?;
    let manifest = &state["manifest"];
    let (kind, file_name) = match &input {
        Input::Algorithm { .. } => {
            let declared = manifest["algorithm"]["sha3_256"].as_str().unwrap_or("");
            if declared != digest {
                bail!(
                    "{} has SHA3-256 {digest}; the run's manifest declares the algorithm {declared}: nothing was sent",
                    file.display()
                );
            }
            (
                "algorithm",
                manifest["algorithm"]["file_name"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        }
        Input::Dataset => {
            let declared = manifest["datasets"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|dataset| dataset["sha3_256"] == digest.as_str())
                .ok_or_else(|| {
                    anyhow!(
                        "{} has SHA3-256 {digest}, which is no dataset of the run's manifest: nothing was sent",
                        file.display()
                    )
                })?;
            ("dataset", declared["file_name"].as_str().unwrap_or("").to_owned())
        }
    };
    let mut agent = attested_agent(session, workspace, run, insecure_development).await?;
    let (bar, progress) = progress_bar(Some(bytes.len() as u64), &format!("sending {}", file.display()));
    match input {
        Input::Algorithm {
            algo_type,
            requirements,
        } => {
            let requirements = match requirements {
                Some(path) => std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
                None => Vec::new(),
            };
            agent
                .upload_algorithm(&key, bytes, &algo_type, requirements, progress)
                .await?
        }
        Input::Dataset => agent.upload_dataset(&key, bytes, &file_name, progress).await?,
    }
    bar.finish();
    session
        .post(
            &format!("/{workspace}/runs/{run}/receipts"),
            &json!({"kind": kind, "file_name": file_name, "sha3_256": digest}),
        )
        .await
        .context("giving the platform the receipt")?;
    println!(
        "sent {} ({kind} `{file_name}`, SHA3-256 {digest}) to the run's agent",
        file.display()
    );
    Ok(())
}

/// `prism result fetch`: receives the result from the run's agent into `out`, and gives the
/// platform a receipt with its digest.
pub async fn fetch_result(
    session: &Session,
    workspace: &str,
    run: &str,
    key: &Path,
    out: &Path,
    insecure_development: bool,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let key = read_key(key)?;
    let mut agent = attested_agent(session, workspace, run, insecure_development).await?;
    let (bar, progress) = progress_bar(None, "receiving the result");
    let result = agent.fetch_result(&key, progress).await?;
    bar.finish();
    let digest = sha3_hex(&result);
    // The result is the participants' data: readable by its owner only.
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(out)
        .and_then(|mut file| file.write_all(&result))
        .with_context(|| format!("writing {}", out.display()))?;
    session
        .post(
            &format!("/{workspace}/runs/{run}/receipts"),
            &json!({"kind": "result", "file_name": "", "sha3_256": digest}),
        )
        .await
        .context("giving the platform the receipt")?;
    println!("received the result into {} (SHA3-256 {digest})", out.display());
    Ok(())
}

/// `prism attestation get`: the appraisal that let the run take inputs, as recorded.
pub async fn attestation(session: &Session, workspace: &str, run: &str) -> anyhow::Result<()> {
    let connection = session
        .get(&format!("/{workspace}/runs/{run}/connection"))
        .await
        .context("reading the run's connection details")?;
    println!("{}", serde_json::to_string_pretty(&connection["attestation"])?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_digest(backends: &[(&str, &str)], own: Option<&str>) -> String {
        let backends: std::collections::BTreeMap<&str, &str> = backends.iter().copied().collect();
        hex::encode(sha2::Sha256::digest(
            json!({"backends": backends, "computation": own}).to_string(),
        ))
    }

    #[test]
    fn only_a_policy_of_the_consented_set_lets_inputs_go() {
        let policies = json!({
            "version": 2,
            "policy": {"version": 1, "policy_sha256": "aa", "policy": {}},
            "backends": {"b1": {"version": 2, "policy_sha256": "bb", "policy": {}}}
        });
        let consented = set_digest(&[("b1", "bb")], Some("aa"));
        policy_in_consented_set(&consented, &policies, "aa").unwrap();
        policy_in_consented_set(&consented, &policies, "bb").unwrap();
        let weaker = policy_in_consented_set(&consented, &policies, "cc").unwrap_err();
        assert!(weaker.to_string().contains("did not consent"), "{weaker}");
        // The platform's default is no policy of a set that names the computation's own.
        let default = hex::encode(prism_attestation::Policy::default().digest());
        assert!(policy_in_consented_set(&consented, &policies, &default).is_err());
        // A set other than the consented one (an override added since) is refused outright.
        let other = set_digest(&[], Some("aa"));
        let changed = policy_in_consented_set(&other, &policies, "aa").unwrap_err();
        assert!(changed.to_string().contains("not those"), "{changed}");
    }

    #[test]
    fn without_a_policy_of_its_own_the_platforms_default_is_the_consented_one() {
        let policies = json!({"version": 0, "policy": null, "backends": {}});
        let consented = set_digest(&[], None);
        let default = hex::encode(prism_attestation::Policy::default().digest());
        policy_in_consented_set(&consented, &policies, &default).unwrap();
        assert!(policy_in_consented_set(&consented, &policies, "aa").is_err());
    }
}
