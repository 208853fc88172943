//! Gateway mode against the real local stack (natively over TCP; the page runs the same
//! transport over WebSocket): 5,000 devices on 10 connections for 60 s at one reading per
//! second each. Every acknowledged reading is in the database, and every command the stack
//! decided reached the device it was for, and only that one.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fleet_clock::now_ms;
use fleet_core::DeviceParams;
use fleet_local::{LocalStore, SqliteStore};
use fleet_web::engine::{Engine, EngineConfig};
use fleet_web::transport::mqtt::{Connections, MqttTransport};
use fleet_web::transport::{LinkState, Transport};
use support::{TcpConnector, free_addr, page_of, start_stack};

const DEVICES: usize = 5_000;
const GATEWAYS: usize = 10;
const SECONDS: u64 = 60;

#[test]
fn five_thousand_devices_over_ten_gateways_for_a_minute() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_addr();
    let stack = start_stack(&rt, dir.path(), port);

    // A page's devices, with the credential the stack issued it: its gateways may publish
    // for all of them, and their command wildcards receive only theirs.
    let page = page_of(&stack, "wgateways");
    let config = page.engine_config(EngineConfig {
        devices: DEVICES,
        buildings: 50,
        // One reading a second; wide swings, so many devices leave the band within a minute.
        params: DeviceParams {
            velocity: 3.0,
            update_frequency_s: 1.0,
            ..DeviceParams::default()
        },
        ramp_per_s: 0,
        series_capacity: 8,
        ..EngineConfig::default()
    });
    let mut connections = 0;
    let mut engine = Engine::new(config, now_ms(), |ids| {
        let mut mqtt = page.mqtt_config(format!("tcp://{port}"));
        mqtt.connections = Connections::Gateways(GATEWAYS);
        let t = MqttTransport::new(mqtt, TcpConnector::default(), ids, now_ms())
            .map_err(|e| e.to_string())?;
        connections = t.connections();
        Ok(Box::new(t) as Box<dyn Transport>)
    })
    .unwrap();
    assert_eq!(connections, GATEWAYS);

    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(SECONDS) {
        engine.tick(now_ms());
        std::thread::sleep(Duration::from_millis(10));
    }
    // Stop stepping devices; let the last acknowledgements and commands arrive.
    let drained = Instant::now();
    while drained.elapsed() < Duration::from_secs(15) {
        engine.poll(now_ms());
        if engine.stats().transport.unacked == 0 && drained.elapsed() > Duration::from_secs(2) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = engine.stats();
    assert!((0..DEVICES).all(|i| engine.link(i) == LinkState::Up));
    assert_eq!(stats.transport.links_up, DEVICES as u64);
    assert_eq!(stats.transport.unacked, 0, "{stats:?}");
    assert_eq!(stats.transport.dropped, 0, "{stats:?}");
    // About one reading per device per second (the first ones are spread over a second).
    let expected = DEVICES as u64 * SECONDS;
    assert!(
        stats.published >= expected * 9 / 10,
        "published {} of ~{expected}",
        stats.published
    );
    assert_eq!(stats.transport.acked, stats.published);
    assert!(stats.commands > 100, "only {} commands", stats.commands);
    assert_eq!(stats.unreadable, 0);
    engine.close(now_ms());
    rt.block_on(stack.shutdown());

    // The database holds exactly what was acknowledged.
    let db = SqliteStore::open(&dir.path().join(LocalStore::DB_FILE)).unwrap();
    assert_eq!(db.reading_count().unwrap(), stats.transport.acked);
    // Each device got exactly the commands decided for it.
    let mut decided: HashMap<String, u64> = HashMap::new();
    for record in db.recent_decisions(usize::MAX).unwrap() {
        if record.decision.command.is_some() {
            *decided
                .entry(record.decision.device.to_string())
                .or_default() += 1;
        }
    }
    assert_eq!(decided.values().sum::<u64>(), stats.commands);
    for (i, d) in engine.devices().iter().enumerate() {
        let id = engine.id(i).to_owned();
        assert_eq!(
            d.commands,
            decided.get(&id).copied().unwrap_or(0),
            "commands of {id}"
        );
    }
    println!(
        "gateway: {} readings published and stored, {} commands, from {DEVICES} devices on {GATEWAYS} connections in {SECONDS} s",
        stats.published, stats.commands
    );
}
