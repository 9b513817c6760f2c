//! Prism (`@stoplight/prism-cli`, installed by `npm ci` in `infra/xero-mock`)
//! serving Xero's own Accounting API spec as a mock server.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Xero's Accounting API spec: `TRIBUTARY_XERO_SPEC`, or the copy kept
/// with the connector (`connectors/tributary-connector-xero/spec/`).
pub fn xero_spec() -> PathBuf {
    let path = std::env::var_os("TRIBUTARY_XERO_SPEC")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            workspace_root().join("connectors/tributary-connector-xero/spec/xero_accounting.yaml")
        });
    assert!(
        path.exists(),
        "Xero's spec is not at {} (set TRIBUTARY_XERO_SPEC)",
        path.display()
    );
    path
}

/// The Prism binary: `TRIBUTARY_PRISM`, or the one `npm ci` put in `infra/xero-mock`.
pub fn prism_binary() -> PathBuf {
    let path = std::env::var_os("TRIBUTARY_PRISM")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("infra/xero-mock/node_modules/.bin/prism"));
    assert!(
        path.exists(),
        "Prism is not at {}: run infra/scripts/prereqs.sh (npm ci in infra/xero-mock) or set TRIBUTARY_PRISM",
        path.display()
    );
    path
}

/// A Prism mock server, killed on drop.
pub struct Prism {
    child: Child,
    /// The mock API's base URL, standing for `https://api.xero.com/api.xro/2.0`.
    pub url: String,
}

impl Prism {
    /// Starts Prism on a free port with Xero's spec, answering the spec's
    /// examples, and waits until it answers.
    pub fn start() -> Prism {
        Prism::launch(false)
    }

    /// The same in dynamic mode (`-d`): random answers valid by the schema.
    pub fn start_dynamic() -> Prism {
        Prism::launch(true)
    }

    fn launch(dynamic: bool) -> Prism {
        let port = crate::free_port();
        let mut command = Command::new(prism_binary());
        command.args(["mock", "--host", "127.0.0.1", "--port", &port.to_string()]);
        if dynamic {
            command.arg("-d");
        }
        let child = command
            .arg(xero_spec())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start Prism");
        let prism = Prism {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "Prism did not start within 90 s");
            std::thread::sleep(Duration::from_millis(200));
        }
        prism
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
