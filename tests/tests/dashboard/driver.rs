//! Real headless Chromium driven over WebDriver: Debian's `chromium` and `chromedriver`, one
//! browser per test, started and stopped here. Browser tests run one at a time ([`Browser::open`]
//! takes a lock): two browsers and two hosts at once would starve two cores.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::sync::{Mutex, MutexGuard};

/// How long a page gets to show what a test waits for.
const PATIENCE: Duration = Duration::from_secs(20);

static ONE_BROWSER_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// A chromedriver process and a browser session on it, both ended on drop.
pub struct Browser {
    pub client: Client,
    /// `http://host:port` of the dashboard's host.
    base: String,
    driver: Child,
    _profile: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium window of `width`×`height`.
    pub async fn open(base: &str, (width, height): (u32, u32)) -> Self {
        let turn = ONE_BROWSER_AT_A_TIME.lock().await;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // Its own process group, so that the browsers it starts end with it, even after a panic.
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (Debian: chromium-driver; .ci/run installs it)");
        let profile = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--headless=new".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if nix::unistd::geteuid().is_root() {
            // Chromium refuses to run as root inside its sandbox.
            args.push("--no-sandbox".to_owned());
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({ "args": args, "binary": "/usr/bin/chromium" }),
        );
        let webdriver = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + PATIENCE;
        let client = loop {
            let attempt = ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&webdriver)
                .await;
            match attempt {
                Ok(client) => break client,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("no WebDriver session: {e}"),
            }
        };
        client.set_window_size(width, height).await.unwrap();
        Self {
            client,
            base: base.to_owned(),
            driver,
            _profile: profile,
            _turn: turn,
        }
    }

    /// Goes to the dashboard's `path` (e.g. `/` or `/#/plugins`).
    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    /// The element `css` once it is there.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
    }

    /// Clicks `css` once it is there. A page that re-renders (a live update) replaces its
    /// elements: a click that meets a replaced one finds the new one and tries again.
    pub async fn click(&self, css: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let clicked = self.find(css).await.click().await;
            match clicked {
                Ok(()) => return,
                Err(e) if Instant::now() < deadline && e.to_string().contains("stale") => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("cannot click {css}: {e}"),
            }
        }
    }

    /// The button whose text is `text`, once it is there.
    pub async fn button(&self, text: &str) -> Element {
        let xpath = format!("//button[normalize-space(.)='{text}']");
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no button {text:?}: {e}"))
    }

    /// The text of `css`, once it satisfies `wanted` (within the patience); fails with the last
    /// text seen.
    pub async fn text_until(&self, css: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
            {
                if wanted(&text) {
                    return text;
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} never showed what was wanted; last text {last:?}");
    }

    /// The value of `script` (a JavaScript expression) once `wanted` accepts it.
    pub async fn value_until(
        &self,
        script: &str,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + PATIENCE;
        let mut last = serde_json::Value::Null;
        while Instant::now() < deadline {
            if let Ok(value) = self
                .client
                .execute(&format!("return {script};"), vec![])
                .await
            {
                if wanted(&value) {
                    return value;
                }
                last = value;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{script} never gave what was wanted; last {last}");
    }

    /// Saves a screenshot as `target/dashboard-screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Ends the session, then the driver and its browser.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.driver.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.driver.wait();
    }
}
