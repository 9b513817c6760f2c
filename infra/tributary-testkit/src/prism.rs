//! Prism (`@stoplight/prism-cli`, installed by `npm ci` in `infra/xero-mock`)
//! serving a source's own API spec as a mock server: Xero's Accounting API,
//! or Square's Connect API (made servable by [`servable_square_spec`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
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

/// Square's Connect API spec as published, kept with the connector.
pub fn square_spec() -> PathBuf {
    workspace_root().join("connectors/tributary-connector-square/spec/square_api.json")
}

/// A copy of Square's spec Prism can serve, written once per process: the
/// published file's references to an external `common.json` (which cannot
/// be downloaded here) become the plain types they name, and the schema
/// `CatalogModifierToggleOverrideType` it refers to but never defines
/// becomes a string. The published file is not changed.
pub fn servable_square_spec() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let text = std::fs::read_to_string(square_spec()).expect("Square's spec is readable");
        let mut spec: serde_json::Value =
            serde_json::from_str(&text).expect("Square's spec is JSON");
        resolve_square_commons(&mut spec);
        spec["components"]["schemas"]["CatalogModifierToggleOverrideType"] =
            serde_json::json!({ "type": "string" });
        // One file for every run (the same content each time), written
        // whole under a name of this process's, then renamed into place.
        let path = std::env::temp_dir().join("tributary-square-servable.json");
        let partial = path.with_extension(format!("{}.partial", std::process::id()));
        std::fs::write(&partial, spec.to_string()).expect("cannot write the servable Square spec");
        std::fs::rename(&partial, &path).expect("cannot put the servable Square spec in place");
        path
    })
    .clone()
}

/// Replaces every `{"$ref": ".../common.json#squareup.common.<Type>"}`.
fn resolve_square_commons(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(fields) => {
            let common = fields
                .get("$ref")
                .and_then(|r| r.as_str())
                .and_then(|r| r.split_once("common.json#squareup.common."))
                .map(|(_, kind)| kind.to_string());
            if let Some(kind) = common {
                let plain = match kind.as_str() {
                    "Number" => "number",
                    "Boolean" => "boolean",
                    // String, PhoneNumber
                    _ => "string",
                };
                fields.remove("$ref");
                fields.insert("type".into(), plain.into());
            }
            fields.values_mut().for_each(resolve_square_commons);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(resolve_square_commons),
        _ => {}
    }
}

/// A Prism mock server, killed on drop.
pub struct Prism {
    child: Child,
    /// The mock API's base URL, standing for the source's
    /// (`https://api.xero.com/api.xro/2.0`, `https://connect.squareup.com`).
    pub url: String,
}

impl Prism {
    /// Starts Prism on a free port with Xero's spec, answering the spec's
    /// examples, and waits until it answers.
    pub fn start() -> Prism {
        Prism::serve(&xero_spec(), false)
    }

    /// The same in dynamic mode (`-d`): random answers valid by the schema.
    pub fn start_dynamic() -> Prism {
        Prism::serve(&xero_spec(), true)
    }

    /// Starts Prism on a free port serving `spec`: its examples, or random
    /// schema-valid answers when `dynamic`.
    pub fn serve(spec: &Path, dynamic: bool) -> Prism {
        let port = crate::free_port();
        let mut command = Command::new(prism_binary());
        command.args(["mock", "--host", "127.0.0.1", "--port", &port.to_string()]);
        if dynamic {
            command.arg("-d");
        }
        command.arg(spec);
        Prism::launch(command, port)
    }

    /// Starts Prism as a validating proxy in front of `upstream`: every
    /// request and answer is checked against `spec`, and one that breaks
    /// it is answered with an error instead (`--errors`).
    pub fn proxy(spec: &Path, upstream: &str) -> Prism {
        let port = crate::free_port();
        let mut command = Command::new(prism_binary());
        command
            .args([
                "proxy",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--errors",
            ])
            .arg(spec)
            .arg(upstream);
        Prism::launch(command, port)
    }

    fn launch(mut command: Command, port: u16) -> Prism {
        // `TRIBUTARY_PRISM_LOG=1` shows what Prism says (its validation).
        let output = || {
            if std::env::var_os("TRIBUTARY_PRISM_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            }
        };
        let child = command
            .stdout(output())
            .stderr(output())
            .spawn()
            .expect("cannot start Prism");
        let prism = Prism {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Prism did not start within 180 s"
            );
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
