//! The stub host: a few lines of HTTP/1.1 over a TCP listener that answer exactly the calls
//! `pacsync agent --once` makes (state report, operation list, start, progress, complete, fail),
//! offering one pending sync with a given plan and recording every request.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The endpoint, pool and operation the stub host knows.
pub const ENDPOINT: &str = "11111111-1111-1111-1111-111111111111";
pub const POOL: &str = "22222222-2222-2222-2222-222222222222";
pub const OPERATION: &str = "33333333-3333-3333-3333-333333333333";

/// One request the stub host received.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub body: Value,
}

/// A host that answers exactly the calls `pacsync agent --once` makes, offering one pending
/// sync with `plan`, and records every request.
pub struct StubHost {
    pub base: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl StubHost {
    /// Listens on a loopback port, offering one pending sync with `plan`.
    pub async fn start(plan: Value) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorder = Arc::clone(&calls);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (plan, recorder) = (plan.clone(), Arc::clone(&recorder));
                tokio::spawn(async move {
                    let _ = serve(socket, &plan, &recorder).await;
                });
            }
        });
        Self { base, calls }
    }

    /// Every request so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The bodies of every `POST /api/sync/operations/{id}/{action}`.
    pub fn transitions(&self, action: &str) -> Vec<Value> {
        let suffix = format!("/api/sync/operations/{OPERATION}/{action}");
        self.calls()
            .into_iter()
            .filter(|c| c.method == "POST" && c.path == suffix)
            .map(|c| c.body)
            .collect()
    }
}

/// Reads one HTTP/1.1 request, records it, answers it and closes the connection.
async fn serve(
    mut socket: TcpStream,
    plan: &Value,
    calls: &Mutex<Vec<Call>>,
) -> std::io::Result<()> {
    let mut buffer: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).into_owned();
    let mut request_line = head.lines().next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let path = request_line.next().unwrap_or_default().to_owned();
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buffer.len() < header_end + length {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buffer[header_end..]).unwrap_or(Value::Null);
    let (status, reply) = answer(&method, &path, plan);
    calls.lock().unwrap().push(Call { method, path, body });
    let text = reply.to_string();
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
    socket.write_all(response.as_bytes()).await?;
    socket.shutdown().await
}

fn answer(method: &str, path: &str, plan: &Value) -> (&'static str, Value) {
    let path = path.split('?').next().unwrap_or_default();
    let transition = path
        .strip_prefix(&format!("/api/sync/operations/{OPERATION}/"))
        .unwrap_or_default();
    match (method, transition) {
        ("PUT", _) if path == format!("/api/endpoints/{ENDPOINT}/state") => (
            "200 OK",
            json!({ "state_id": "0".repeat(64), "sync_status": "unknown" }),
        ),
        ("GET", _) if path == format!("/api/sync/{ENDPOINT}/operations") => (
            "200 OK",
            json!({ "items": [operation("pending", plan)], "next_cursor": null }),
        ),
        ("POST", "start" | "progress") => ("200 OK", operation("in_progress", plan)),
        ("POST", "complete") => ("200 OK", operation("completed", plan)),
        ("POST", "fail") => ("200 OK", operation("failed", plan)),
        _ => (
            "404 Not Found",
            json!({ "code": "NOT_FOUND", "detail": path }),
        ),
    }
}

/// The operation as the host's API spells it.
fn operation(status: &str, plan: &Value) -> Value {
    json!({
        "operation_id": OPERATION,
        "endpoint_id": ENDPOINT,
        "pool_id": POOL,
        "operation_type": "sync",
        "status": status,
        "details": {},
        "created_at": "2026-01-01T00:00:00Z",
        "started_at": "2026-01-01T00:00:00Z",
        "completed_at": null,
        "error_code": null,
        "error_message": null,
        "progress": { "percentage": 0, "stage": null, "current_action": null },
        "plan": plan,
        "policy": null,
        "cancel_requested": false,
        "lease_expires_at": "2026-01-01T00:02:00Z",
        "target_state_id": null,
        "target_generation": null,
        "result_state_id": null,
    })
}
