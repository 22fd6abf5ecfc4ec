//! WebSocket fan-out: events delivered to N pool subscribers while endpoints drive operations.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use pacsync_tests::{Api, Fleet, HostProcess};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::memory::memory_kib;
use super::{DRIVERS, drive};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn rss_kib(pid: u32) -> u64 {
    memory_kib(pid, "VmRSS")
}

/// Events delivered to N pool subscribers while endpoints drive operations.
pub async fn step(api: &Api, host: &HostProcess, admin: &str, fleet: &Fleet) {
    // --- WebSocket fan-out.
    println!(
        "WebSocket fan-out: N pool subscribers, {DRIVERS} endpoints driving operations (6 events each)"
    );
    println!();
    println!(
        "| subscribers | events delivered/s | latency p50 (ms) | latency p99 (ms) | host RSS idle (MiB) |"
    );
    println!(
        "|-------------|--------------------|------------------|------------------|---------------------|"
    );
    let path = format!("/api/sync/pools/{}/events", fleet.pool);
    for n in [100usize, 1000, 5000] {
        let delivered = Arc::new(AtomicU64::new(0));
        let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
        let mut readers = Vec::new();
        for i in 0..n {
            let url = format!("{}{}", host.base.replacen("http://", "ws://", 1), path);
            let mut request = url.into_client_request().unwrap();
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {admin}").parse().unwrap());
            let (mut socket, _) = tokio_tungstenite::connect_async(request)
                .await
                .expect("subscribe");
            let (delivered, latencies) = (delivered.clone(), latencies.clone());
            // Sample latency on a tenth of the subscribers to keep the tool itself cheap.
            let sample = i % 10 == 0;
            readers.push(tokio::spawn(async move {
                while let Some(Ok(message)) = socket.next().await {
                    if let Message::Text(text) = message {
                        delivered.fetch_add(1, Ordering::Relaxed);
                        if sample
                            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                            && let Some(at) = v["timestamp"]
                                .as_str()
                                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                            && v["type"] != "connected"
                        {
                            let ms = (chrono::Utc::now() - at.with_timezone(&chrono::Utc))
                                .num_microseconds()
                                .unwrap_or(0) as f64
                                / 1000.0;
                            latencies.lock().await.push(ms);
                        }
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle_rss = rss_kib(host.pid()) as f64 / 1024.0;
        let before = delivered.load(Ordering::Relaxed);
        let elapsed = drive(api, fleet, 80).await;
        // Let the last events drain.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let events = delivered.load(Ordering::Relaxed) - before;
        let rate = events as f64 / (elapsed.as_secs_f64() + 0.5);
        let mut samples = latencies.lock().await.clone();
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "| {n:>11} | {rate:>18.0} | {:>16.1} | {:>16.1} | {idle_rss:>19.1} |",
            percentile(&samples, 0.5),
            percentile(&samples, 0.99)
        );
        for r in readers {
            r.abort();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!();
    println!(
        "latency: event timestamp (the transaction's start, by the database clock) to receipt by the client"
    );
}
