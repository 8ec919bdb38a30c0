//! A throw-away PostgreSQL cluster for machines where `HUBGATE_TEST_PG` is not set, so
//! that a newcomer's `cargo test` checks the PostgreSQL halves too instead of skipping
//! them: initdb'd from the installed server binaries (`/usr/lib/postgresql/<v>/bin`) on
//! first use, listening on 127.0.0.1 only, on a free port.
//!
//! One cluster serves every test process of this target directory (nextest runs each
//! test in its own process, so a per-process cluster would start ~250 servers): the
//! first process to need it creates and starts it under a file lock, the others find it
//! running. It is left running for the next run; `pg_ctl -D <dir> stop` ends it (the
//! directory is named in the error messages and the README).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The admin URL of the running local cluster, or why there is none.
pub fn admin_url() -> Result<String, String> {
    let bin = server_binaries()?;
    let as_root = is_root();
    if as_root && !Path::new("/usr/sbin/runuser").exists() {
        return Err("running as root without runuser: initdb refuses root".into());
    }
    let dir = cluster_dir(as_root);
    let lock_path = dir.with_extension("lock");
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let lock = std::fs::File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    // Held until this function returns: one process creates and starts, the others wait.
    lock.lock().map_err(|e| format!("lock {}: {e}", lock_path.display()))?;

    let password_file = dir.with_extension("password");
    if !dir.join("PG_VERSION").exists() {
        init(&bin, &dir, &password_file, as_root)?;
    }
    let password = std::fs::read_to_string(&password_file).map_err(|e| format!("{}: {e}", password_file.display()))?;
    let password = password.trim();
    let port = match running_port(&bin, &dir, as_root) {
        Some(port) => port,
        None => start(&bin, &dir, as_root)?,
    };
    let url = format!("postgres://hubgate:{password}@127.0.0.1:{port}/postgres");
    use diesel::Connection;
    diesel::pg::PgConnection::establish(&url)
        .map_err(|e| format!("the local cluster in {} does not answer: {e}", dir.display()))?;
    Ok(url)
}

/// The newest installed server's bin directory.
fn server_binaries() -> Result<PathBuf, String> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .map_err(|_| "no PostgreSQL server installed (apt-get install postgresql)".to_string())?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| "no initdb under /usr/lib/postgresql".to_string())
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Under the target directory; as root, in the temp directory where the `postgres`
/// account (initdb will not run as root) may write.
fn cluster_dir(as_root: bool) -> PathBuf {
    let target_tmp = env!("CARGO_TARGET_TMPDIR");
    if !as_root {
        return Path::new(target_tmp).join("test-pg");
    }
    // One cluster per target directory (worktrees side by side each get their own).
    let tag =
        target_tmp.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    std::env::temp_dir().join(format!("hubgate-test-pg-{tag:016x}"))
}

/// A server program, run as `postgres` when we are root.
fn program(bin: &Path, name: &str, as_root: bool) -> Command {
    if as_root {
        let mut cmd = Command::new("/usr/sbin/runuser");
        cmd.args(["-u", "postgres", "--"]).arg(bin.join(name));
        cmd
    } else {
        Command::new(bin.join(name))
    }
}

fn init(bin: &Path, dir: &Path, password_file: &Path, as_root: bool) -> Result<(), String> {
    // A half-made directory from an interrupted initdb.
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let password = {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        (0..24).map(|_| char::from(b'a' + rng.gen_range(0..26u8))).collect::<String>()
    };
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(password_file)
            .map_err(|e| format!("{}: {e}", password_file.display()))?;
        std::io::Write::write_all(&mut f, password.as_bytes()).map_err(|e| format!("{e}"))?;
    }
    if as_root {
        // initdb runs as `postgres` and reads the password from this file.
        let chown = Command::new("chown").arg("postgres").arg(password_file).status();
        if !chown.is_ok_and(|s| s.success()) {
            return Err(format!("chown postgres {}", password_file.display()));
        }
    }
    // The superuser has a password (scram): a local account that finds the port cannot
    // use the cluster to run programs as its owner.
    let out = program(bin, "initdb", as_root)
        .arg("-D")
        .arg(dir)
        .args(["-U", "hubgate", "-E", "UTF8", "--locale=C.UTF-8", "--auth=scram-sha-256", "--no-sync"])
        .arg(format!("--pwfile={}", password_file.display()))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!("initdb into {} failed: {}", dir.display(), String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

/// The port of the cluster when its server is up (line 4 of postmaster.pid).
fn running_port(bin: &Path, dir: &Path, as_root: bool) -> Option<u16> {
    let status = program(bin, "pg_ctl", as_root)
        .arg("-D")
        .arg(dir)
        .arg("status")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    if !status.success() {
        return None;
    }
    std::fs::read_to_string(dir.join("postmaster.pid")).ok()?.lines().nth(3)?.trim().parse().ok()
}

fn start(bin: &Path, dir: &Path, as_root: bool) -> Result<u16, String> {
    let log = dir.join("server.log");
    let mut last = String::new();
    // A free port can be taken by someone else before the server binds it: try another.
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free port: {e}"))?;
        // Durability is of no use for data dropped after each test; speed is.
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=300 \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        );
        let out = program(bin, "pg_ctl", as_root)
            .arg("-D")
            .arg(dir)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("pg_ctl: {e}"))?;
        if out.status.success() {
            return Ok(port);
        }
        last = format!(
            "{}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    Err(format!("the local cluster in {} did not start: {last}", dir.display()))
}
