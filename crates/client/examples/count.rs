//! Counts the messages a broker delivers, per topic: the native subscriber that gives the
//! browser benchmark (`bench/mqttjs-vs-fleet.sh`) what the broker received, rather than
//! what a client believes it sent.
//!
//! ```text
//! cargo run --release -p fleet-client --example count -- URL FILTER
//! ```
//!
//! Subscribes to FILTER at QoS 1 (so a QoS 1 publish reaches it as QoS 1, a QoS 0 one as
//! QoS 0) and prints `ready` once the broker granted it. Then, for each line `TOPIC
//! EXPECTED` on standard input, it prints one JSON line once EXPECTED messages arrived on
//! TOPIC, or once none arrived for 3 s: `{"topic":…,"count":…,"first_ms":…,"last_ms":…}`,
//! the arrival times of the first and the last, ms since the Unix epoch (a benchmark's
//! driver on the same machine compares them with the page's clock). A message counts once
//! it is read off the socket; nothing is kept but the counters.

use std::collections::HashMap;
use std::io::BufRead;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fleet_client::{BrokerUrl, Client, ClientEvent, Options, QoS};
use tokio::sync::mpsc;

#[derive(Default, Clone, Copy)]
struct Tally {
    count: u64,
    first_ms: f64,
    last_ms: f64,
}

fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(url), Some(filter)) = (args.first(), args.get(1)) else {
        return Err("usage: count URL FILTER (then `TOPIC EXPECTED` lines on stdin)".into());
    };
    let url = BrokerUrl::parse(url)?;
    let options = Options::new(format!("count-{}", std::process::id()));
    let (client, mut events) = Client::new(options, url).start()?;
    client.connected().await?;
    client
        .subscribe(&[(filter.as_str(), QoS::AtLeastOnce)])
        .await?;

    // Questions from stdin, read on a thread of their own (tokio's stdin is not enabled here).
    let (ask, mut questions) = mpsc::unbounded_channel::<(String, u64)>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            let mut words = line.split_whitespace();
            if let (Some(topic), Some(Ok(expected))) =
                (words.next(), words.next().map(str::parse::<u64>))
                && ask.send((topic.to_owned(), expected)).is_err()
            {
                break;
            }
        }
    });

    let mut tallies: HashMap<String, Tally> = HashMap::new();
    let mut waiting: Option<(String, u64)> = None;
    let mut quiet_since = tokio::time::Instant::now();
    let mut ready = false;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(ClientEvent::Message(m)) => {
                    let now = epoch_ms();
                    let tally = tallies.entry(m.topic).or_default();
                    if tally.count == 0 {
                        tally.first_ms = now;
                    }
                    tally.count += 1;
                    tally.last_ms = now;
                    quiet_since = tokio::time::Instant::now();
                }
                Some(ClientEvent::Subscribed { results }) if !ready => {
                    if results.iter().any(|(_, r)| *r == fleet_client::SubscribeReturn::Failure) {
                        return Err(format!("the broker refused the subscription to {filter}").into());
                    }
                    ready = true;
                    println!("ready");
                }
                Some(ClientEvent::Disconnected { reason, .. }) => {
                    return Err(format!("disconnected: {reason}").into());
                }
                Some(_) => {}
                None => return Err("the client stopped".into()),
            },
            question = questions.recv(), if waiting.is_none() => match question {
                Some(q) => {
                    waiting = Some(q);
                    quiet_since = tokio::time::Instant::now();
                }
                None => return Ok(()),
            },
            _ = tick.tick() => {}
        }
        if let Some((topic, expected)) = &waiting {
            let tally = tallies.get(topic).copied().unwrap_or_default();
            if tally.count >= *expected || quiet_since.elapsed() >= Duration::from_secs(3) {
                // `{:?}` quotes and escapes the topic as JSON does, for the topics used here.
                println!(
                    "{{\"topic\":{topic:?},\"count\":{},\"first_ms\":{:.3},\"last_ms\":{:.3}}}",
                    tally.count, tally.first_ms, tally.last_ms
                );
                tallies.remove(topic);
                waiting = None;
            }
        }
    }
}
