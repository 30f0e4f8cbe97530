//! A schema registry of one test's own (`hack/testenv.sh registry <name>`),
//! for tests that stop it or secure it: the shared registry serves every
//! other test.

use super::{env_dir, testenv, unique_name};

pub struct OwnRegistry {
    name: String,
    /// The Confluent-compatible API's base URL.
    pub url: String,
}

/// A registry behind an https front with basic auth (nginx, a certificate
/// from the environment's CA): the same schemas at `registry.url` for
/// producers, and at `url` for the client under test.
pub struct SecuredRegistry {
    pub registry: OwnRegistry,
    pub url: String,
    pub username: String,
    pub password: String,
    /// The environment's CA, PEM.
    pub ca_pem: String,
}

impl SecuredRegistry {
    pub fn start(prefix: &str) -> SecuredRegistry {
        let name = unique_name(prefix);
        let url = testenv(&["registry", &name, "secured"]);
        let dir = env_dir().join("registries").join(&name);
        let read = |path: std::path::PathBuf| {
            std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
                .trim()
                .to_string()
        };
        let plain = read(dir.join("url"));
        SecuredRegistry {
            registry: OwnRegistry { name, url: plain },
            url,
            username: "matview".into(),
            password: read(dir.join("password")),
            ca_pem: read(env_dir().join("pki").join("ca.crt")) + "\n",
        }
    }
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

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        for process in [
            format!("registry-{}", self.name),
            format!("registry-{}-front", self.name),
        ] {
            let pid_file = env_dir().join("pids").join(process);
            if let Some(pid) = std::fs::read_to_string(pid_file)
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
            {
                // SAFETY: kill(2) on a process the test environment started for us.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        let _ = std::fs::remove_dir_all(env_dir().join("registries").join(&self.name));
    }
}
