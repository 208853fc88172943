//! The Leptos components: controls, the fleet overview, the virtualized grid of device
//! cards, and the cloud panel.
//!
//! One `requestAnimationFrame` loop calls [`Engine::advance`] every frame within
//! [`CATCH_UP_BUDGET_MS`] (only [`Engine::poll`] while paused, so connections stay alive); a
//! few times a second ([`REDRAW_MS`]) it first copies a [`Snapshot`] into a signal, which is
//! all the components read, out of the same budget. The loop is cancelled on Stop and
//! unmount.

use std::cell::Cell;
use std::ops::Range;
use std::rc::Rc;

use fleet_clock::now_ms;
use fleet_core::DeviceParams;
use fleet_pipeline::PipelineConfig;
use leptos::html;
use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::aws_mode::{AwsControls, AwsMode};
use crate::chart;
use crate::engine::{Engine, EngineConfig, series_capacity, warmup_s};
use crate::export;
use crate::identity::{Login, PageIdentity};
use crate::json::Json;
use crate::settings::{
    LOCAL_GATEWAY_PUBLISH_RATE, MAX_DEVICES, Mode, PARAM_KEYS, Settings, param_mut,
};
use crate::transport::Transport;
use crate::transport::mqtt::{Connections, MqttTransport};
use crate::transport::websocket::WsConnector;
use crate::view_model::{Level, Snapshot};

/// Minimum time between two snapshots (and so between two chart redraws), ms.
pub const REDRAW_MS: u64 = 250;

/// A card's slot in the grid, px (card plus gap); the grid positions cards by these.
const CARD_W: f64 = 344.0;
const CARD_H: f64 = 222.0;

/// `localStorage` key of the settings (a query string, like the shareable URL).
const STORAGE_KEY: &str = "fleet.settings";

/// Whether the fleet runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// No fleet (the last picture stays on screen).
    Stopped,
    /// Looking for the broker's address (`config.json`).
    Configuring,
    /// Ticking every frame.
    Running,
    /// Fleet kept, devices not stepped, connections kept alive.
    Paused,
}

impl RunState {
    /// The status label.
    pub fn label(self) -> &'static str {
        match self {
            RunState::Stopped => "stopped",
            RunState::Configuring => "configuring",
            RunState::Running => "running",
            RunState::Paused => "paused",
        }
    }
}

/// Where the devices' readings go, once resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The cloud runs in the page.
    InPage,
    /// A broker over WebSocket.
    Broker(String),
    /// AWS IoT Core at this endpoint.
    #[cfg(feature = "aws")]
    Aws(String),
}

impl Target {
    fn label(&self) -> String {
        match self {
            Target::InPage => "in-page".to_owned(),
            Target::Broker(url) => format!("local · {url}"),
            #[cfg(feature = "aws")]
            Target::Aws(endpoint) => format!("aws · {endpoint}"),
        }
    }
}

/// The engine's clock: real time, sped up `speed` times from an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimClock {
    real_origin: u64,
    sim_origin: u64,
    speed: u64,
}

impl SimClock {
    /// A clock reading `real_now` now and running `speed` times faster than real time.
    pub fn new(real_now: u64, speed: u64) -> SimClock {
        SimClock {
            real_origin: real_now,
            sim_origin: real_now,
            speed: speed.max(1),
        }
    }

    /// Simulated time at real time `real_now`.
    pub fn at(&self, real_now: u64) -> u64 {
        self.sim_origin + real_now.saturating_sub(self.real_origin) * self.speed
    }

    /// Restarts from `sim_now` at `real_now` (after a pause, so time does not jump).
    pub fn rebase(&mut self, real_now: u64, sim_now: u64) {
        self.real_origin = real_now;
        self.sim_origin = sim_now;
    }
}

/// Simulated ms per engine step while catching up (a warm-up, a frame at a high speed-up).
pub const STEP_MS: u64 = 50;

/// Real ms a frame may spend on the fleet (its snapshot included), so neither a warm-up nor a
/// big fleet makes it a long task; what does not fit is the lag the cloud panel shows.
pub const CATCH_UP_BUDGET_MS: f64 = 12.0;

/// An in-page fleet whose history starts `warmup_s` simulated seconds before `now` (capped
/// for big fleets by [`warmup_s`](crate::engine::warmup_s)): the
/// frame loop catches up with `now` a budget at a time, so its charts fill within a few
/// frames without blocking the page.
pub fn in_page_engine(
    config: EngineConfig,
    now: u64,
    warmup_s: u64,
) -> Result<Engine, crate::engine::EngineError> {
    Engine::in_page(
        config,
        PipelineConfig::default(),
        now.saturating_sub(warmup_s * 1000),
    )
}

fn perf_now() -> f64 {
    window().performance().map_or(0.0, |p| p.now())
}

/// The cards in `visible` rows of a grid `width` px wide, scrolled to `top` and `height`
/// px tall, out of `n` devices; and the number of columns.
pub fn visible_cards(n: usize, width: f64, height: f64, top: f64) -> (Range<usize>, usize) {
    let cols = ((width / CARD_W).floor() as usize).max(1);
    let first_row = (top.max(0.0) / CARD_H).floor() as usize;
    // One row more on each side, so a slow scroll never shows an empty slot.
    let last_row = ((top.max(0.0) + height.max(CARD_H)) / CARD_H).ceil() as usize + 1;
    let start = (first_row.saturating_sub(1) * cols).min(n);
    let end = (last_row * cols).min(n);
    (start..end, cols)
}

/// A cancellable `requestAnimationFrame` loop, with a once-a-second timer behind it: a
/// hidden tab gets no animation frames, but its connections still need their keep-alive
/// pings and acknowledgements (a broker drops a silent client after 1.5 × keep-alive).
struct FrameLoop {
    active: Cell<bool>,
    handle: Cell<Option<AnimationFrameRequestHandle>>,
    backup: Cell<Option<IntervalHandle>>,
    last_frame_ms: Cell<u64>,
    on_frame: Box<dyn Fn()>,
}

/// The backup timer runs a frame when no animation frame came for this long.
const BACKUP_AFTER_MS: u64 = 500;

impl FrameLoop {
    fn start(this: &Rc<FrameLoop>) {
        if !this.active.replace(true) {
            FrameLoop::frame(Rc::clone(this));
            let weak = Rc::downgrade(this);
            let backup = set_interval_with_handle(
                move || {
                    if let Some(this) = weak.upgrade() {
                        let quiet = now_ms().saturating_sub(this.last_frame_ms.get());
                        if this.active.get() && quiet >= BACKUP_AFTER_MS {
                            this.run();
                        }
                    }
                },
                std::time::Duration::from_millis(1000),
            );
            this.backup.set(backup.ok());
        }
    }

    fn stop(&self) {
        self.active.set(false);
        if let Some(handle) = self.handle.take() {
            handle.cancel();
        }
        if let Some(backup) = self.backup.take() {
            backup.clear();
        }
    }

    fn run(&self) {
        self.last_frame_ms.set(now_ms());
        (self.on_frame)();
    }

    fn frame(this: Rc<FrameLoop>) {
        if !this.active.get() {
            return;
        }
        this.run();
        let next = Rc::clone(&this);
        if let Ok(handle) = request_animation_frame_with_handle(move || FrameLoop::frame(next)) {
            this.handle.set(Some(handle));
        }
    }
}

fn storage() -> Option<web_sys::Storage> {
    window().local_storage().ok().flatten()
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    let Ok(params) = web_sys::UrlSearchParams::new_with_str(query) else {
        return Vec::new();
    };
    let mut pairs = Vec::new();
    let entries = js_sys::try_iter(&params).ok().flatten();
    for entry in entries.into_iter().flatten().flatten() {
        let entry: js_sys::Array = entry.unchecked_into();
        if let (Some(k), Some(v)) = (entry.get(0).as_string(), entry.get(1).as_string()) {
            pairs.push((k, v));
        }
    }
    pairs
}

/// Defaults, then the stored settings, then the URL's; with what could not be used.
fn load_settings() -> (Settings, Vec<String>, bool) {
    let mut settings = Settings::default();
    let mut warnings = Vec::new();
    if let Some(stored) = storage().and_then(|s| s.get_item(STORAGE_KEY).ok().flatten()) {
        let pairs = query_pairs(&stored);
        settings.apply(
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &mut Vec::new(),
        );
    }
    let url = query_pairs(&window().location().search().unwrap_or_default());
    settings.apply(
        url.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &mut warnings,
    );
    let autostart = url
        .iter()
        .find(|(k, _)| k == "autostart")
        .is_none_or(|(_, v)| v != "0" && v != "false");
    (settings, warnings, autostart)
}

fn save_settings(settings: &Settings) {
    if let Some(s) = storage() {
        let _ = s.set_item(STORAGE_KEY, &settings.to_query());
    }
}

/// This page's URL with `settings` as its query.
fn share_url(settings: &Settings) -> String {
    let location = window().location();
    let base = format!(
        "{}{}",
        location.origin().unwrap_or_default(),
        location.pathname().unwrap_or_default()
    );
    match settings.to_query() {
        q if q.is_empty() => base,
        q => format!("{base}?{q}"),
    }
}

/// Asks the page's host for `config.json` (next to `index.html`, so it works from a
/// sub-path). `Ok(None)`: the host has none (a static host, `trunk serve`).
async fn fetch_config() -> Result<Option<HostConfig>, String> {
    use wasm_bindgen_futures::JsFuture;
    let resp = JsFuture::from(window().fetch_with_str("config.json"))
        .await
        .map_err(|_| "could not reach the page's host for config.json".to_owned())?;
    let resp: web_sys::Response = resp
        .dyn_into()
        .map_err(|_| "config.json: not an HTTP response".to_owned())?;
    if !resp.ok() {
        return Ok(None);
    }
    let text = match resp.text() {
        Ok(p) => JsFuture::from(p).await.ok().and_then(|t| t.as_string()),
        Err(_) => None,
    };
    Ok(text.and_then(|t| host_config(&t)))
}

/// What a host's `config.json` says: `fleet local` serves the local form; the SAM
/// template's `WebConfig` output is the AWS form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostConfig {
    /// `{"mode":"local","mqtt":{"url":"ws://…/mqtt","username":"page:NS","password":…},
    /// "namespace":"NS"}`: the broker, and the namespace and credential the stack issued
    /// this page (a fresh pair per request).
    Local {
        /// The broker's WebSocket URL.
        url: String,
        /// The page's namespace (none from an older stack).
        namespace: Option<String>,
        /// The credential for it.
        login: Option<Login>,
    },
    /// `{"mode":"aws","region":…,"mqtt":{"endpoint":…},"cognito":{"identity_pool_id":…},
    /// "browser_building":…}`, as settings pairs, so they are checked like the URL's.
    #[cfg(feature = "aws")]
    Aws(Vec<(&'static str, String)>),
}

/// Reads a `config.json`; `None` for anything else (a static host may answer every path
/// with `index.html`). Builds without the `aws` feature read only the local form.
pub fn host_config(text: &str) -> Option<HostConfig> {
    let config = Json::parse(text)?;
    let get = |path: &[&str]| config.str(path);
    match get(&["mode"])?.as_str() {
        "local" => {
            let login = match (get(&["mqtt", "username"]), get(&["mqtt", "password"])) {
                (Some(username), Some(password)) => Some(Login { username, password }),
                _ => None,
            };
            Some(HostConfig::Local {
                url: get(&["mqtt", "url"])?,
                namespace: get(&["namespace"]),
                login,
            })
        }
        #[cfg(feature = "aws")]
        "aws" => {
            let mut pairs = vec![
                ("endpoint", get(&["mqtt", "endpoint"])?),
                ("region", get(&["region"])?),
            ];
            pairs.extend(get(&["cognito", "identity_pool_id"]).map(|p| ("pool", p)));
            // `$aws/rules/<rule>/`: telemetry goes through Basic Ingest.
            pairs.extend(
                get(&["topics", "basic_ingest_prefix"])
                    .and_then(|p| fleet_core::topic::basic_ingest::rule(&p).map(str::to_owned))
                    .map(|r| ("rule", r)),
            );
            pairs.extend(get(&["browser_building"]).map(|b| ("building", b)));
            Some(HostConfig::Aws(pairs))
        }
        _ => None,
    }
}

/// Offers `text` as a file download.
fn download(name: &str, mime: &str, text: &str) -> Result<(), String> {
    download_parts(name, mime, std::slice::from_ref(&text))
}

/// Offers `parts`, joined, as a file named `name`: one part per device keeps a big fleet's
/// file out of one giant string.
fn download_parts(name: &str, mime: &str, parts: &[impl AsRef<str>]) -> Result<(), String> {
    let parts: js_sys::Array = parts
        .iter()
        .map(|p| wasm_bindgen::JsValue::from_str(p.as_ref()))
        .collect();
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options)
        .map_err(|_| "could not build the file".to_owned())?;
    let url = web_sys::Url::create_object_url_with_blob(&blob)
        .map_err(|_| "could not build the file's URL".to_owned())?;
    let a: web_sys::HtmlAnchorElement = document()
        .create_element("a")
        .map_err(|_| "could not start the download".to_owned())?
        .unchecked_into();
    a.set_href(&url);
    a.set_download(name);
    a.click();
    let _ = web_sys::Url::revoke_object_url(&url);
    Ok(())
}

/// Where a fleet started with `s` goes: what the settings name, or else what the page's
/// host says in `config.json` (whose AWS settings are copied into `settings`); and who the
/// page is there, when the host issued it a namespace.
async fn resolve_target(
    s: &Settings,
    settings: RwSignal<Settings>,
) -> Result<(Target, Option<PageIdentity>), String> {
    #[cfg(not(feature = "aws"))]
    let _ = settings; // only AWS settings are copied from config.json
    match (s.mode, &s.broker, &s.endpoint) {
        (Mode::InPage, _, _) => return Ok((Target::InPage, None)),
        #[cfg(feature = "aws")]
        (Mode::Aws, _, Some(endpoint)) => return Ok((Target::Aws(endpoint.clone()), None)),
        #[cfg(not(feature = "aws"))]
        (Mode::Aws, _, _) => return Err(crate::aws_mode::NOTE.to_owned()),
        // Another broker: it issued this page nothing (see `identity.rs`).
        (Mode::Auto | Mode::Local, Some(url), _) => {
            return Ok((Target::Broker(url.clone()), None));
        }
        _ => {}
    }
    match (s.mode, fetch_config().await) {
        #[cfg(feature = "aws")]
        (Mode::Aws | Mode::Auto, Ok(Some(HostConfig::Aws(pairs)))) => {
            let mut warnings = Vec::new();
            settings.update(|s| {
                s.mode = Mode::Aws;
                s.apply(pairs.iter().map(|(k, v)| (*k, v.as_str())), &mut warnings);
            });
            match settings.with_untracked(|s| s.endpoint.clone()) {
                Some(endpoint) if warnings.is_empty() => Ok((Target::Aws(endpoint), None)),
                _ => Err(format!("config.json: {}", warnings.join("; "))),
            }
        }
        (
            Mode::Auto | Mode::Local,
            Ok(Some(HostConfig::Local {
                url,
                namespace,
                login,
            })),
        ) => {
            let identity = namespace
                .map(|ns| PageIdentity::issued(&ns, login))
                .transpose()?;
            Ok((Target::Broker(url), identity))
        }
        (Mode::Auto, _) => Ok((Target::InPage, None)),
        #[cfg(feature = "aws")]
        (Mode::Aws, Ok(_)) => Err("AWS mode needs the IoT Core endpoint: enter it, or serve \
             the template's WebConfig output as config.json"
            .to_owned()),
        (_, Ok(_)) => Err(
            "this host serves no config.json of `fleet local`; give the broker \
             as ?broker=ws://HOST:PORT/mqtt or choose in-page"
                .to_owned(),
        ),
        (_, Err(e)) => Err(e),
    }
}

/// A fleet ready to launch: where it goes and who the page is there.
struct Plan {
    target: Target,
    /// Who the page is to the broker; `None` in page.
    identity: Option<PageIdentity>,
    /// How an AWS fleet signs its connections.
    #[cfg(feature = "aws")]
    sign_in: Option<crate::aws_mode::SignIn>,
}

/// Resolves where a fleet goes and, on AWS, signs in first (a Cognito guest's ids are
/// named after its identity). Errors are worded for the page.
async fn plan(
    s: &Settings,
    settings: RwSignal<Settings>,
    aws_mode: AwsMode,
    generated: PageIdentity,
) -> Result<Plan, String> {
    #[cfg(not(feature = "aws"))]
    let _ = aws_mode;
    let (target, issued) = resolve_target(s, settings)
        .await
        .map_err(|why| format!("bad config: {why}"))?;
    let identity = match target {
        Target::InPage => None,
        _ => Some(issued.unwrap_or(generated)),
    };
    #[cfg(feature = "aws")]
    if let (Target::Aws(_), Some(generated)) = (&target, &identity) {
        // config.json may have filled in the pool and the building.
        let s = settings.get_untracked();
        let failed = |e: String| format!("could not start the fleet: {e}");
        let sign_in = aws_mode.sign_in(&s).await.map_err(failed)?;
        let identity = sign_in
            .identity(s.building.as_deref(), generated.clone())
            .map_err(failed)?;
        return Ok(Plan {
            target,
            identity: Some(identity),
            sign_in: Some(sign_in),
        });
    }
    Ok(Plan {
        target,
        identity,
        #[cfg(feature = "aws")]
        sign_in: None,
    })
}

/// The whole page.
#[component]
pub fn App() -> impl IntoView {
    let (initial, warnings, autostart) = load_settings();
    let defaults = PipelineConfig::default();
    let band_min = defaults.policy.band_min;
    let band_max = defaults.policy.band_max;

    let settings = RwSignal::new(initial);
    let state = RwSignal::new(RunState::Stopped);
    let target = RwSignal::new(None::<Target>);
    // What the URL got wrong in a setting that has a field is said next to that field, until
    // the field gets a good value; the rest goes to the page's error list.
    let (field_warnings, warnings): (Vec<String>, Vec<String>) = warnings
        .into_iter()
        .partition(|w| FIELD_KEYS.iter().any(|k| w.starts_with(&format!("{k}="))));
    let field_errors = RwSignal::new(field_warnings);
    let errors = RwSignal::new(warnings.clone());
    let snapshot = RwSignal::new(Snapshot {
        band_min,
        band_max,
        ..Snapshot::default()
    });
    let engine: StoredValue<Option<Engine>, LocalStorage> = StoredValue::new_local(None);
    let last_snapshot = StoredValue::new(0_u64);
    let previous_frame = StoredValue::new(0_u64);
    let clock = StoredValue::new(SimClock::new(now_ms(), 1));
    let sim_now = StoredValue::new(0_u64);
    // In page, the engine catches up in steps (warm-up, speed-up); against a broker it never
    // replays missed time: after a pause each device sends one reading, now.
    let catch_up_step = StoredValue::new(STEP_MS);
    let aws_mode = AwsMode::new(settings, errors);
    // One namespace per page for brokers that issue none (see `identity.rs`): its device
    // ids and client ids, distinct per tab.
    let page_identity = StoredValue::new(PageIdentity::generated(random_40_bits()));
    let visible = RwSignal::new(0..0_usize);
    let visible_now = StoredValue::new(0..0_usize);
    Effect::new(move |_| visible_now.set_value(visible.get()));

    let take_snapshot = move || {
        let range = visible_now.get_value();
        // In place: no copy of 25,000 ids four times a second.
        engine.with_value(|e| {
            if let Some(e) = e {
                snapshot.update(|s| s.refresh(e, band_min, band_max, range));
            }
        });
    };
    let on_frame = move || {
        let frame_start = perf_now();
        let real = now_ms();
        aws_mode.tick(real);
        // Whether animation frames are coming (not the hidden tab's once-a-second backup).
        let frames_flow = real.saturating_sub(previous_frame.get_value()) < 100;
        previous_frame.set_value(real);
        if real >= last_snapshot.get_value() + REDRAW_MS {
            last_snapshot.set_value(real);
            take_snapshot();
            // The snapshot (a pass over the whole fleet) and the redraws it sets off (the
            // overview, the cards in view, the panel) are this frame's work, four times a
            // second: the fleet steps in the next frame, so no frame carries both. Frames
            // with both were the longest, and at 25,000–50,000 devices through gateways,
            // on two cores shared with the broker, now and then over 50 ms. The backup
            // timer of a hidden tab does both: there is no next frame soon.
            if frames_flow {
                return;
            }
        }
        let target = clock.with_value(|c| c.at(real));
        let running = state.get_untracked() == RunState::Running;
        engine.update_value(|e| {
            if let Some(e) = e {
                if running {
                    let reached = e.advance(target, catch_up_step.get_value(), || {
                        perf_now() - frame_start < CATCH_UP_BUDGET_MS
                    });
                    sim_now.set_value(reached);
                } else {
                    e.poll(e.now_ms().max(target));
                }
            }
        });
    };
    let frames: StoredValue<Rc<FrameLoop>, LocalStorage> =
        StoredValue::new_local(Rc::new(FrameLoop {
            active: Cell::new(false),
            handle: Cell::new(None),
            backup: Cell::new(None),
            last_frame_ms: Cell::new(0),
            on_frame: Box::new(on_frame),
        }));
    // Redraw at once when the grid scrolls to other cards.
    Effect::new(move |_| {
        visible.track();
        take_snapshot();
    });

    let stop = move || {
        frames.with_value(|f| f.stop());
        engine.update_value(|e| {
            if let Some(e) = e {
                e.close(now_ms());
            }
        });
        take_snapshot();
        // The closed fleet stays until the next start: its cards and exports still work.
        aws_mode.stop();
        state.set(RunState::Stopped);
    };

    let launch = move |plan: Plan| {
        let s = settings.get_untracked();
        let config = EngineConfig {
            devices: s.devices,
            buildings: s.buildings,
            seed: s.seed,
            params: s.params,
            ramp_per_s: s.ramp_per_s,
            series_capacity: series_capacity(s.devices),
            ..EngineConfig::default()
        };
        let real_now = now_ms();
        let target_now = plan.target.clone();
        let built = match (&plan.target, plan.identity) {
            (Target::InPage, _) => {
                clock.set_value(SimClock::new(real_now, s.speed));
                catch_up_step.set_value(STEP_MS);
                let warmup = warmup_s(
                    s.warmup_s,
                    s.devices,
                    s.params.update_frequency_s,
                    config.series_capacity,
                );
                in_page_engine(config, real_now, warmup)
            }
            (_, None) => Err(crate::engine::EngineError::Transport(
                "no page identity for the broker".to_owned(),
            )),
            (Target::Broker(url), Some(identity)) => {
                // A broker checks readings against its own clock: real time only.
                clock.set_value(SimClock::new(real_now, 1));
                catch_up_step.set_value(u64::MAX);
                let mut mqtt = identity.mqtt_config(url.clone());
                let config = identity.engine_config(config);
                mqtt.seed = s.seed ^ real_now;
                mqtt.connections = match s.connections.gateways(
                    s.devices,
                    s.params.update_frequency_s,
                    LOCAL_GATEWAY_PUBLISH_RATE,
                ) {
                    None => Connections::PerDevice,
                    Some(n) => Connections::Gateways(n),
                };
                Engine::new(config, real_now, move |ids| {
                    MqttTransport::new(mqtt, WsConnector::new(), ids, real_now)
                        .map(|t| Box::new(t) as Box<dyn Transport>)
                        .map_err(|e| format!("MQTT settings: {e}"))
                })
            }
            #[cfg(feature = "aws")]
            (Target::Aws(endpoint), Some(identity)) => {
                clock.set_value(SimClock::new(real_now, 1));
                catch_up_step.set_value(u64::MAX);
                let mut mqtt = identity.mqtt_config(format!("wss://{endpoint}/mqtt"));
                let config = EngineConfig {
                    topic_prefix: s
                        .rule
                        .as_ref()
                        .and_then(|r| fleet_core::topic::basic_ingest::prefix(r).ok())
                        .unwrap_or_default(),
                    ..identity.engine_config(config)
                };
                mqtt.seed = s.seed ^ real_now;
                mqtt.connections = match s.connections.gateways(
                    s.devices,
                    s.params.update_frequency_s,
                    crate::settings::GATEWAY_PUBLISH_RATE,
                ) {
                    None => Connections::PerDevice,
                    Some(n) => Connections::Gateways(n),
                };
                match plan.sign_in {
                    Some(sign_in) => {
                        let source = aws_mode.start(&s, endpoint, sign_in, &mut mqtt);
                        Engine::new(config, real_now, move |ids| {
                            MqttTransport::new(mqtt, WsConnector::new(), ids, real_now)
                                .map(|t| Box::new(t.with_url_source(source)) as Box<dyn Transport>)
                                .map_err(|e| format!("MQTT settings: {e}"))
                        })
                    }
                    None => Err(crate::engine::EngineError::Transport(
                        "not signed in to AWS".to_owned(),
                    )),
                }
            }
        };
        match built {
            Ok(e) => {
                engine.set_value(Some(e));
                target.set(Some(target_now));
                last_snapshot.set_value(0);
                state.set(RunState::Running);
                frames.with_value(FrameLoop::start);
            }
            Err(e) => {
                errors.update(|v| v.push(format!("could not start the fleet: {e}")));
                state.set(RunState::Stopped);
            }
        }
    };

    let start = move || {
        if state.get_untracked() != RunState::Stopped {
            stop();
        }
        // The last fleet was kept for its cards and exports; the next one is built without it
        // (two 100,000-device fleets at once would double the page's memory).
        engine.set_value(None);
        errors.set(Vec::new());
        let s = settings.get_untracked();
        save_settings(&s);
        state.set(RunState::Configuring);
        // One path for every mode (the settings may name the target, or the host's
        // config.json does), so `launch` has a single call site.
        wasm_bindgen_futures::spawn_local(async move {
            let plan = plan(&s, settings, aws_mode, page_identity.get_value()).await;
            if state.get_untracked() != RunState::Configuring {
                return; // stopped meanwhile
            }
            match plan {
                Ok(p) => launch(p),
                Err(why) => {
                    errors.update(|v| v.push(why));
                    state.set(RunState::Stopped);
                }
            }
        });
    };
    let pause_resume = move || match state.get_untracked() {
        RunState::Running => {
            take_snapshot();
            state.set(RunState::Paused);
        }
        RunState::Paused => {
            // In page, simulated time waits for the user; a broker's clock does not.
            if target.get_untracked() == Some(Target::InPage) {
                let sim = sim_now.get_value();
                clock.update_value(|c| c.rebase(now_ms(), sim));
            }
            state.set(RunState::Running);
        }
        RunState::Stopped | RunState::Configuring => {}
    };
    on_cleanup(move || {
        let _ = frames.try_with_value(|f| f.stop());
    });
    // Fleet-wide parameters apply to a running fleet at once (overriding per-device ones);
    // the counts and the mode take effect at the next Start.
    Effect::new(move |previous: Option<DeviceParams>| {
        let params = settings.with(|s| s.params);
        if previous.is_some_and(|old| old != params) {
            engine.update_value(|e| {
                if let Some(e) = e {
                    // Cannot fail: the settings only hold validated parameters.
                    let _ = e.set_params(None, params);
                }
            });
        }
        params
    });
    if autostart {
        start();
        // Start clears the last run's errors; what the URL got wrong stays on screen.
        errors.update(|v| {
            let mut all = warnings;
            all.append(v);
            *v = all;
        });
    }

    let stopped = move || matches!(state.get(), RunState::Stopped | RunState::Configuring);
    view! {
        <header class="top">
            <h1>"Fleet"</h1>
            <Controls settings=settings aws_mode=aws_mode errors=errors field_errors=field_errors />
            <div class="controls actions">
                <button data-testid="start" on:click=move |_| start()>
                    {move || if stopped() { "Start" } else { "Restart" }}
                </button>
                <button data-testid="pause" disabled=stopped on:click=move |_| pause_resume()>
                    {move || if state.get() == RunState::Paused { "Resume" } else { "Pause" }}
                </button>
                <button data-testid="stop" disabled=stopped on:click=move |_| stop()>
                    "Stop"
                </button>
                <span class=move || format!("status {}", state.get().label()) data-testid="status">
                    {move || state.get().label()}
                </span>
                <span class="target" data-testid="target">
                    {move || target.get().map(|t| t.label()).unwrap_or_default()}
                </span>
                <Ramp snapshot=snapshot />
                <ShareLink settings=settings />
            </div>
            <Legend />
        </header>
        <Errors errors=errors snapshot=snapshot />
        <Overview snapshot=snapshot />
        <main class="layout">
            <Grid snapshot=snapshot visible=visible engine=engine settings=settings errors=errors />
            <CloudPanel snapshot=snapshot engine=engine errors=errors />
        </main>
    }
}

/// 40 random bits (`Math.random` has 52): a page's generated namespace.
fn random_40_bits() -> u64 {
    (js_sys::Math::random() * (1_u64 << 40) as f64) as u64
}

/// The fleet settings: mode, broker, counts, ramp, and the original device parameters.
#[component]
fn Controls(
    settings: RwSignal<Settings>,
    aws_mode: AwsMode,
    errors: RwSignal<Vec<String>>,
    field_errors: RwSignal<Vec<String>>,
) -> impl IntoView {
    // One path for every field: `Settings::apply`, as for the URL. A bad value keeps the
    // setting as it was and says why next to the field, until the field gets a good value.
    let set = move |key: &'static str, value: String| {
        let mut said = Vec::new();
        settings.update(|s| s.apply([(key, value.as_str())], &mut said));
        field_errors.update(|f| {
            f.retain(|m| !m.starts_with(&format!("{key}=")));
            f.append(&mut said);
        });
    };
    let number = move |label: &'static str,
                       testid: &'static str,
                       key: &'static str,
                       get: fn(&Settings) -> String| {
        view! {
            <label>
                {label}
                <input
                    type="text"
                    inputmode="decimal"
                    size="6"
                    data-testid=testid
                    prop:value=move || settings.with(get)
                    on:change=move |ev| set(key, event_target_value(&ev))
                />
                {field_error(key, field_errors)}
            </label>
        }
    };
    let param_inputs = PARAM_KEYS
        .iter()
        .map(|&key| {
            view! {
                <label>
                    {param_label(key)}
                    <input
                        type="text"
                        inputmode="decimal"
                        size="5"
                        data-testid=format!("param-{key}")
                        prop:value=move || {
                            settings.with(|s| {
                                let mut p = s.params;
                                param_mut(&mut p, key).to_string()
                            })
                        }
                        on:change=move |ev| set(key, event_target_value(&ev))
                    />
                    {field_error(key, field_errors)}
                </label>
            }
        })
        .collect_view();
    view! {
        <div class="controls settings">
            <label>
                "Mode "
                <select
                    data-testid="mode"
                    prop:value=move || settings.with(|s| s.mode.as_str())
                    on:change=move |ev| set("mode", event_target_value(&ev))
                >
                    <option value="auto">"auto"</option>
                    <option value="in-page">"in-page"</option>
                    <option value="local">"local"</option>
                    <option value="aws">"aws"</option>
                </select>
            </label>
            <label>
                "Broker "
                <input
                    type="url"
                    size="26"
                    placeholder="from config.json"
                    data-testid="broker"
                    prop:value=move || settings.with(|s| s.broker.clone().unwrap_or_default())
                    on:change=move |ev| set("broker", event_target_value(&ev))
                />
                {field_error("broker", field_errors)}
            </label>
            <Show when=move || settings.with(|s| s.mode == Mode::Aws)>
                <AwsControls aws_mode=aws_mode settings=settings errors=errors />
            </Show>
            {number("Devices ", "device-count", "devices", |s| s.devices.to_string())}
            {number("Buildings ", "buildings", "buildings", |s| s.buildings.to_string())}
            {number("Ramp /s ", "ramp", "ramp", |s| s.ramp_per_s.to_string())}
            {number("Connections ", "connections", "connections", |s| s.connections.to_query())}
            {param_inputs}
            <span class="hint">{format!("max {MAX_DEVICES} devices")}</span>
        </div>
    }
}

/// The settings with a field of their own in the controls (their URL keys).
const FIELD_KEYS: [&str; 11] = [
    "mode",
    "broker",
    "devices",
    "buildings",
    "ramp",
    "connections",
    "velocity",
    "frequency",
    "factor",
    "min_temp",
    "min_hum",
];

/// What is wrong with field `key`'s last value, next to it (`field-error-{key}`; empty,
/// and hidden by the style sheet, while the value is good).
fn field_error(key: &'static str, field_errors: RwSignal<Vec<String>>) -> impl IntoView {
    let message = move || {
        field_errors.with(|f| {
            f.iter()
                .find(|m| {
                    m.strip_prefix(key)
                        .is_some_and(|rest| rest.starts_with('='))
                })
                .cloned()
                .unwrap_or_default()
        })
    };
    view! { <span class="field-error" role="alert" data-testid=format!("field-error-{key}")>{message}</span> }
}

fn param_label(key: &str) -> &'static str {
    match key {
        "velocity" => "Velocity ",
        "frequency" => "Every (s) ",
        "factor" => "Remediation factor ",
        "min_temp" => "Min temp ",
        _ => "Min hum ",
    }
}

/// The ramp-up's progress, while devices are still starting.
#[component]
fn Ramp(snapshot: RwSignal<Snapshot>) -> impl IntoView {
    let total = move || snapshot.with(|s| s.devices.len());
    let started = move || snapshot.with(|s| s.stats.started);
    view! {
        <Show when=move || { total() > 0 && started() < total() }>
            <label class="ramp">
                "Starting "
                <progress
                    data-testid="ramp-progress"
                    max=move || total().to_string()
                    value=move || started().to_string()
                ></progress>
                {move || format!(" {}/{}", started(), total())}
            </label>
        </Show>
    }
}

/// A link with the current settings, to copy or bookmark.
#[component]
fn ShareLink(settings: RwSignal<Settings>) -> impl IntoView {
    view! {
        <a class="share" data-testid="share" href=move || settings.with(share_url)>
            "Link to these settings"
        </a>
    }
}

/// Errors and warnings in plain words.
#[component]
fn Errors(errors: RwSignal<Vec<String>>, snapshot: RwSignal<Snapshot>) -> impl IntoView {
    let all = move || {
        let mut v = errors.get();
        if let Some(p) = snapshot.with(|s| s.problem.clone()) {
            v.push(p);
        }
        v
    };
    view! {
        <Show when=move || !all().is_empty()>
            <ul class="error" data-testid="error" role="alert">
                {move || all().into_iter().map(|e| view! { <li>{e}</li> }).collect_view()}
            </ul>
        </Show>
    }
}

/// What the chart colours mean.
#[component]
fn Legend() -> impl IntoView {
    view! {
        <div class="legend">
            <span class="key actual">"temperature"</span>
            <span class="key counterfactual">"without remediation"</span>
            <span class="key band">"band 26–28 °C"</span>
            <span class="key humidity">"humidity (right scale)"</span>
            <span class="key cool">"cool"</span>
            <span class="key heat">"heat"</span>
            <span class="key release">"release"</span>
        </div>
    }
}

/// Every device at a glance: one cell per device on a canvas, coloured by its latest
/// temperature against the band (grey while its connection is not up).
#[component]
fn Overview(snapshot: RwSignal<Snapshot>) -> impl IntoView {
    let canvas = NodeRef::<html::Canvas>::new();
    Effect::new(move |_| {
        let Some(el) = canvas.get() else {
            return;
        };
        snapshot.with(|s| chart::draw_overview(&el, s));
    });
    let summary = move || {
        snapshot.with(|s| {
            let mut counts = [0_usize; 4];
            for d in &s.devices {
                counts[Level::of(d.temperature, s.band_min, s.band_max) as usize] += 1;
            }
            let up = s
                .devices
                .iter()
                .filter(|d| d.link == crate::transport::LinkState::Up)
                .count();
            format!(
                "{} devices: {} hot, {} cold, {} in band, {} waiting · {} connected",
                s.devices.len(),
                counts[Level::Hot as usize],
                counts[Level::Cold as usize],
                counts[Level::InBand as usize],
                counts[Level::Unknown as usize],
                up
            )
        })
    };
    view! {
        <section class="overview" data-testid="overview">
            <canvas node_ref=canvas data-testid="overview-canvas" height="64"></canvas>
            <p class="summary" data-testid="overview-summary">{summary}</p>
        </section>
    }
}

/// The device cards, virtualized: the grid has the height of all of them, but only the
/// rows in view (and one more each side) exist in the DOM and draw.
#[component]
fn Grid(
    snapshot: RwSignal<Snapshot>,
    visible: RwSignal<Range<usize>>,
    engine: StoredValue<Option<Engine>, LocalStorage>,
    settings: RwSignal<Settings>,
    errors: RwSignal<Vec<String>>,
) -> impl IntoView {
    let section = NodeRef::<html::Section>::new();
    let cols = RwSignal::new(1_usize);
    let slot_w = RwSignal::new(CARD_W);
    let n = Memo::new(move |_| snapshot.with(|s| s.devices.len()));
    let measure = move || {
        let Some(el) = section.get_untracked() else {
            return;
        };
        let (range, c) = visible_cards(
            n.get_untracked(),
            f64::from(el.client_width()),
            f64::from(el.client_height()),
            f64::from(el.scroll_top()),
        );
        if visible.get_untracked() != range {
            visible.set(range);
        }
        // Spread the columns over the whole width rather than leave a strip at the right.
        let slot = (f64::from(el.client_width()) / c as f64).max(CARD_W);
        if cols.get_untracked() != c || (slot_w.get_untracked() - slot).abs() >= 1.0 {
            cols.set(c);
            slot_w.set(slot);
        }
    };
    // Also at every snapshot: the grid's width changes with the layout around it (fonts,
    // the cloud panel) without a window resize, and three layout reads 4× a second are cheap.
    Effect::new(move |_| {
        n.track();
        section.track();
        snapshot.track();
        measure();
    });
    let resize = window_event_listener(leptos::ev::resize, move |_| measure());
    on_cleanup(move || resize.remove());
    let rows_height = move || {
        let c = cols.get().max(1);
        format!("{}px", (n.get().div_ceil(c)) as f64 * CARD_H)
    };
    view! {
        <section
            class="cards"
            data-testid="device-cards"
            node_ref=section
            on:scroll=move |_| measure()
            tabindex="0"
            aria-label="device cards"
        >
            <div class="cards-inner" style:height=rows_height>
                <For
                    each=move || {
                        // Keyed by position too: a new column count places every card anew.
                        let c = cols.get().max(1);
                        let slot = slot_w.get().round() as u32;
                        visible.get().map(move |i| (i, c, slot))
                    }
                    key=|k| *k
                    children=move |(i, c, slot)| {
                        let top = format!("{}px", (i / c) as f64 * CARD_H);
                        let left = format!("{}px", (i % c) as f64 * f64::from(slot));
                        // Cards fill their slot (less the gap); the chart fills the card.
                        let width = slot.saturating_sub(10);
                        view! {
                            <DeviceCard
                                index=i
                                snapshot=snapshot
                                engine=engine
                                settings=settings
                                errors=errors
                                top=top
                                left=left
                                width=width
                            />
                        }
                    }
                />
            </div>
        </section>
    }
}

/// A device's card: id, connection, latest temperature, command count, chart, exports and
/// its own parameters.
#[component]
fn DeviceCard(
    index: usize,
    snapshot: RwSignal<Snapshot>,
    engine: StoredValue<Option<Engine>, LocalStorage>,
    settings: RwSignal<Settings>,
    errors: RwSignal<Vec<String>>,
    top: String,
    left: String,
    width: u32,
) -> impl IntoView {
    let canvas = NodeRef::<html::Canvas>::new();
    Effect::new(move |_| {
        let Some(el) = canvas.get() else {
            return;
        };
        snapshot.with(|s| {
            if let Some(d) = s.devices.get(index) {
                chart::draw(el, d, s.band_min, s.band_max);
            }
        });
    });
    let field = move |f: fn(&crate::view_model::DeviceSnap) -> String| {
        move || snapshot.with(|s| s.devices.get(index).map(f).unwrap_or_default())
    };
    let export = move |kind: &'static str| {
        let file = engine.with_value(|e| {
            e.as_ref().and_then(|e| {
                e.devices().get(index).map(|d| {
                    let id = e.id(index).to_owned();
                    match kind {
                        "csv" => (format!("{id}.csv"), "text/csv", export::csv(&id, &d.series)),
                        _ => (
                            format!("{id}.ndjson"),
                            "application/x-ndjson",
                            export::ndjson(&id, &d.series),
                        ),
                    }
                })
            })
        });
        match file {
            Some((name, mime, text)) => {
                if let Err(e) = download(&name, mime, &text) {
                    errors.update(|v| v.push(e));
                }
            }
            None => errors
                .update(|v| v.push("start a fleet first: there is nothing to export".to_owned())),
        }
    };
    let editing = RwSignal::new(false);
    let draft = RwSignal::new(DeviceParams::default());
    // What is wrong with the editor's values, shown in it: "{key}: …" per field, or the
    // model's refusal. The editor stays open until they are fixed.
    let bad = RwSignal::new(Vec::<String>::new());
    let open_editor = move || {
        let current = engine.with_value(|e| e.as_ref().and_then(|e| e.device_params(index)));
        draft.set(current.unwrap_or_else(|| settings.with_untracked(|s| s.params)));
        bad.set(Vec::new());
        editing.update(|v| *v = !*v);
    };
    let apply = move || {
        if !bad.with_untracked(Vec::is_empty) {
            return;
        }
        let params = draft.get_untracked();
        let result = engine
            .try_update_value(|e| e.as_mut().map(|e| e.set_params(Some(index), params)))
            .flatten();
        match result {
            Some(Ok(())) => editing.set(false),
            Some(Err(e)) => bad.set(vec![format!("refused: {e}")]),
            None => errors.update(|v| v.push("start the fleet first".to_owned())),
        }
    };
    view! {
        <article
            class="card"
            data-testid="device-card"
            style:top=top
            style:left=left
            style:width=format!("{width}px")
        >
            <header>
                <span class="id" data-testid="device-id">{field(|d| d.id.to_string())}</span>
                <span
                    class=move || {
                        format!("link {}", field(|d| d.link.label().to_owned())())
                    }
                    data-testid="device-link"
                >
                    {field(|d| d.link.label().to_owned())}
                </span>
                <span class="temp">
                    {field(|d| d.temperature.map(|t| format!("{t:.2} °C")).unwrap_or_default())}
                </span>
                <span class="cmds" data-testid="device-commands">
                    {field(|d| format!("{} cmds", d.commands))}
                </span>
            </header>
            <canvas node_ref=canvas width=width.saturating_sub(14).to_string() height="140"></canvas>
            <footer>
                <button class="small" data-testid="export-csv" on:click=move |_| export("csv")>
                    "CSV"
                </button>
                <button class="small" data-testid="export-ndjson" on:click=move |_| export("ndjson")>
                    "NDJSON"
                </button>
                <button
                    class="small"
                    data-testid="edit-params"
                    aria-expanded=move || editing.get().to_string()
                    on:click=move |_| open_editor()
                >
                    {field(|d| if d.custom_params { "Parameters*" } else { "Parameters" }.to_owned())}
                </button>
            </footer>
            <Show when=move || editing.get()>
                <form
                    class="params"
                    data-testid="device-params"
                    on:submit=move |ev| {
                        ev.prevent_default();
                        apply();
                    }
                >
                    {PARAM_KEYS
                        .iter()
                        .map(|&key| {
                            view! {
                                <label>
                                    {param_label(key)}
                                    <input
                                        type="text"
                                        inputmode="decimal"
                                        size="5"
                                        data-testid=format!("device-param-{key}")
                                        prop:value=move || {
                                            draft.with(|p| {
                                                let mut p = *p;
                                                param_mut(&mut p, key).to_string()
                                            })
                                        }
                                        on:change=move |ev| {
                                            let text = event_target_value(&ev);
                                            let value = fleet_core::number::parse_f64(text.trim())
                                                .filter(|v| v.is_finite());
                                            bad.update(|b| {
                                                b.retain(|m| !m.starts_with(key) && !m.starts_with("refused"));
                                                if value.is_none() {
                                                    b.push(format!("{key}: {text:?} is not a number"));
                                                }
                                            });
                                            if let Some(v) = value {
                                                draft.update(|p| *param_mut(p, key) = v);
                                            }
                                        }
                                    />
                                </label>
                            }
                        })
                        .collect_view()}
                    <p class="field-error" role="alert" data-testid="device-params-error">
                        {move || bad.with(|b| b.join("; "))}
                    </p>
                    <button type="submit" class="small" data-testid="apply-params">"Apply"</button>
                </form>
            </Show>
        </article>
    }
}

/// How far the fleet is behind its clock, for the cloud panel: `0.0 s`, `12.3 s`.
pub fn lag_text(lag_ms: u64) -> String {
    // Integers only: no float formatting for it in the page's wasm.
    format!("{}.{} s", lag_ms / 1000, lag_ms % 1000 / 100)
}

/// The cloud's counters and its latest commands and alarm changes.
#[component]
fn CloudPanel(
    snapshot: RwSignal<Snapshot>,
    engine: StoredValue<Option<Engine>, LocalStorage>,
    errors: RwSignal<Vec<String>>,
) -> impl IntoView {
    let stat = move |f: fn(&Snapshot) -> String| move || snapshot.with(f);
    // The whole fleet's kept readings in one file, while it runs or after Stop.
    let export_all = move |csv: bool| {
        let parts = engine.with_value(|e| {
            e.as_ref().map(|e| {
                let ids = (0..e.devices().len()).map(|i| e.id(i));
                let series = e.devices().iter().map(|d| &d.series);
                export::fleet(csv, ids.zip(series))
            })
        });
        let (name, mime) = if csv {
            ("fleet.csv", "text/csv")
        } else {
            ("fleet.ndjson", "application/x-ndjson")
        };
        let result = match parts {
            Some(parts) => download_parts(name, mime, &parts),
            None => Err("start a fleet first: there is nothing to export".to_owned()),
        };
        if let Err(e) = result {
            errors.update(|v| v.push(e));
        }
    };
    view! {
        <aside class="cloud" data-testid="cloud">
            <h2>"Cloud"</h2>
            <p class="export-all">
                "Export the fleet: "
                <button class="small" data-testid="export-all-csv" on:click=move |_| export_all(true)>"CSV"</button>
                <button class="small" data-testid="export-all-ndjson" on:click=move |_| export_all(false)>"NDJSON"</button>
            </p>
            <dl class="stats">
                <dt>"published"</dt>
                <dd data-testid="stats-published">{stat(|s| s.stats.published.to_string())}</dd>
                <dt>"lag"</dt>
                <dd data-testid="stats-lag">{stat(|s| lag_text(s.stats.lag_ms))}</dd>
                <dt>"publish rate"</dt>
                <dd data-testid="stats-rate">{stat(|s| format!("{:.1}/s", s.stats.publish_rate))}</dd>
                <dt>"acked"</dt>
                <dd data-testid="stats-acked">{stat(|s| s.stats.transport.acked.to_string())}</dd>
                <dt>"unacked"</dt>
                <dd data-testid="stats-unacked">{stat(|s| s.stats.transport.unacked.to_string())}</dd>
                <dt>"dropped"</dt>
                <dd data-testid="stats-dropped">{stat(|s| s.stats.transport.dropped.to_string())}</dd>
                <dt>"connected"</dt>
                <dd data-testid="stats-links">{stat(|s| format!("{}/{}", s.stats.transport.links_up, s.devices.len()))}</dd>
                <dt>"reconnects"</dt>
                <dd data-testid="stats-reconnects">{stat(|s| s.stats.transport.reconnects.to_string())}</dd>
                <dt>"commands"</dt>
                <dd data-testid="stats-commands">{stat(|s| s.stats.commands.to_string())}</dd>
                <dt>"alarm changes"</dt>
                <dd data-testid="stats-alarm-changes">{stat(|s| s.stats.alarm_changes.to_string())}</dd>
                <dt>"round trip p50/p99"</dt>
                <dd data-testid="stats-rtt">
                    {stat(|s| match s.rtt {
                        Some((p50, p99)) => format!("{p50} / {p99} ms"),
                        None => "–".to_owned(),
                    })}
                </dd>
            </dl>
            <h3>"Latest"</h3>
            <ol class="log" data-testid="log">
                {move || {
                    snapshot
                        .with(|s| {
                            s.log
                                .iter()
                                .map(|l| {
                                    let text = l.text.clone();
                                    view! { <li class=l.kind>{text}</li> }
                                })
                                .collect_view()
                        })
                }}
            </ol>
        </aside>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_speeds_up_and_does_not_jump_after_a_rebase() {
        let mut c = SimClock::new(1000, 10);
        assert_eq!(c.at(1000), 1000);
        assert_eq!(c.at(1100), 2000);
        c.rebase(5000, 2000);
        assert_eq!(c.at(5000), 2000);
        assert_eq!(c.at(5010), 2100);
    }

    #[test]
    fn an_in_page_engine_starts_its_history_warmup_seconds_back() {
        const T0: u64 = 1_764_230_400_000;
        let mut engine = in_page_engine(EngineConfig::default(), T0, 60).unwrap();
        assert_eq!(engine.now_ms(), T0 - 60_000);
        assert_eq!(engine.advance(T0, STEP_MS, || true), T0);
        // 12 devices, one reading every 2 s for 60 s.
        assert!(
            engine.stats().published >= 12 * 30,
            "{}",
            engine.stats().published
        );
    }

    #[test]
    fn only_the_rows_in_view_and_one_each_side_are_cards() {
        // 1000 devices, 3 columns, 2.5 rows tall, at the top.
        let (range, cols) = visible_cards(1000, 3.0 * CARD_W + 10.0, 2.5 * CARD_H, 0.0);
        assert_eq!(cols, 3);
        assert_eq!(range, 0..12);
        // Scrolled to row 100.
        let (range, _) = visible_cards(1000, 3.0 * CARD_W, 2.5 * CARD_H, 100.0 * CARD_H);
        assert_eq!(range, 297..312);
        // The end of the list, and a window narrower than a card.
        let (range, _) = visible_cards(10, 3.0 * CARD_W, 2.5 * CARD_H, 10_000.0);
        assert_eq!(range, 10..10);
        let (range, cols) = visible_cards(5, 100.0, 0.0, 0.0);
        assert_eq!((range, cols), (0..2, 1));
    }

    #[test]
    fn config_json_of_the_local_stack_or_of_the_template_and_anything_else_none() {
        // An older stack's: the broker only.
        let local = r#"{"mode":"local","mqtt":{"url":"ws://127.0.0.1:8083/mqtt"}}"#;
        assert_eq!(
            host_config(local),
            Some(HostConfig::Local {
                url: "ws://127.0.0.1:8083/mqtt".into(),
                namespace: None,
                login: None,
            })
        );
        // Today's: a namespace and its credential, issued to this page.
        let issued = r#"{"mode":"local","mqtt":{"url":"ws://127.0.0.1:8083/mqtt",
            "username":"page:w0a1b2c3d4","password":"tok-en_1"},"namespace":"w0a1b2c3d4",
            "topics":{"telemetry":"dt/monitoring/+/+/telemetry"},"band":{"min":26,"max":28}}"#;
        let login = Login {
            username: "page:w0a1b2c3d4".into(),
            password: "tok-en_1".into(),
        };
        assert_eq!(
            host_config(issued),
            Some(HostConfig::Local {
                url: "ws://127.0.0.1:8083/mqtt".into(),
                namespace: Some("w0a1b2c3d4".into()),
                login: Some(login),
            })
        );
        // The shape of the SAM template's `WebConfig` output (an older one's
        // `client_id_prefix` is ignored).
        let aws = r#"{"mode":"aws","region":"eu-west-1",
            "mqtt":{"url":"wss://abc-ats.iot.eu-west-1.amazonaws.com/mqtt","endpoint":"abc-ats.iot.eu-west-1.amazonaws.com","client_id_prefix":"fleet-web-"},
            "cognito":{"identity_pool_id":"eu-west-1:42"},
            "topics":{"telemetry":"dt/monitoring/+/+/telemetry","basic_ingest_prefix":"$aws/rules/fleet_telemetry/"},
            "browser_building":"browser-eu",
            "band":{"min":26,"max":28},"dashboard_devices":["d-0001"]}"#;
        #[cfg(feature = "aws")]
        {
            let Some(HostConfig::Aws(pairs)) = host_config(aws) else {
                panic!("not aws");
            };
            let mut s = crate::settings::Settings::default();
            let mut warnings = Vec::new();
            s.apply(pairs.iter().map(|(k, v)| (*k, v.as_str())), &mut warnings);
            assert!(warnings.is_empty(), "{warnings:?}");
            assert_eq!(s.pool.as_deref(), Some("eu-west-1:42"));
            assert_eq!(s.region, "eu-west-1");
            assert_eq!(s.rule.as_deref(), Some("fleet_telemetry"));
            assert_eq!(s.building.as_deref(), Some("browser-eu"));
        }
        #[cfg(not(feature = "aws"))]
        assert_eq!(host_config(aws), None);
        assert_eq!(host_config("<!doctype html><html>"), None);
        assert_eq!(host_config(r#"{"mode":"aws"}"#), None);
        assert_eq!(host_config(r#"{"mode":"local"}"#), None);
        assert_eq!(host_config(r#"{"mode":"cloud"}"#), None);
    }
}
