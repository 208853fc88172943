//! In headless Chromium (wasm-bindgen-test; run by `scripts/wasm-test.sh`): the app's
//! components, found by `data-testid`, and the WebSocket glue against the real local
//! stack, whose WebSocket URL the script passes at build time as `FLEET_TEST_WS`.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)]

use fleet_core::DeviceParams;
use fleet_web::engine::{Engine, EngineConfig};
use fleet_web::transport::mqtt::{Connector, LinkKey, MqttConfig, MqttTransport, SocketEvent};
use fleet_web::transport::websocket::WsConnector;
use fleet_web::transport::{LinkState, Transport};
use wasm_bindgen::JsCast;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// The stack's WebSocket listener, from the script that started it.
fn broker() -> &'static str {
    match option_env!("FLEET_TEST_WS") {
        Some(url) => url,
        None => panic!("FLEET_TEST_WS is not set: run these tests with scripts/wasm-test.sh"),
    }
}

async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .unwrap();
    });
    wasm_bindgen_futures::JsFuture::from(promise).await.unwrap();
}

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

fn query_all(selector: &str) -> Vec<web_sys::Element> {
    let list = web_sys::window()
        .unwrap()
        .document()
        .unwrap()
        .query_selector_all(selector)
        .unwrap();
    (0..list.length())
        .filter_map(|i| list.item(i))
        .filter_map(|n| n.dyn_into::<web_sys::Element>().ok())
        .collect()
}

fn text(testid: &str) -> String {
    query_all(&format!("[data-testid={testid}]"))
        .first()
        .and_then(|e| e.text_content())
        .unwrap_or_default()
}

fn click(testid: &str) {
    let el = query_all(&format!("[data-testid={testid}]")).remove(0);
    el.dyn_into::<web_sys::HtmlElement>().unwrap().click();
}

/// Polls `done` every 50 ms for up to `limit_ms`.
async fn eventually(limit_ms: u64, mut done: impl FnMut() -> bool) -> bool {
    let until = now_ms() + limit_ms;
    while now_ms() < until {
        if done() {
            return true;
        }
        sleep(50).await;
    }
    done()
}

#[wasm_bindgen_test]
async fn the_app_runs_an_in_page_fleet_and_stops_at_once() {
    // Settings as a visitor would have stored them: in-page, 30 devices, no history.
    let storage = web_sys::window().unwrap().local_storage().unwrap().unwrap();
    storage
        .set_item(
            "fleet.settings",
            "mode=in-page&devices=30&warmup=120&speed=20",
        )
        .unwrap();
    leptos::mount::mount_to_body(fleet_web::app::App);

    assert!(
        eventually(10_000, || text("status") == "running").await,
        "status: {}",
        text("status")
    );
    assert_eq!(text("target"), "in-page");
    assert!(eventually(5_000, || text("overview-summary").starts_with("30 devices")).await);
    // Virtualized: some cards, not 30 (the test page is small), each with its link state.
    assert!(
        eventually(5_000, || !query_all("[data-testid=device-card]").is_empty()).await,
        "{}",
        query_all("[data-testid=device-cards]")
            .first()
            .map(|e| e.outer_html())
            .unwrap_or_default()
    );
    let cards = query_all("[data-testid=device-card]").len();
    assert!(cards <= 30, "{cards} cards");
    assert!(eventually(5_000, || text("device-link") == "up").await);
    // Remediation happened in the warm-up: commands are counted and logged.
    assert!(
        eventually(10_000, || text("stats-commands")
            .parse::<u64>()
            .unwrap_or(0)
            > 0)
        .await
    );
    assert!(!query_all("[data-testid=log] li").is_empty());
    assert_eq!(text("stats-rtt"), "0 / 0 ms");

    // A fleet-wide parameter applies to the running fleet.
    let velocity: web_sys::HtmlInputElement = query_all("[data-testid=param-velocity]")
        .remove(0)
        .dyn_into()
        .unwrap();
    velocity.set_value("2.5");
    velocity
        .dispatch_event(&web_sys::Event::new("change").unwrap())
        .unwrap();
    sleep(50).await;
    assert_eq!(velocity.value(), "2.5");
    // The card's own parameters editor starts from what the device runs with.
    click("edit-params");
    assert!(
        eventually(1_000, || !query_all("[data-testid=device-params]")
            .is_empty())
        .await
    );
    let device_velocity: web_sys::HtmlInputElement =
        query_all("[data-testid=device-param-velocity]")
            .remove(0)
            .dyn_into()
            .unwrap();
    assert_eq!(device_velocity.value(), "2.5");
    // A per-device value applies to that device only, and marks its card.
    device_velocity.set_value("0.5");
    device_velocity
        .dispatch_event(&web_sys::Event::new("change").unwrap())
        .unwrap();
    click("apply-params");
    assert!(eventually(2_000, || text("edit-params") == "Parameters*").await);

    // Stop takes effect at once: nothing is published after it.
    click("stop");
    assert!(eventually(1_000, || text("status") == "stopped").await);
    let published = text("stats-published");
    sleep(600).await;
    assert_eq!(text("stats-published"), published);
    assert_eq!(text("stats-links"), "0/30");

    // A bad setting in the URL form is reported in plain words and the old value kept.
    let input = query_all("[data-testid=device-count]").remove(0);
    let input: web_sys::HtmlInputElement = input.dyn_into().unwrap();
    input.set_value("lots");
    input
        .dispatch_event(&web_sys::Event::new("change").unwrap())
        .unwrap();
    sleep(50).await;
    assert_eq!(input.value(), "30");
    // Settings persist: Start saved them.
    assert!(
        storage
            .get_item("fleet.settings")
            .unwrap()
            .unwrap()
            .contains("devices=30")
    );
}

#[wasm_bindgen_test]
async fn a_websocket_to_the_local_stack_carries_readings_and_commands() {
    let params = DeviceParams {
        velocity: 3.0,
        update_frequency_s: 0.1,
        ..DeviceParams::default()
    };
    let config = EngineConfig {
        devices: 3,
        params,
        ramp_per_s: 0,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(config, now_ms(), |ids| {
        let t = MqttTransport::new(
            MqttConfig::new(broker(), "wasm-test-"),
            WsConnector::new(),
            ids,
            now_ms(),
        )
        .map_err(|e| e.to_string())?;
        Ok(Box::new(t) as Box<dyn Transport>)
    })
    .unwrap();
    let until = now_ms() + 15_000;
    while now_ms() < until
        && (engine.stats().commands == 0 || engine.stats().transport.links_up < 3)
    {
        engine.tick(now_ms());
        sleep(10).await;
    }
    let stats = engine.stats();
    assert!(
        stats.commands > 0,
        "no command came back: {stats:?} {:?}",
        engine.problem()
    );
    assert!(stats.transport.acked > 0);
    assert_eq!(stats.transport.links_up, 3);
    assert_eq!(engine.link(0), LinkState::Up);
    assert!(engine.rtt_percentiles().is_some());
    engine.close(now_ms());
    assert_eq!(engine.link(0), LinkState::Idle);
}

#[wasm_bindgen_test]
async fn an_unreachable_broker_and_a_bad_url_are_said_in_plain_words() {
    let mut ws = WsConnector::new();
    let key = LinkKey {
        index: 0,
        generation: 1,
    };
    let err = ws.open("ftp://127.0.0.1/mqtt", key).err().unwrap();
    assert!(err.starts_with("bad broker URL"), "{err}");

    // Port 1: nothing listens there (and Chromium refuses it outright).
    let closed = "ws://127.0.0.1:1/mqtt";
    let _socket = ws.open(closed, key).unwrap();
    let mut events = Vec::new();
    assert!(
        eventually(5_000, || {
            ws.events(&mut events);
            !events.is_empty()
        })
        .await
    );
    match &events[0] {
        (k, SocketEvent::Closed(Some(why))) => {
            assert_eq!(*k, key);
            assert!(why.contains("unreachable"), "{why}");
        }
        other => panic!("expected a close, got {other:?}"),
    }
}
