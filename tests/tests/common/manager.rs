//! The real Cocos v0.10.2 manager as a child process, for conformance tests: its gRPC server on
//! 127.0.0.1 over mutual TLS, and `infra/cocos/qemu-as-processes.sh` in place of QEMU, so that each VM
//! it "boots" is the NoCC agent stack as processes. No KVM, no sudo, no firmware or kernel.
//!
//! It finds the programs and the repository with `common::peers`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prism_app::Caller;
use prism_backends::{Driver as _, DriverError, ManagerConfig, ManagerDriver};
use prism_cli::PROVISIONER_CERTIFICATE_ENTITY;
use prism_domain::certificate::Subject;

use super::common::Prism;
use super::common::peers::repository_root;

/// What the manager serves with and whom it lets in.
pub struct ManagerTls {
    /// Its server certificate (it must name 127.0.0.1), then the intermediates.
    pub server_chain_pem: String,
    pub server_key_pem: String,
    /// The roots its clients' certificates must chain to.
    pub client_ca_pem: String,
}

/// What the manager reports of its VMs in `CVMInfo`, set through its environment.
pub const OVMF_VERSION: &str = "edk2-prism-conformance";
pub const EOS_VERSION: &str = "prism-conformance-eos";
pub const CPU_MODEL: &str = "EPYC-v4";
pub const VCPUS: u32 = 2;

/// A running Cocos manager. Dropping it stops the manager and every VM it started (each stops its
/// agent stack on SIGTERM), then removes its files.
pub struct CocosManager {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
    /// The contents of the firmware variables file, unique to this manager: the manager copies it
    /// to `/tmp/OVMF_VARS-<uuid>.fd` for each VM and never deletes the copies; this finds them.
    ovmf_vars_marker: String,
}

impl CocosManager {
    /// Starts `programs/manager` with its files in a new directory under `parent`.
    ///
    /// Environment, all of it (nothing else is inherited but `PATH` and `HOME`):
    /// - `MANAGER_GRPC_HOST/_PORT` — a free port on 127.0.0.1 (there is no default port);
    ///   `_SERVER_CERT/_SERVER_KEY/_CLIENT_CA_CERTS` — mutual TLS (a client CA makes it require and
    ///   verify client certificates);
    /// - `MANAGER_HTTP_HOST/_PORT` — its health and metrics server, on a free port rather than 7003;
    /// - `COCOS_JAEGER_TRACE_RATIO=0` — otherwise it posts traces to localhost:4318;
    /// - `MANAGER_QEMU_BIN_PATH` — the stand-in for QEMU; `MANAGER_QEMU_ENABLE_KVM=false`,
    ///   `MANAGER_QEMU_USE_SUDO=false` — no KVM, no sudo;
    /// - `MANAGER_QEMU_OVMF_VARS_FILE` — must exist: it is copied for each VM;
    /// - `MANAGER_QEMU_DISK_IMG_KERNEL_FILE/_ROOTFS_FILE` — must be non-empty, are never read;
    /// - `MANAGER_QEMU_OVMF_VERSION`, `MANAGER_QEMU_CPU`, `MANAGER_QEMU_SMP_COUNT`,
    ///   `MANAGER_EOS_VERSION` — what `CVMInfo` reports, set to values a test can recognise;
    /// - `PRISM_COCOS_VM_ROOT` — where the stand-in puts each VM's working directory (with a copy of
    ///   the files the manager handed over, which the manager deletes when it removes the VM);
    ///   `PRISM_COCOS_AGENT_STACK_OPTS=--bin-dir …` — the programs already built.
    pub fn start(programs: &Path, tls: &ManagerTls, parent: &Path) -> CocosManager {
        let dir = parent.join(format!("cocos-manager-{}", uuid::Uuid::now_v7().simple()));
        let vm_root = dir.join("vms");
        std::fs::create_dir_all(&vm_root).unwrap();
        let file = |name: &str, contents: &str| {
            let path = dir.join(name);
            std::fs::write(&path, contents).unwrap();
            path
        };
        let server_cert = file("server.pem", &tls.server_chain_pem);
        let server_key = file("server.key", &tls.server_key_pem);
        let client_ca = file("client-ca.pem", &tls.client_ca_pem);
        let ovmf_vars_marker = format!("prism conformance firmware variables {}", dir.display());
        let ovmf_vars = file("OVMF_VARS.fd", &ovmf_vars_marker);
        let programs = programs.to_str().expect("a UTF-8 path to the Cocos programs");
        assert!(
            !programs.contains(char::is_whitespace),
            "the stand-in word-splits its options: {programs}"
        );
        let addr = free_addr();
        let http = free_addr();
        let log = std::fs::File::create(dir.join("manager.log")).unwrap();
        let mut command = Command::new(programs.to_owned() + "/manager");
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .env("MANAGER_LOG_LEVEL", "debug")
            .env("COCOS_JAEGER_TRACE_RATIO", "0")
            .env("MANAGER_GRPC_HOST", addr.ip().to_string())
            .env("MANAGER_GRPC_PORT", addr.port().to_string())
            .env("MANAGER_GRPC_SERVER_CERT", &server_cert)
            .env("MANAGER_GRPC_SERVER_KEY", &server_key)
            .env("MANAGER_GRPC_CLIENT_CA_CERTS", &client_ca)
            .env("MANAGER_HTTP_HOST", http.ip().to_string())
            .env("MANAGER_HTTP_PORT", http.port().to_string())
            .env("MANAGER_EOS_VERSION", EOS_VERSION)
            .env(
                "MANAGER_QEMU_BIN_PATH",
                repository_root().join("infra/cocos/qemu-as-processes.sh"),
            )
            .env("MANAGER_QEMU_ENABLE_KVM", "false")
            .env("MANAGER_QEMU_USE_SUDO", "false")
            .env("MANAGER_QEMU_OVMF_VARS_FILE", &ovmf_vars)
            .env("MANAGER_QEMU_OVMF_VERSION", OVMF_VERSION)
            .env("MANAGER_QEMU_DISK_IMG_KERNEL_FILE", "no-kernel-is-booted")
            .env("MANAGER_QEMU_DISK_IMG_ROOTFS_FILE", "no-initramfs-is-booted")
            .env("MANAGER_QEMU_CPU", CPU_MODEL)
            .env("MANAGER_QEMU_SMP_COUNT", VCPUS.to_string())
            .env("PRISM_COCOS_VM_ROOT", &vm_root)
            .env("PRISM_COCOS_AGENT_STACK_OPTS", format!("--bin-dir {programs}"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // A process group of its own: the manager, the stand-ins it starts and their agent-stack
        // scripts are stopped together.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().expect("starting the Cocos manager");
        CocosManager {
            child,
            addr,
            dir,
            ovmf_vars_marker,
        }
    }

    /// The manager's gRPC address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its log (stdout and stderr; the VMs' output is logged there too).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("manager.log")).unwrap_or_default()
    }

    /// The manager's log, then each VM's process logs: what explains a VM that did not come up.
    pub fn logs(&self) -> String {
        let mut text = format!("== manager.log\n{}", self.log());
        let vms = std::fs::read_dir(self.dir.join("vms")).into_iter().flatten();
        for vm in vms.filter_map(Result::ok) {
            let logs = std::fs::read_dir(vm.path().join("logs")).into_iter().flatten();
            for log in logs.filter_map(Result::ok) {
                let contents = std::fs::read_to_string(log.path()).unwrap_or_default();
                text.push_str(&format!("== {}\n{contents}", log.path().display()));
            }
        }
        text
    }

    /// Panics with the log when the manager has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the Cocos manager exited ({status}):\n{}", self.log());
        }
    }

    /// The working directory the stand-in made for the VM `cvm_id`, once it exists.
    pub fn vm_dir(&self, cvm_id: &str) -> Option<PathBuf> {
        let prefix = format!("prism-cocos-vm.{cvm_id}.");
        std::fs::read_dir(self.dir.join("vms"))
            .ok()?
            .filter_map(Result::ok)
            .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
    }

    fn group_alive(&self) -> bool {
        signal_group("-0", self.child.id())
    }
}

impl Drop for CocosManager {
    fn drop(&mut self) {
        // SIGTERM to the whole group; each stand-in stops its agent stack, which stops its programs
        // (in sessions of their own) and waits for them, so the group is waited for to empty before
        // anything is killed: a SIGKILL to agent-stack.sh would leave the programs running.
        signal_group("-TERM", self.child.id());
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.group_alive() && Instant::now() < deadline {
            let _ = self.child.try_wait();
            std::thread::sleep(Duration::from_millis(100));
        }
        if self.group_alive() {
            signal_group("-KILL", self.child.id());
        }
        let _ = self.child.wait();
        // The manager starts each stand-in in a process group of its own and leaves it running
        // when it exits: a test that ends with a VM still up would leave its agent stack holding
        // the host's one place for it. Its programs run in the VM's working directory.
        let vms = std::fs::read_dir(self.dir.join("vms")).into_iter().flatten();
        for vm in vms.filter_map(Result::ok) {
            for (pid, _) in processes_in(&vm.path()) {
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
        }
        if let Ok(entries) = std::fs::read_dir("/tmp") {
            for entry in entries.filter_map(Result::ok) {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with("OVMF_VARS-")
                    && name.ends_with(".fd")
                    && std::fs::read_to_string(entry.path()).ok().as_deref()
                        == Some(self.ovmf_vars_marker.as_str())
                {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `kill <signal> -- -<group>`; whether it reached any process.
fn signal_group(signal: &str, group: u32) -> bool {
    Command::new("kill")
        .args([signal, "--", &format!("-{group}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The processes whose working directory is `dir` (the agent stack runs its programs there).
pub fn processes_in(dir: &Path) -> Vec<(u32, String)> {
    let Ok(dir) = dir.canonicalize() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).ok().as_deref() == Some(&dir))
        .map(|pid| {
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            (pid, name.trim().to_owned())
        })
        .collect()
}

/// A free port on 127.0.0.1.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Starts the real manager with a server certificate of the platform's authority for 127.0.0.1,
/// admitting clients whose certificates chain to the platform's root — the platform's provisioner.
pub async fn start_manager(prism: &Prism, programs: &std::path::Path) -> CocosManager {
    let localhost = Subject {
        common_name: "cocos-manager".into(),
        ip_addresses: vec!["127.0.0.1".parse().unwrap()],
        ..Default::default()
    };
    let identity = prism
        .platform()
        .app()
        .certificates()
        .platform_identity(&Caller::service("cocos-manager"), "cocos-manager", localhost)
        .await
        .unwrap();
    CocosManager::start(
        programs,
        &ManagerTls {
            server_chain_pem: identity.certificate_chain,
            server_key_pem: identity.private_key,
            client_ca_pem: identity.root,
        },
        &std::env::temp_dir(),
    )
}

/// A driver of `addr` presenting the certificate the platform's provisioner presents to managers.
pub async fn provisioner_driver(prism: &Prism, addr: String) -> ManagerDriver {
    let name = Subject {
        common_name: PROVISIONER_CERTIFICATE_ENTITY.into(),
        dns_names: vec!["localhost".into()],
        ..Default::default()
    };
    let identity = prism
        .platform()
        .app()
        .certificates()
        .platform_identity(
            &Caller::service(PROVISIONER_CERTIFICATE_ENTITY),
            PROVISIONER_CERTIFICATE_ENTITY,
            name,
        )
        .await
        .unwrap();
    ManagerDriver::new(ManagerConfig::new(
        addr,
        &identity.root,
        &identity.certificate_chain,
        &identity.private_key,
    ))
    .unwrap()
}

/// Waits until the manager answers its health check (it takes a moment to listen).
pub async fn until_healthy(driver: &ManagerDriver, cocos_manager: &mut CocosManager) {
    let started = Instant::now();
    loop {
        match driver.check().await {
            Ok(()) => break,
            Err(DriverError::Unreachable(_)) if started.elapsed() < Duration::from_secs(30) => {
                cocos_manager.assert_running();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the manager is not healthy: {e}\n{}", cocos_manager.log()),
        }
    }
    eprintln!("the manager answered after {:?}", started.elapsed());
}

/// Registers `manager` as a backend of `ws` named `name`, offering machines without a TEE, trusted
/// through the platform's own root (its server certificate is of the platform's authority).
pub async fn register_backend(
    prism: &Prism,
    admin: &Caller,
    ws: prism_domain::WorkspaceId,
    manager: &CocosManager,
    name: &str,
) -> prism_domain::BackendId {
    use prism_domain::backend::{BackendSettings, Driver};
    let app = prism.platform().app();
    let root = app.certificates().authority().await.unwrap().root_pem();
    let registered = app
        .backends()
        .register(
            admin,
            &prism_app::CommandOptions::default(),
            Some(ws),
            BackendSettings {
                name: name.into(),
                driver: Driver::CocosManager {
                    address: manager.addr().to_string(),
                    ca_pem: root,
                },
                platforms: vec![prism_domain::cvm::ConfidentialPlatform::None],
                capacity: 4,
                labels: std::collections::BTreeMap::new(),
                price: None,
            },
        )
        .await
        .unwrap();
    prism_domain::BackendId(registered.id.parse().unwrap())
}
