//! A schema registry of one test's own (`hack/testenv.sh registry <name>`),
//! for tests that stop it: the shared registry serves every other test.

use std::process::Command;

use super::{env_dir, unique_name};

pub struct OwnRegistry {
    name: String,
    /// The Confluent-compatible API's base URL.
    pub url: String,
}

impl OwnRegistry {
    /// Starts a new registry (free port, its own schemas) and waits until it answers.
    pub fn start(prefix: &str) -> OwnRegistry {
        let name = unique_name(prefix);
        let url = testenv(&["registry", &name]);
        OwnRegistry { name, url }
    }

    /// kill -9, waited for.
    pub fn stop(&self) {
        testenv(&["stop-registry", &self.name]);
    }

    /// Starts it again: same address, same schemas under the same ids.
    pub fn start_again(&self) {
        let url = testenv(&["registry", &self.name]);
        assert_eq!(url, self.url, "the registry came back elsewhere");
    }
}

/// Runs `hack/testenv.sh` with `args`; its last line of output.
fn testenv(args: &[&str]) -> String {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/testenv.sh"))
        .args(args)
        .env("MATVIEW_TESTENV_DIR", env_dir())
        .output()
        .expect("cannot run hack/testenv.sh");
    assert!(
        out.status.success(),
        "hack/testenv.sh {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string()
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        let pid_file = env_dir()
            .join("pids")
            .join(format!("registry-{}", self.name));
        if let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            // SAFETY: kill(2) on the registry the test environment started for us.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        let _ = std::fs::remove_dir_all(env_dir().join("registries").join(&self.name));
    }
}
