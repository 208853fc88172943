//! In headless Chromium (wasm-bindgen-test; run by `scripts/wasm-test.sh`): the app's
//! components, found by `data-testid`, and the WebSocket glue against the real local
//! stack. The script passes at build time its WebSocket URL (`FLEET_TEST_WS`) and a page
//! credential from `fleet local token --page` (`FLEET_TEST_NS`, `FLEET_TEST_PASSWORD`),
//! and starts the stack with `--allow-origin` for the test page's origin, which it fixes
//! (`WASM_BINDGEN_TEST_ADDRESS`): the stack refuses pages of other origins.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)]

use fleet_clock::now_ms;
use fleet_core::DeviceParams;
use fleet_web::engine::LogEntry;
use fleet_web::engine::{Engine, EngineConfig};
use fleet_web::identity::{Login, PageIdentity};
use fleet_web::transport::mqtt::{Connections, Connector, LinkKey, MqttTransport, SocketEvent};
use fleet_web::transport::websocket::WsConnector;
use fleet_web::transport::{LinkState, Transport};
use wasm_bindgen::JsCast;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// A setting from the script that started the stack.
fn given(value: Option<&'static str>, name: &str) -> &'static str {
    match value {
        Some(v) => v,
        None => panic!("{name} is not set: run these tests with scripts/wasm-test.sh"),
    }
}

/// The stack's WebSocket listener.
fn broker() -> &'static str {
    given(option_env!("FLEET_TEST_WS"), "FLEET_TEST_WS")
}

/// Who the page is to the stack: the namespace and credential it issued (as its
/// config.json does for the pages it serves).
fn issued() -> PageIdentity {
    let ns = given(option_env!("FLEET_TEST_NS"), "FLEET_TEST_NS");
    let login = Login {
        username: format!("page:{ns}"),
        password: given(option_env!("FLEET_TEST_PASSWORD"), "FLEET_TEST_PASSWORD").to_owned(),
    };
    PageIdentity::issued(ns, Some(login)).unwrap()
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
    // The warm-up is through: the fleet keeps up with its clock, and says so.
    assert!(
        eventually(10_000, || text("stats-lag") == "0.0 s").await,
        "lag: {}",
        text("stats-lag")
    );

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
    // A value that is no number is said in the editor, which stays open on Apply.
    device_velocity.set_value("abc");
    device_velocity
        .dispatch_event(&web_sys::Event::new("change").unwrap())
        .unwrap();
    click("apply-params");
    sleep(50).await;
    assert!(!query_all("[data-testid=device-params]").is_empty());
    assert!(
        text("device-params-error").contains("velocity: \"abc\" is not a number"),
        "{}",
        text("device-params-error")
    );
    assert_eq!(text("edit-params"), "Parameters");
    // A per-device value applies to that device only, and marks its card; the message goes.
    device_velocity.set_value("0.5");
    device_velocity
        .dispatch_event(&web_sys::Event::new("change").unwrap())
        .unwrap();
    sleep(50).await;
    assert_eq!(text("device-params-error"), "");
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
    // Said next to the field, with what is allowed, until the field gets a good value.
    assert!(
        text("field-error-devices").contains("a whole number from 1 to"),
        "{}",
        text("field-error-devices")
    );
    input.set_value("31");
    input
        .dispatch_event(&web_sys::Event::new("change").unwrap())
        .unwrap();
    sleep(50).await;
    assert_eq!(text("field-error-devices"), "");
    assert_eq!(input.value(), "31");
    // Settings persist: Start saved them.
    assert!(
        storage
            .get_item("fleet.settings")
            .unwrap()
            .unwrap()
            .contains("devices=30")
    );
}

/// A fleet of `devices` fast, wide-swinging devices of `identity` on the stack, one
/// connection each.
fn fleet_on_the_stack(identity: &PageIdentity, devices: usize) -> Engine {
    fleet_through(identity, "", devices, 3, Connections::PerDevice)
}

/// A fleet of `devices` fast, wide-swinging devices of `identity` over `buildings`, on the
/// stack through `connections`, with ids `{namespace}-{tag}0001`…: the tests share one
/// stack and one namespace, and a device id a test before used has readings stored up to a
/// later `seq`, so the stack would take a new fleet's readings as late and command nothing.
fn fleet_through(
    identity: &PageIdentity,
    tag: &str,
    devices: usize,
    buildings: usize,
    connections: Connections,
) -> Engine {
    let params = DeviceParams {
        velocity: 3.0,
        update_frequency_s: 0.1,
        ..DeviceParams::default()
    };
    let mut config = identity.engine_config(EngineConfig {
        devices,
        buildings,
        params,
        ramp_per_s: 0,
        ..EngineConfig::default()
    });
    config.id_prefix.push_str(tag);
    let mut mqtt = identity.mqtt_config(broker());
    mqtt.connections = connections;
    Engine::new(config, now_ms(), |ids| {
        let t = MqttTransport::new(mqtt, WsConnector::new(), ids, now_ms())
            .map_err(|e| e.to_string())?;
        Ok(Box::new(t) as Box<dyn Transport>)
    })
    .unwrap()
}

#[wasm_bindgen_test]
async fn a_websocket_to_the_local_stack_carries_readings_and_commands() {
    let identity = issued();
    let mut engine = fleet_on_the_stack(&identity, 3);
    // The devices are the namespace's.
    let ns = identity.namespace().as_str();
    assert_eq!(engine.id(0), format!("{ns}-0001"));
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
    assert_eq!(engine.problem(), None);
    engine.close(now_ms());
    assert_eq!(engine.link(0), LinkState::Idle);
}

#[wasm_bindgen_test]
async fn through_gateways_each_command_reaches_the_namespace_device_it_names() {
    // 12 devices in 3 buildings on 2 gateway connections, which subscribe to their
    // buildings' command wildcards: every command the stack sends there arrives through a
    // shared connection, and the page's fleet engine hands it to the device it names.
    let identity = issued();
    let ns = identity.namespace().as_str().to_owned();
    let mut engine = fleet_through(&identity, "gw", 12, 3, Connections::Gateways(2));
    assert!((0..12).all(|i| engine.id(i) == format!("{ns}-gw{:04}", i + 1)));
    let until = now_ms() + 20_000;
    let commanded = |e: &Engine| e.devices().iter().filter(|d| d.commands > 0).count();
    while now_ms() < until && commanded(&engine) < 3 {
        engine.tick(now_ms());
        sleep(10).await;
    }
    let stats = engine.stats();
    assert!(
        commanded(&engine) >= 3,
        "commands reached {} devices: {stats:?} {:?}",
        commanded(&engine),
        engine.problem()
    );
    assert_eq!(stats.transport.links_up, 12);
    // Nothing arrived that the page could not read or that was for no device of its own.
    assert_eq!(stats.unreadable, 0, "{stats:?}");
    // Each device counted exactly the commands the log shows for its id.
    let logged = |id: &str| {
        engine
            .log()
            .filter(|e| matches!(e, LogEntry::Command { device, .. } if device == id))
            .count() as u64
    };
    assert!(engine.log().len() < 200, "the log kept every command");
    for i in 0..12 {
        assert_eq!(
            engine.devices()[i].commands,
            logged(engine.id(i)),
            "device {i}"
        );
    }
    assert_eq!(
        engine.devices().iter().map(|d| d.commands).sum::<u64>(),
        stats.commands
    );
    // A command marks the card of the device it reached.
    let marked = engine
        .devices()
        .iter()
        .filter(|d| d.series.markers().next().is_some())
        .count();
    assert_eq!(marked, commanded(&engine));
    engine.close(now_ms());
}

#[wasm_bindgen_test]
fn a_fleet_out_of_frame_time_reports_its_lag_and_catches_up() {
    // 20,000 devices at ten readings a second each, on the browser's clock: far more than a
    // frame's budget steps at once.
    let now = now_ms();
    let params = DeviceParams {
        update_frequency_s: 0.1,
        ..DeviceParams::default()
    };
    let config = EngineConfig {
        devices: 20_000,
        params,
        series_capacity: 4,
        ..EngineConfig::default()
    };
    let mut engine =
        Engine::in_page(config, fleet_pipeline::PipelineConfig::default(), now).unwrap();
    assert_eq!(engine.tick(now), 200);
    // A frame with no time left takes one chunk of readings: the rest of the 100 ms due
    // are late, and the engine says by how much.
    engine.advance(now + 100, u64::MAX, || false);
    let lag = engine.stats().lag_ms;
    assert!(lag > 0 && lag <= 100, "lag {lag} ms");
    // Frames with time: caught up, lag 0.
    while engine.stats().lag_ms > 0 {
        engine.advance(now + 100, u64::MAX, || true);
    }
    assert_eq!(engine.stats().lag_ms, 0);
    // Spread over the 100 ms period, 200 devices a millisecond: the first 200 read at the
    // start and again at 100 ms, every other device once; none twice, none skipped.
    assert_eq!(engine.stats().published, 20_000 + 200);
    assert_eq!(fleet_web::app::lag_text(lag), format!("0.{} s", lag / 100));
    assert_eq!(fleet_web::app::lag_text(12_345), "12.3 s");
}

/// Ticks `engine` until it reports a problem (or 10 s pass); returns it.
async fn problem_of(engine: &mut Engine) -> Option<String> {
    let until = now_ms() + 10_000;
    while now_ms() < until && engine.problem().is_none() {
        engine.tick(now_ms());
        sleep(20).await;
    }
    engine.problem()
}

#[wasm_bindgen_test]
async fn without_the_stacks_credential_a_page_is_refused_in_plain_words() {
    // A namespace of the page's own, no credential: what a page the stack did not serve has.
    let mut engine = fleet_on_the_stack(&PageIdentity::generated(0xabc), 1);
    let problem = problem_of(&mut engine).await.unwrap_or_default();
    assert!(
        problem.contains("refused this page: it needs credentials"),
        "{problem}"
    );
    assert_eq!(engine.stats().transport.links_up, 0);
    assert_eq!(engine.stats().transport.acked, 0);
    engine.close(now_ms());

    // The right namespace with a credential the stack did not issue.
    let ns = issued().namespace().as_str().to_owned();
    let forged = PageIdentity::issued(
        &ns,
        Some(Login {
            username: format!("page:{ns}"),
            password: "not-the-stacks".to_owned(),
        }),
    )
    .unwrap();
    let mut engine = fleet_on_the_stack(&forged, 1);
    let problem = problem_of(&mut engine).await.unwrap_or_default();
    assert!(
        problem.contains("refused this page's credentials"),
        "{problem}"
    );
    assert!(!problem.contains("not-the-stacks"), "{problem}");
    assert_eq!(engine.stats().transport.links_up, 0);
    engine.close(now_ms());
}

#[cfg(feature = "aws")]
#[wasm_bindgen_test]
fn config_json_and_cognito_answers_are_read_as_natively() {
    // The page reads these with the browser's JSON.parse (json.rs); the native tests check
    // the same inputs through serde_json.
    use fleet_web::app::{HostConfig, host_config};
    let issued = r#"{"mode":"local","mqtt":{"url":"ws://127.0.0.1:8083/mqtt",
        "username":"page:w0a1b2c3d4","password":"tok"},"namespace":"w0a1b2c3d4"}"#;
    assert_eq!(
        host_config(issued),
        Some(HostConfig::Local {
            url: "ws://127.0.0.1:8083/mqtt".into(),
            namespace: Some("w0a1b2c3d4".into()),
            login: Some(Login {
                username: "page:w0a1b2c3d4".into(),
                password: "tok".into(),
            }),
        })
    );
    let aws = r#"{"mode":"aws","region":"eu-west-1","mqtt":{"endpoint":"abc-ats.iot.eu-west-1.amazonaws.com"},
        "cognito":{"identity_pool_id":"eu-west-1:42"},"browser_building":"browser",
        "topics":{"basic_ingest_prefix":"$aws/rules/fleet_telemetry/"}}"#;
    let Some(HostConfig::Aws(pairs)) = host_config(aws) else {
        panic!("not the AWS form");
    };
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        pairs,
        [
            ("endpoint", "abc-ats.iot.eu-west-1.amazonaws.com"),
            ("region", "eu-west-1"),
            ("pool", "eu-west-1:42"),
            ("rule", "fleet_telemetry"),
            ("building", "browser"),
        ]
    );
    for other in [
        "<!doctype html>",
        "[]",
        r#"{"mode":1}"#,
        r#"{"mode":"local"}"#,
    ] {
        assert_eq!(host_config(other), None, "{other}");
    }
    use fleet_web::aws::{CognitoError, parse_credentials, parse_get_id};
    assert_eq!(
        parse_get_id(200, r#"{"IdentityId":"us-east-1:1234"}"#).unwrap(),
        "us-east-1:1234"
    );
    let s = parse_credentials(
        200,
        r#"{"Credentials":{"AccessKeyId":"ASIAXXXXXXXXXXXXXXXX","Expiration":1.764234e9,"SecretKey":"s","SessionToken":"t"}}"#,
    )
    .unwrap();
    assert_eq!(s.expires_ms, Some(1_764_234_000_000));
    assert_eq!(s.credentials.session_token.as_deref(), Some("t"));
    assert_eq!(
        parse_get_id(
            400,
            r#"{"__type":"a#NotAuthorizedException","Message":"no"}"#
        )
        .unwrap_err(),
        CognitoError::Refused {
            kind: "NotAuthorizedException".into(),
            message: "no".into()
        }
    );
    assert!(matches!(
        parse_credentials(200, r#"{"Credentials":{"AccessKeyId":"A"}}"#),
        Err(CognitoError::Unexpected(_))
    ));
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
