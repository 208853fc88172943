//! Publishes QoS 1 messages through many connections and reports acknowledged messages
//! per second: a benchmark, not a test.
//!
//! ```text
//! cargo run --release -p fleet-client --example throughput -- URL [CLIENTS] [MESSAGES] [PAYLOAD]
//! cargo run --release -p fleet-client --example throughput -- mqtt://127.0.0.1:1883 50 20000 100
//! ```
//!
//! For `mqtts://`, set `TLS_CA`, and for mutual TLS also `TLS_CERT` and `TLS_KEY` (PEM
//! file paths). MESSAGES is per client. Every client publishes fire-and-forget (`publish_nowait`) and
//! counts its `Acked` events; the rate is all acks over the time from the first publish
//! to the last ack.

use std::time::Instant;

use fleet_client::{BrokerUrl, Client, ClientEvent, Options, QoS, TlsFiles};

fn tls_files() -> Option<TlsFiles> {
    let ca = std::env::var_os("TLS_CA")?;
    let files = TlsFiles::new(ca);
    Some(
        match (std::env::var_os("TLS_CERT"), std::env::var_os("TLS_KEY")) {
            (Some(cert), Some(key)) => files.with_identity(cert, key),
            _ => files,
        },
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = BrokerUrl::parse(args.first().map_or("mqtt://127.0.0.1:1883", String::as_str))?;
    let number = |i: usize, default: usize| -> Result<usize, std::num::ParseIntError> {
        args.get(i).map_or(Ok(default), |s| s.parse())
    };
    let clients = number(1, 20)?;
    let messages = number(2, 10_000)?;
    let payload = vec![b'x'; number(3, 100)?];

    let mut handles = Vec::new();
    let mut connections = Vec::new();
    for i in 0..clients {
        let options = Options::new(format!("throughput-{i}"));
        let mut client = Client::new(options, url.clone()).seed(i as u64);
        if let Some(tls) = tls_files() {
            client = client.tls(tls);
        }
        let (client, events) = client.start()?;
        client.connected().await?;
        connections.push((client, events));
    }
    let start = Instant::now();
    for (i, (client, mut events)) in connections.into_iter().enumerate() {
        let payload = payload.clone();
        let topic = format!("bench/{i}");
        let publisher = client.clone();
        tokio::spawn(async move {
            for _ in 0..messages {
                if publisher
                    .publish_nowait(topic.as_str(), payload.as_slice(), QoS::AtLeastOnce)
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        handles.push(tokio::spawn(async move {
            let mut acked = 0;
            while acked < messages {
                match events.recv().await {
                    Some(ClientEvent::Acked { .. }) => acked += 1,
                    Some(ClientEvent::PublishRejected { error, .. }) => {
                        return Err(format!("publish rejected: {error}"));
                    }
                    Some(_) => {}
                    None => return Err("client stopped".to_owned()),
                }
            }
            client.disconnect().await.map_err(|e| e.to_string())?;
            Ok(acked)
        }));
    }
    let mut total = 0;
    for handle in handles {
        total += handle.await??;
    }
    let elapsed = start.elapsed();
    println!(
        "{url}: {clients} clients x {messages} QoS 1 messages of {} bytes: {total} acked in \
         {elapsed:.2?} = {:.0} msg/s",
        payload.len(),
        total as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
