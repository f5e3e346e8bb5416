//! Headless Chromium driven over the DevTools protocol, with no extra dependency.
//!
//! `--remote-debugging-pipe` makes Chromium read protocol messages from file descriptor 3 and
//! write them to 4, each JSON message ended by a NUL byte. A `sh` wrapper maps those to the
//! child's stdin and stdout, so the test talks to the browser through two ordinary pipes: no
//! WebSocket client, no port, no browser download. A reader thread turns the stream into
//! messages so every wait has a time limit.

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use super::{require, KillOnDrop};

/// Longest a single protocol call may take.
const CALL_LIMIT: Duration = Duration::from_secs(30);
/// Events the browser may send while we wait for one answer.
const EVENTS_PER_CALL_MAX: usize = 10_000;
/// How often `wait_for` looks again.
const POLL: Duration = Duration::from_millis(100);

pub struct Browser {
    // Field order: the pipe closes before the process is killed.
    to: ChildStdin,
    from: mpsc::Receiver<Value>,
    next_id: u64,
    session: String,
    _process: KillOnDrop,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Start Chromium headless (as root: hence `--no-sandbox`) with a fresh profile, and attach
    /// to a new page of `width`×`height` CSS pixels.
    pub fn launch(width: u32, height: u32) -> Browser {
        let chromium = require("chromium", "chromium");
        let profile = tempfile::tempdir().expect("profile dir");
        let log = std::fs::File::create(profile.path().join("chromium.log")).expect("log");
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2"#)
            .arg(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--window-size={width},{height}"))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut process = KillOnDrop::spawn("chromium", &mut command);
        let to = process.child.stdin.take().expect("stdin");
        let from_browser = process.child.stdout.take().expect("stdout");
        let (tx, from) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(from_browser);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(0, &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if buf.last() == Some(&0) {
                            buf.pop();
                        }
                        if let Ok(v) = serde_json::from_slice(&buf) {
                            if tx.send(v).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        let mut browser = Browser {
            to,
            from,
            next_id: 0,
            session: String::new(),
            _process: process,
            _profile: profile,
        };
        let target = browser.call_browser("Target.createTarget", json!({ "url": "about:blank" }));
        let target_id = target["targetId"].as_str().expect("target id").to_string();
        let attached = browser.call_browser(
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        );
        browser.session = attached["sessionId"].as_str().expect("session").to_string();
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        );
        browser
    }

    fn send(&mut self, session: Option<String>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            message["sessionId"] = Value::String(s);
        }
        let mut bytes = serde_json::to_vec(&message).expect("json");
        bytes.push(0);
        self.to.write_all(&bytes).expect("write to chromium");
        self.to.flush().expect("flush");
        // Bounded twice: each message must come within the limit, and only so many events may
        // arrive before the answer (no clock reads: clippy keeps those in the driver).
        for _ in 0..EVENTS_PER_CALL_MAX {
            let reply = self
                .from
                .recv_timeout(CALL_LIMIT)
                .unwrap_or_else(|_| panic!("chromium did not answer {method} in {CALL_LIMIT:?}"));
            // Events (no id) and answers to earlier calls are skipped.
            if reply["id"].as_u64() == Some(id) {
                if let Some(error) = reply.get("error") {
                    panic!("{method}: {error}");
                }
                return reply["result"].clone();
            }
        }
        panic!("chromium sent {EVENTS_PER_CALL_MAX} events without answering {method}");
    }

    fn call_browser(&mut self, method: &str, params: Value) -> Value {
        self.send(None, method, params)
    }

    /// A call on the page's session.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = Some(self.session.clone());
        self.send(session, method, params)
    }

    pub fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
    }

    /// Evaluate a JavaScript expression in the page; its value, awaited if it is a promise.
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("page threw on {expression:?}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Evaluate `expression` every 100 ms until it is truthy; panic after `limit`.
    pub fn wait_for(&mut self, limit: Duration, what: &str, expression: &str) -> Value {
        let polls = limit.as_millis() / POLL.as_millis();
        for _ in 0..polls {
            let v = self.eval(expression);
            let truthy =
                !matches!(v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return v;
            }
            std::thread::sleep(POLL);
        }
        let text = self.eval("document.body ? document.body.innerText : ''");
        panic!("timed out after {limit:?} waiting for {what}; page text:\n{text}");
    }

    /// A real mouse click (pressed and released) at the centre of the element `selector`.
    pub fn click(&mut self, selector: &str) {
        let selector_js = serde_json::to_string(selector).expect("json");
        let at = self.eval(&format!(
            "(() => {{ const e = document.querySelector({selector_js}); if (!e) return null; \
             e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
             return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        ));
        let (x, y) = match (at[0].as_f64(), at[1].as_f64()) {
            (Some(x), Some(y)) => (x, y),
            _ => panic!("nothing to click at {selector}"),
        };
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            );
        }
    }

    /// Type text into the focused element, as a keyboard would.
    pub fn type_text(&mut self, text: &str) {
        self.call("Input.insertText", json!({ "text": text }));
    }

    pub fn press_enter(&mut self) {
        for kind in ["keyDown", "keyUp"] {
            self.call(
                "Input.dispatchKeyEvent",
                json!({ "type": kind, "key": "Enter", "code": "Enter",
                        "windowsVirtualKeyCode": 13, "text": "\r" }),
            );
        }
    }

    pub fn screenshot_png(&mut self) -> Vec<u8> {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("png data"))
            .expect("base64 png")
    }
}
