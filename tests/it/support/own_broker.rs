//! A Kafka broker of one test's own (`hack/testenv.sh broker <name>`), for
//! tests that kill it: the shared broker serves every other test.

use std::time::Instant;

use super::{env_dir, unique_name};

pub struct OwnBroker {
    name: String,
    pub bootstrap: String,
}

impl OwnBroker {
    /// Starts a new broker (KRaft, free ports, its own data) and waits until
    /// it serves.
    pub fn start(prefix: &str) -> OwnBroker {
        let name = unique_name(prefix);
        let bootstrap = Self::run(&name, None);
        OwnBroker { name, bootstrap }
    }

    /// Like [`OwnBroker::start`], with a SASL_SSL listener as well
    /// (SCRAM-SHA-512 user `matview`, a certificate of the environment's CA).
    pub fn start_sasl_ssl(prefix: &str) -> OwnBroker {
        let name = unique_name(prefix);
        let bootstrap = Self::run(&name, Some("sasl-ssl"));
        OwnBroker { name, bootstrap }
    }

    fn file(&self, name: &str) -> std::path::PathBuf {
        env_dir().join("brokers").join(&self.name).join(name)
    }

    /// The SASL_SSL listener's address (from [`OwnBroker::start_sasl_ssl`]).
    pub fn sasl_ssl_bootstrap(&self) -> String {
        std::fs::read_to_string(self.file("sasl-ssl-bootstrap"))
            .expect("a SASL_SSL listener")
            .trim()
            .to_string()
    }

    /// The password of the SCRAM user `matview`.
    pub fn sasl_password(&self) -> String {
        std::fs::read_to_string(self.file("sasl-password"))
            .expect("a SCRAM user")
            .trim()
            .to_string()
    }

    /// The CA certificate (PEM) that signed the listener's certificate.
    pub fn ca_pem(&self) -> std::path::PathBuf {
        self.file("tls/ca.pem")
    }

    /// `hack/testenv.sh broker <name> [sasl-ssl]`: (re)starts it; returns its
    /// plaintext address.
    fn run(name: &str, secured: Option<&str>) -> String {
        let mut args = vec!["broker", name];
        args.extend(secured);
        super::testenv(&args)
    }

    fn pid(&self) -> Option<i32> {
        let file = env_dir().join("pids").join(format!("broker-{}", self.name));
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    /// kill -9 of the broker process (no clean shutdown), waited for.
    pub fn kill9(&self) {
        let pid = self.pid().expect("the broker's pid file");
        // SAFETY: kill(2) on the broker the test environment started for us.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while alive(pid) {
            assert!(Instant::now() < deadline, "broker {pid} survived kill -9");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Starts it again on the same address and data.
    pub fn start_again(&self) {
        let bootstrap = Self::run(&self.name, None);
        assert_eq!(bootstrap, self.bootstrap, "the broker came back elsewhere");
    }
}

/// Whether `pid` runs (a zombie, dead but not yet reaped by whoever adopted
/// it, does not).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            // SAFETY: as in kill9; the process may be gone already.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        let _ = std::fs::remove_dir_all(env_dir().join("brokers").join(&self.name));
    }
}
