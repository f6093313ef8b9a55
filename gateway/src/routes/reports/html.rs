//! The compliance report as a readable page: self-contained (one inline style sheet, no script, no
//! image, nothing fetched), every value escaped by `maud`, which writes markup at compile time and
//! escapes whatever is spliced into it unless told otherwise (nothing here tells it otherwise).

use chrono::{DateTime, SecondsFormat, Utc};
use maud::{DOCTYPE, Markup, html};
use prism_app::ComplianceReport;
use prism_app::reports::{
    AttestationFacts, CertificateFacts, CvmFacts, EndingFacts, LogRef, ReceiptFacts, ReportScope, RunFacts,
    Stamp,
};

const STYLE: &str = "
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #1b1f24;
       margin: 0 auto; max-width: 1100px; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #d0d7de; }
h3 { font-size: 15px; margin: 18px 0 6px; }
p.lead { color: #57606a; margin: 0 0 16px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px; border-bottom: 1px solid #e5e8eb; }
th { background: #f6f8fa; font-weight: 600; }
table.facts th { width: 230px; background: none; color: #57606a; font-weight: 500; }
code, pre { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
code { word-break: break-all; }
pre { background: #f6f8fa; padding: 8px; white-space: pre-wrap; word-break: break-all; margin: 0; }
.ref { color: #57606a; font-size: 12px; }
.t { white-space: nowrap; }
.ok { color: #1a7f37; font-weight: 600; }
.warn { color: #9a6700; font-weight: 600; }
.bad { color: #cf222e; font-weight: 600; }
.none { color: #8c959f; }
footer { margin-top: 32px; color: #57606a; font-size: 12px; border-top: 1px solid #d0d7de; padding-top: 8px; }
@media print { body { max-width: none; padding: 0; } h2 { break-after: avoid; } tr { break-inside: avoid; } }
";

/// The whole page.
pub fn page(report: &ComplianceReport) -> Markup {
    let title = match (&report.scope, &report.run) {
        (ReportScope::Run, Some(run)) => format!("Compliance report — run {}", run.id),
        _ => format!("Compliance report — {}", report.computation.name),
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="generator" content=(report.format);
                title { (title) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                h1 { (title) }
                p.lead {
                    "Built from the event log at stream sequence " strong { (report.log_position) }
                    " on " (time(&report.generated_at)) ". Every fact names the event it comes from: "
                    code { "<aggregate> @ <sequence>.<index>" } "."
                }
                (overview(report))
                (computation(report))
                (participants(report))
                (manifest(report))
                (consents(report))
                @if let Some(run) = &report.run {
                    (run_section(run))
                } @else {
                    (runs(report))
                }
                footer {
                    "Format " code { (report.format) } ". To see a fact in the log: "
                    code { "prism replay <aggregate type> <id> --until <sequence>" }
                    " (or " code { "GET /operations/replay/<type>/<id>?until_sequence=<sequence>" }
                    "); the audit feed " code { "GET /<workspace>/events" } " gives each event the id "
                    code { "<sequence>.<index>" } ". The JSON form of this report: "
                    code { "Accept: application/json" } "."
                }
            }
        }
    }
}

fn time(at: &DateTime<Utc>) -> Markup {
    html! { span.t { (at.to_rfc3339_opts(SecondsFormat::Millis, true)) } }
}

/// Where a fact is in the log.
fn reference(at: &LogRef) -> Markup {
    html! {
        span.ref title=(format!("{} — event {}", at.event_type, at.event_id)) {
            code { (at.aggregate) " @ " (at.sequence) "." (at.index) }
        }
    }
}

fn stamp(stamp: &Stamp) -> Markup {
    html! {
        (time(&stamp.at)) " by " code { (stamp.actor) } br; (reference(&stamp.recorded))
    }
}

fn optional_stamp(value: Option<&Stamp>) -> Markup {
    match value {
        Some(value) => stamp(value),
        None => html! { span.none { "—" } },
    }
}

fn yes_no(value: bool) -> Markup {
    if value {
        html! { span.ok { "yes" } }
    } else {
        html! { span.bad { "no" } }
    }
}

fn overview(report: &ComplianceReport) -> Markup {
    html! {
        table.facts {
            tr { th { "Scope" } td { (match report.scope { ReportScope::Computation => "computation", ReportScope::Run => "run" }) } }
            tr { th { "Workspace" } td { code { (report.workspace) } } }
            tr { th { "Computation" } td { code { (report.computation.id) } } }
            @if let Some(run) = &report.run {
                tr { th { "Run" } td { code { (run.id) } } }
            }
            tr { th { "Log position" } td { (report.log_position) } }
            tr { th { "Generated" } td { (time(&report.generated_at)) } }
        }
    }
}

fn computation(report: &ComplianceReport) -> Markup {
    let c = &report.computation;
    html! {
        h2 { "Computation" }
        table.facts {
            tr { th { "Name" } td { (c.name) } }
            tr { th { "Description" } td {
                @if c.description.is_empty() { span.none { "—" } } @else { (c.description) }
            } }
            tr { th { "Status" } td { (c.status) } }
            tr { th { "Defined by" } td { code { (c.defined_by) } } }
            tr { th { "Defined at" } td { (time(&c.defined_at)) br; (reference(&c.defined)) } }
            tr { th { "Current manifest" } td { code { (c.current_manifest_id) } } }
            tr { th { "Approved by its signers" } td { (yes_no(c.approved)) } }
        }
    }
}

fn participants(report: &ComplianceReport) -> Markup {
    html! {
        h2 { "Participants" }
        @if report.run.is_some() {
            p.ref { "As the run's manifest names them." }
        }
        table {
            tr { th { "Participant" } th { "Roles" } th { "Key" } th { "SPKI SHA-256" } }
            @for p in &report.participants {
                tr {
                    td { code { (p.id) } }
                    td {
                        (p.roles.join(", "))
                        @if !p.custom_roles.is_empty() { br; span.ref { "custom: " (p.custom_roles.join(", ")) } }
                    }
                    @if let Some(key) = &p.public_key {
                        td { (key.algorithm) }
                        td { code { (key.spki_sha256) } }
                    } @else {
                        td.none { "no key" } td.none { "—" }
                    }
                }
            }
        }
    }
}

fn manifest(report: &ComplianceReport) -> Markup {
    let m = &report.manifest;
    html! {
        h2 { "Manifest" }
        table.facts {
            tr { th { "Manifest id" } td { code { (m.id) } } }
            tr { th { "Result consumers" } td {
                @for (i, consumer) in m.result_consumers.iter().enumerate() {
                    @if i > 0 { ", " } code { (consumer) }
                }
            } }
            tr { th { "Attestation policies (SHA-256)" } td { code { (m.attestation_policy_sha256) } } }
            tr { th { "Longest run" } td { (m.max_run_seconds) " s" } }
        }
        table {
            tr { th { "Kind" } th { "File name" } th { "Provider" } th { "SHA3-256" } }
            @if let Some(a) = &m.algorithm {
                tr { td { "algorithm" } td { code { (a.file_name) } } td { code { (a.provider) } } td { code { (a.sha3_256) } } }
            }
            @for d in &m.datasets {
                tr { td { "dataset" } td { code { (d.file_name) } } td { code { (d.provider) } } td { code { (d.sha3_256) } } }
            }
        }
        @if report.scope == ReportScope::Computation && !report.runs.is_empty() {
            p.ref { "Each run's manifest id is in the list of runs below." }
        }
    }
}

fn consents(report: &ComplianceReport) -> Markup {
    html! {
        h2 { "Consents" }
        @if report.consents.is_empty() {
            p.none { "None recorded." }
        } @else {
            table {
                tr { th { "Participant" } th { "Manifest id" } th { "Signed" } }
                @for c in &report.consents {
                    tr {
                        td { code { (c.participant) } }
                        td { code { (c.manifest_id) } }
                        td { (optional_stamp(c.signed.as_ref())) }
                    }
                }
            }
        }
    }
}

fn ending_text(ending: &EndingFacts) -> Markup {
    html! {
        span.warn { (ending.outcome) } " while " (ending.during.as_str()) ": " (ending.reason)
    }
}

fn runs(report: &ComplianceReport) -> Markup {
    html! {
        h2 { "Runs" }
        @if report.runs.is_empty() {
            p.none { "No run yet." }
        } @else {
            table {
                tr { th { "Run" } th { "Manifest id" } th { "State" } th { "Requested" } th { "Ending" } th { "Closed" } }
                @for r in &report.runs {
                    tr {
                        td { code { (r.id) } }
                        td { code { (r.manifest_id) } }
                        td { (r.status.as_str()) }
                        td { (stamp(&r.requested)) }
                        td {
                            @if let Some(ending) = &r.ending { (ending_text(ending)) } @else { span.none { "—" } }
                        }
                        td { (optional_stamp(r.closed.as_ref())) }
                    }
                }
            }
        }
    }
}

fn run_section(run: &RunFacts) -> Markup {
    html! {
        h2 { "Run" }
        table.facts {
            tr { th { "Final state" } td { strong { (run.status.as_str()) } } }
            tr { th { "Manifest executed" } td { code { (run.manifest_id) } } }
            tr { th { "Requested" } td { (stamp(&run.requested)) } }
            @if let Some(deadline) = &run.deadline {
                tr { th { "Deadline" } td { (time(deadline)) } }
            }
            @if let Some(retry_of) = &run.retry_of {
                tr { th { "Tries again" } td { code { (retry_of) } } }
            }
            tr { th { "Completed" } td { (optional_stamp(run.completed.as_ref())) } }
            tr { th { "Ending" } td {
                @if let Some(ending) = &run.ending {
                    (ending_text(ending)) br; (stamp(&ending.recorded))
                } @else {
                    span.ok { "none: it ran to completion" }
                }
            } }
            tr { th { "Closed" } td { (optional_stamp(run.closed.as_ref())) } }
            @if let Some(usage) = &run.usage {
                tr { th { "Machine used" } td {
                    (usage.vcpus) " vCPU, " (usage.memory_mib) " MiB, " (usage.seconds) " s"
                } }
            }
        }
        (attestation(run.attestation.as_ref()))
        (receipts("Inputs delivered", "No algorithm or dataset receipt.", &run.uploads))
        (receipts("Results received", "Nobody has said they received the result.", &run.results))
        (cvm(run.cvm.as_ref()))
        (certificates(&run.certificates))
        h2 { "Timeline" }
        table {
            tr { th { "When" } th { "From" } th { "To" } th { "Event" } th { "By" } th { "In the log" } }
            @for t in &run.timeline {
                tr {
                    td { (time(&t.recorded.at)) }
                    td { (t.from.as_str()) }
                    td { (t.to.as_str()) }
                    td { code { (t.event) } }
                    td { code { (t.recorded.actor) } }
                    td { (reference(&t.recorded.recorded)) }
                }
            }
        }
    }
}

fn attestation(facts: Option<&AttestationFacts>) -> Markup {
    html! {
        h2 { "Attestation" }
        @if let Some(a) = facts {
            @let outcome = serde_json::to_value(a.outcome).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            @let class = match a.outcome {
                prism_attestation::Outcome::Verified => "ok",
                prism_attestation::Outcome::AcceptedInsecure => "warn",
                prism_attestation::Outcome::Refused => "bad",
            };
            table.facts {
                tr { th { "Verdict" } td { span class=(class) { (outcome) } " (" (a.platform) ")" } }
                tr { th { "Evidence SHA-256" } td { code { (a.evidence_sha256) } } }
                tr { th { "Verdict names that evidence" } td { (yes_no(a.verdict_names_evidence)) } }
                tr { th { "Let the inputs in" } td {
                    (yes_no(a.admitted_inputs))
                    @if let Some(attested) = &a.attested { br; (reference(attested)) }
                } }
                tr { th { "Policy SHA-256" } td { code { (a.policy_sha256) } } }
                tr { th { "Policy source" } td { code { (serde_json::to_string(&a.policy_source).unwrap_or_default()) } } }
                tr { th { "Policy" } td { pre { (serde_json::to_string_pretty(&a.policy).unwrap_or_default()) } } }
                @if let Some(nonce) = &a.nonce {
                    tr { th { "Nonce" } td { code { (nonce) } } }
                } @else {
                    tr { th { "Nonce" } td { span.warn { "none: a start-up report, not fresh evidence" } } }
                }
                @if !a.failures.is_empty() {
                    tr { th { "Failed checks" } td { ul { @for f in &a.failures { li { (f.to_string()) } } } } }
                }
                @if !a.warnings.is_empty() {
                    tr { th { "Warnings" } td { ul { @for w in &a.warnings { li.warn { (w) } } } } }
                }
                tr { th { "Appraised" } td { (stamp(&a.appraised)) } }
                tr { th { "EAR" } td { pre { (a.ear) } } }
            }
        } @else {
            p.none { "No appraisal: the run's CVM never gave evidence." }
        }
    }
}

fn receipts(title: &str, empty: &str, receipts: &[ReceiptFacts]) -> Markup {
    html! {
        h2 { (title) }
        @if receipts.is_empty() {
            p.none { (empty) }
        } @else {
            table {
                tr { th { "Participant" } th { "Kind" } th { "File name" } th { "SHA3-256" } th { "As declared" } th { "Recorded" } }
                @for r in receipts {
                    tr {
                        td { code { (r.participant) } }
                        td { (serde_json::to_value(r.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()) }
                        td { @if r.file_name.is_empty() { span.none { "—" } } @else { code { (r.file_name) } } }
                        td { code { (r.sha3_256) } }
                        td { (yes_no(r.as_declared)) }
                        td { (stamp(&r.recorded)) }
                    }
                }
            }
        }
    }
}

fn cvm(facts: Option<&CvmFacts>) -> Markup {
    html! {
        h2 { "Confidential VM" }
        @if let Some(c) = facts {
            table.facts {
                tr { th { "CVM" } td { code { (c.id) } } }
                tr { th { "State" } td { (c.status) } }
                tr { th { "Backend" } td { @if let Some(b) = &c.backend { code { (b) } } @else { span.none { "—" } } } }
                tr { th { "Platform" } td {
                    @if let Some(p) = &c.platform {
                        (p) @if p == "none" { " " span.warn { "(no hardware protection)" } }
                    } @else { span.none { "—" } }
                } }
                tr { th { "Asked for" } td { (stamp(&c.requested)) } }
                @if let Some(started) = &c.started_at {
                    tr { th { "Started" } td { (time(started)) } }
                }
                tr { th { "Destroyed" } td {
                    @if let Some(destroyed) = &c.destroyed {
                        (stamp(destroyed))
                        @if let Some(reason) = &c.destroy_reason { br; "reason: " (reason) }
                    } @else {
                        span.bad { "not destroyed" }
                    }
                } }
                @if let Some(failure) = &c.failure {
                    tr { th { "Failure" } td { (failure) } }
                }
            }
        } @else {
            p.none { "No CVM was made for this run." }
        }
    }
}

fn certificates(certificates: &[CertificateFacts]) -> Markup {
    html! {
        h2 { "Certificates of the CVM" }
        @if certificates.is_empty() {
            p.none { "None issued." }
        } @else {
            table {
                tr { th { "Profile" } th { "Serial" } th { "Valid" } th { "Issued" } th { "Revoked" } th { "On the CRL" } }
                @for c in certificates {
                    @for s in &c.serials {
                        tr {
                            td { (c.profile) br; span.ref { code { (c.common_name) } } }
                            td { code { (s.serial) } }
                            td { (time(&s.not_before)) br; "to " (time(&s.not_after)) }
                            td { (stamp(&c.issued)) }
                            td {
                                @if let Some(revoked) = &c.revoked {
                                    span.ok { "revoked" } " (" (revoked.reason) ")" br; (stamp(&revoked.recorded))
                                } @else {
                                    span.bad { (c.status) }
                                }
                            }
                            td {
                                @match s.on_crl {
                                    Some(true) => span.ok { "yes" },
                                    Some(false) => span.warn { "no" },
                                    None => span.none { "—" },
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
