//! The page's MQTT transport (one session per device, plus the alarm watcher) against the
//! real local stack, natively over TCP: the same code the page drives over WebSocket.
//! Readings land in the stack's database, commands come back to the right devices, and
//! a stack restart is an outage the devices ride out without losing an acknowledged reading.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use fleet_clock::now_ms;
use fleet_core::DeviceParams;
use fleet_local::SqliteStore;
use fleet_web::engine::{Engine, EngineConfig};
use fleet_web::transport::mqtt::MqttTransport;
use fleet_web::transport::{LinkState, Transport};
use support::{TcpConnector, free_addr, page_of, start_stack};

/// Ticks `engine` every 5 ms until `done` holds or `limit` passes.
fn run_until(engine: &mut Engine, limit: Duration, mut done: impl FnMut(&Engine) -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        engine.tick(now_ms());
        if done(engine) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn devices_publish_get_commands_and_ride_out_a_stack_restart() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Find a free port, then give it to the stack: it must come back on the same one.
    let port = free_addr();
    let stack = start_stack(&rt, dir.path(), port);

    // Fast, wide swings, so the band is left within a few seconds.
    let params = DeviceParams {
        velocity: 3.0,
        update_frequency_s: 0.1,
        ..DeviceParams::default()
    };
    // A page's devices, with the credential the stack issued it: the same after a restart.
    let page = page_of(&stack, "wtest");
    let config = page.engine_config(EngineConfig {
        devices: 6,
        params,
        ramp_per_s: 20,
        ..EngineConfig::default()
    });
    let mqtt = page.mqtt_config(format!("tcp://{port}"));
    let mut engine = Engine::new(config, now_ms(), |ids| {
        let t = MqttTransport::new(mqtt, TcpConnector::default(), ids, now_ms())
            .map_err(|e| e.to_string())?;
        Ok(Box::new(t) as Box<dyn Transport>)
    })
    .unwrap();

    // Every device connects (paced by the ramp) and some get remediated.
    let all_up = |e: &Engine| (0..6).all(|i| e.link(i) == LinkState::Up);
    assert!(run_until(&mut engine, Duration::from_secs(10), all_up));
    assert!(
        run_until(&mut engine, Duration::from_secs(30), |e| e.stats().commands
            >= 3),
        "no commands came back: {:?}",
        engine.stats()
    );
    let stats = engine.stats();
    assert!(stats.transport.acked > 0);
    assert!(engine.rtt_percentiles().is_some());
    assert_eq!(stats.unreadable, 0);
    // Commands reached the devices they were for: each device's count is its own.
    let with_commands = engine.devices().iter().filter(|d| d.commands > 0).count();
    assert!(with_commands >= 1);

    // The stack goes away: every device notices and retries, and the page says why.
    rt.block_on(stack.shutdown());
    assert!(
        run_until(&mut engine, Duration::from_secs(10), |e| {
            (0..6).all(|i| e.link(i) != LinkState::Up) && e.problem().is_some()
        }),
        "outage not noticed"
    );
    let problem = engine.problem().unwrap();
    assert!(
        problem.contains(&port.to_string())
            || problem.contains("unreachable")
            || problem.contains("closed"),
        "{problem}"
    );
    // Readings go on queueing meanwhile.
    run_until(&mut engine, Duration::from_millis(1500), |_| false);
    assert!(engine.stats().transport.unacked > 0);

    // Back on the same port: the devices reconnect by themselves, and the queue drains.
    let stack = start_stack(&rt, dir.path(), port);
    assert!(
        run_until(&mut engine, Duration::from_secs(30), |e| {
            all_up(e) && e.stats().transport.unacked == 0 && e.problem().is_none()
        }),
        "did not recover: {:?} {:?}",
        engine.stats(),
        engine.problem()
    );
    assert!(engine.stats().transport.reconnects >= 6);

    // Stop: links close at once, and every acknowledged reading is in the database.
    engine.close(now_ms());
    let acked = engine.stats().transport.acked;
    rt.block_on(stack.shutdown());
    let db = SqliteStore::open(&dir.path().join(fleet_local::LocalStore::DB_FILE)).unwrap();
    let stored = db.reading_count().unwrap();
    assert!(stored >= acked, "stored {stored} < acked {acked}");
    assert!(
        stored <= engine.stats().published,
        "stored {stored} > published"
    );
    assert_eq!(
        (0..6)
            .filter(|&i| engine.link(i) != LinkState::Idle)
            .count(),
        0
    );
}

#[test]
fn each_connection_takes_a_fresh_url_and_old_connections_are_renewed() {
    use std::cell::RefCell;
    use std::rc::Rc;

    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_addr();
    let stack = start_stack(&rt, dir.path(), port);

    // The source fails once (as an expired credential would), then signs a fresh URL.
    let calls: Rc<RefCell<Vec<u64>>> = Rc::default();
    let seen = Rc::clone(&calls);
    let mut first = true;
    let source = Box::new(move |now: u64| {
        seen.borrow_mut().push(now);
        if std::mem::take(&mut first) {
            return Err("credentials are being refreshed".to_owned());
        }
        Ok(format!("tcp://{port}"))
    });
    let page = page_of(&stack, "wrenew");
    let config = page.engine_config(EngineConfig {
        devices: 2,
        ..EngineConfig::default()
    });
    let mut engine = Engine::new(config, now_ms(), |ids| {
        let mut mqtt = page.mqtt_config("wss://endpoint.example/mqtt");
        mqtt.max_connection_ms = Some(1500);
        mqtt.backoff.initial_ms = 100;
        let t = MqttTransport::new(mqtt, support::TcpConnector::default(), ids, now_ms())
            .map_err(|e| e.to_string())?
            .with_url_source(source);
        Ok(Box::new(t) as Box<dyn Transport>)
    })
    .unwrap();
    let up = |e: &Engine| (0..2).all(|i| e.link(i) == LinkState::Up);
    // The first attempt's failure is shown in plain words, with no URL in it.
    assert!(run_until(&mut engine, Duration::from_secs(5), |e| e
        .problem()
        .is_some_and(|p| p.contains("refreshed"))));
    assert!(run_until(&mut engine, Duration::from_secs(10), up));
    let before = calls.borrow().len();
    // Connections older than 1.5 s are renewed, each with a newly made URL.
    assert!(run_until(&mut engine, Duration::from_secs(10), |e| {
        e.stats().transport.reconnects >= 3
    }));
    assert!(run_until(&mut engine, Duration::from_secs(5), up));
    assert!(calls.borrow().len() >= before + 3, "{:?}", calls.borrow());
    assert!(calls.borrow().windows(2).all(|w| w[0] <= w[1]));
    // Nothing was lost across the renewals.
    assert!(run_until(&mut engine, Duration::from_secs(5), |e| {
        e.stats().transport.unacked == 0 && e.stats().transport.acked > 0
    }));
    assert_eq!(engine.stats().transport.dropped, 0);
    engine.close(now_ms());
    rt.block_on(stack.shutdown());
}
