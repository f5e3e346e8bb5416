//! Issue 18's done-when through an unmodified Consul client: Debian's `python3-consul`
//! (python-consul 0.7.1, installed by `scripts/test.sh`) drives two real `hera` processes:
//! two checks of their own ids on one instance, one passed and one failed, each seen on the
//! other node with the aggregate; then passing; then one check deregistered. The steps are in
//! `tests/clients/python_consul_checks.py`.

mod support;

use std::process::Command;

use support::process::{wait_all_alive, HeraProcess};

/// The system Python, where Debian installs its modules (not a pyenv or venv one).
const PYTHON: &str = "/usr/bin/python3";

#[test]
#[ignore = "needs Debian's python3-consul (scripts/test.sh installs it)"]
fn python_consul_registers_checks_by_id_and_sees_the_aggregate_on_another_node() {
    let has_client = Command::new(PYTHON)
        .args(["-c", "import consul"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_client,
        "`import consul` fails in {PYTHON}: install the Debian package `python3-consul`"
    );
    let root = tempfile::tempdir().unwrap();
    let mut a = HeraProcess::new(root.path(), "pc-a", &["--dns", ""]);
    let mut b = HeraProcess::new(root.path(), "pc-b", &["--dns", ""]);
    a.start(&[]);
    b.start(&[a.gossip]);
    let nodes = [a, b];
    wait_all_alive(&nodes);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/python_consul_checks.py"
    );
    let out = Command::new(PYTHON)
        .arg(script)
        .arg(nodes[0].http.to_string())
        .arg(nodes[1].http.to_string())
        // The client talks to loopback: never through a proxy from the environment.
        .env("NO_PROXY", "*")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .output()
        .expect("python3 runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{said}\nnode a:\n{}",
        nodes[0].log_text()
    );
    assert!(said.contains("every step held"), "{said}");
}
