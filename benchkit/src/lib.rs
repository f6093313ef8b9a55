//! What the benchmarks share (`*/benches/*.rs`): the median of a round's rates, numbers written for
//! reading, the machine they ran on, and CPU time — of a process, and ([`CpuMeter`]) of the benchmark
//! itself, its nats-server and its database's backends. Benchmarks only: no platform crate depends on it.

/// The median of `values`; `None` for none.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// A whole number of at least 1 from the environment variable `name`; `default` when it is unset.
pub fn env_count(name: &str, default: usize) -> Result<usize, String> {
    match std::env::var(name) {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            Ok(_) => Err(format!("{name} must be at least 1")),
            Err(e) => Err(format!("{name}={v:?}: {e}")),
        },
        Err(_) => Ok(default),
    }
}

/// A positive number of seconds from the environment variable `name`; `default` when it is unset.
pub fn env_seconds(name: &str, default: f64) -> Result<f64, String> {
    match std::env::var(name) {
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && s > 0.0 => Ok(s),
            Ok(_) => Err(format!("{name} must be positive")),
            Err(e) => Err(format!("{name}={v:?}: {e}")),
        },
        Err(_) => Ok(default),
    }
}

/// `12345.6` → `"12,346"`; `"-"` for a value that is not finite.
pub fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return "-".to_owned();
    }
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// How many threads the machine runs at once.
pub fn cores() -> String {
    std::thread::available_parallelism().map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

/// The CPU's model name, from `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

/// CPU seconds (user + system) process `pid` has used, from `/proc/<pid>/stat`.
pub fn process_cpu_seconds(pid: &str) -> Option<f64> {
    const USER_HZ: f64 = 100.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name start at field 3 (state); utime is field 14.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_thousands() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(thousands(12_345.6), "12,346");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(f64::NAN), "-");
    }
}

/// The pid of the nats-server whose store is `store_dir`: it names its ports file after it,
/// `<store>/ports/nats-server_<pid>.ports`.
pub fn nats_server_pid(store_dir: &std::path::Path) -> Option<String> {
    std::fs::read_dir(store_dir.join("ports"))
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .find_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.strip_prefix("nats-server_")?.strip_suffix(".ports")?;
            pid.bytes().all(|b| b.is_ascii_digit()).then(|| pid.to_owned())
        })
}

/// CPU seconds (user + system) of this process, of nats-server and of the database's backends.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub this: Option<f64>,
    pub nats: Option<f64>,
    pub postgres: Option<f64>,
}

/// Reads the CPU time of this process, of nats-server and of the benchmark database's backends.
#[derive(Debug)]
pub struct CpuMeter {
    nats_pid: Option<String>,
    client: tokio_postgres::Client,
}

impl CpuMeter {
    /// Measures the nats-server whose store is `nats_store_dir` and the backends of the database
    /// at `database_url` (other than the meter's own connection).
    pub async fn new(
        nats_store_dir: &std::path::Path,
        database_url: &str,
    ) -> Result<Self, tokio_postgres::Error> {
        let nats_pid = nats_server_pid(nats_store_dir);
        let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(Self { nats_pid, client })
    }

    pub async fn postgres_version(&self) -> Result<String, tokio_postgres::Error> {
        let version: String = self
            .client
            .query_one("SELECT current_setting('server_version')", &[])
            .await?
            .get(0);
        Ok(format!("PostgreSQL {version}"))
    }

    pub async fn now(&self) -> Result<Cpu, tokio_postgres::Error> {
        // Backends of the database other than this one (the platform's pools keep theirs open).
        let rows = self
            .client
            .query(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await?;
        let postgres = rows
            .iter()
            .filter_map(|r| process_cpu_seconds(&r.get::<_, i32>(0).to_string()))
            .sum();
        Ok(Cpu {
            this: process_cpu_seconds("self"),
            nats: self.nats_pid.as_deref().and_then(process_cpu_seconds),
            postgres: Some(postgres),
        })
    }

    pub async fn since(&self, before: Cpu) -> Result<Cpu, tokio_postgres::Error> {
        let now = self.now().await?;
        let diff = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        Ok(Cpu {
            this: diff(now.this, before.this),
            nats: diff(now.nats, before.nats),
            postgres: diff(now.postgres, before.postgres),
        })
    }
}
