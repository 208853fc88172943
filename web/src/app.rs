//! The Leptos components of the in-page mode: controls, the fleet overview, the device
//! cards with their charts, and the cloud panel.
//!
//! One `requestAnimationFrame` loop calls [`Engine::tick`] every frame; a few times a
//! second ([`REDRAW_MS`]) it copies a [`Snapshot`] into a signal, which is all the
//! components read. The loop is cancelled on Pause, Stop and unmount.

use std::cell::Cell;
use std::rc::Rc;

use leptos::html;
use leptos::prelude::*;

use crate::chart;
use crate::engine::{Engine, EngineConfig};
use crate::view_model::{Level, MAX_CARDS, Snapshot};

/// Devices started by default (and by `?autostart` without `?devices=`).
pub const DEFAULT_DEVICES: usize = 12;

/// The largest fleet the count input accepts.
pub const MAX_DEVICES: usize = 1000;

/// Minimum time between two snapshots (and so between two chart redraws), ms.
pub const REDRAW_MS: u64 = 250;

/// Whether the fleet runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// No fleet (the last picture stays on screen).
    Stopped,
    /// Ticking every frame.
    Running,
    /// Fleet kept, loop cancelled.
    Paused,
}

impl RunState {
    /// The status label.
    pub fn label(self) -> &'static str {
        match self {
            RunState::Stopped => "stopped",
            RunState::Running => "running",
            RunState::Paused => "paused",
        }
    }
}

/// The largest speed-up `?speed=` accepts.
pub const MAX_SPEED: u64 = 100;

/// The longest history `?warmup=` accepts, seconds.
pub const MAX_WARMUP_S: u64 = 3600;

/// Simulated seconds run at once on start by default, so the page shows curves on open.
pub const DEFAULT_WARMUP_S: u64 = 300;

/// Page options from the query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Start a fleet on load: on unless `?autostart=0` (or `false`).
    pub autostart: bool,
    /// `?devices=`, clamped to `1..=MAX_DEVICES`.
    pub devices: usize,
    /// `?speed=`: simulated ms per real ms, `1..=MAX_SPEED`.
    pub speed: u64,
    /// `?warmup=`: simulated seconds run at once on start, `0..=MAX_WARMUP_S`.
    pub warmup_s: u64,
}

impl Options {
    /// Parses the raw query values; missing or malformed ones take their defaults.
    pub fn parse(
        autostart: Option<&str>,
        devices: Option<&str>,
        speed: Option<&str>,
        warmup: Option<&str>,
    ) -> Options {
        fn num(v: Option<&str>) -> Option<u64> {
            v.and_then(|v| v.trim().parse::<u64>().ok())
        }
        Options {
            autostart: autostart.is_none_or(|v| v != "0" && v != "false"),
            devices: num(devices)
                .map_or(DEFAULT_DEVICES, |n| n.min(MAX_DEVICES as u64) as usize)
                .max(1),
            speed: num(speed).unwrap_or(1).clamp(1, MAX_SPEED),
            warmup_s: num(warmup).unwrap_or(DEFAULT_WARMUP_S).min(MAX_WARMUP_S),
        }
    }
}

fn url_options() -> Options {
    let search = window().location().search().unwrap_or_default();
    let Ok(params) = web_sys::UrlSearchParams::new_with_str(&search) else {
        return Options::parse(None, None, None, None);
    };
    Options::parse(
        params.get("autostart").as_deref(),
        params.get("devices").as_deref(),
        params.get("speed").as_deref(),
        params.get("warmup").as_deref(),
    )
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

/// Builds a fleet whose clock reads `now`, after running `warmup_s` simulated seconds of
/// history (20 steps a second), so its charts start full.
pub fn warmed_up_engine(
    config: EngineConfig,
    now: u64,
    warmup_s: u64,
) -> Result<Engine, crate::engine::EngineError> {
    let from = now.saturating_sub(warmup_s * 1000);
    let mut engine = Engine::new(config, from)?;
    let mut t = from;
    while t < now {
        engine.tick(t);
        t += 50;
    }
    engine.tick(now);
    Ok(engine)
}

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// A cancellable `requestAnimationFrame` loop.
struct FrameLoop {
    active: Cell<bool>,
    handle: Cell<Option<AnimationFrameRequestHandle>>,
    on_frame: Box<dyn Fn()>,
}

impl FrameLoop {
    fn start(this: &Rc<FrameLoop>) {
        if !this.active.replace(true) {
            FrameLoop::frame(Rc::clone(this));
        }
    }

    fn stop(&self) {
        self.active.set(false);
        if let Some(handle) = self.handle.take() {
            handle.cancel();
        }
    }

    fn frame(this: Rc<FrameLoop>) {
        if !this.active.get() {
            return;
        }
        (this.on_frame)();
        let next = Rc::clone(&this);
        if let Ok(handle) = request_animation_frame_with_handle(move || FrameLoop::frame(next)) {
            this.handle.set(Some(handle));
        }
    }
}

/// The whole page.
#[component]
pub fn App() -> impl IntoView {
    let options = url_options();
    let defaults = EngineConfig::default();
    let band_min = defaults.pipeline.policy.band_min;
    let band_max = defaults.pipeline.policy.band_max;

    let device_count = RwSignal::new(options.devices);
    let state = RwSignal::new(RunState::Stopped);
    let error = RwSignal::new(None::<String>);
    let snapshot = RwSignal::new(Snapshot {
        band_min,
        band_max,
        ..Snapshot::default()
    });
    let engine: StoredValue<Option<Engine>, LocalStorage> = StoredValue::new_local(None);
    let last_snapshot = StoredValue::new(0_u64);
    let clock = StoredValue::new(SimClock::new(now_ms(), options.speed));
    let sim_now = StoredValue::new(0_u64);

    let on_frame = move || {
        let now = clock.with_value(|c| c.at(now_ms()));
        sim_now.set_value(now);
        engine.update_value(|e| {
            if let Some(e) = e {
                e.tick(now);
            }
        });
        if now < last_snapshot.get_value() + REDRAW_MS {
            return;
        }
        last_snapshot.set_value(now);
        let snap = engine.with_value(|e| e.as_ref().map(|e| Snapshot::of(e, band_min, band_max)));
        if let Some(snap) = snap {
            snapshot.set(snap);
        }
    };
    let frames: StoredValue<Rc<FrameLoop>, LocalStorage> =
        StoredValue::new_local(Rc::new(FrameLoop {
            active: Cell::new(false),
            handle: Cell::new(None),
            on_frame: Box::new(on_frame),
        }));

    let start = move || {
        frames.with_value(|f| f.stop());
        let config = EngineConfig {
            devices: device_count.get_untracked(),
            ..EngineConfig::default()
        };
        let real_now = now_ms();
        clock.set_value(SimClock::new(real_now, options.speed));
        match warmed_up_engine(config, real_now, options.warmup_s) {
            Ok(e) => {
                engine.set_value(Some(e));
                last_snapshot.set_value(0);
                error.set(None);
                state.set(RunState::Running);
                frames.with_value(FrameLoop::start);
            }
            Err(e) => error.set(Some(e.to_string())),
        }
    };
    // The picture at the moment of a Pause or Stop, not up to REDRAW_MS before it.
    let refresh = move || {
        let snap = engine.with_value(|e| e.as_ref().map(|e| Snapshot::of(e, band_min, band_max)));
        if let Some(snap) = snap {
            snapshot.set(snap);
        }
    };
    let pause_resume = move || match state.get_untracked() {
        RunState::Running => {
            frames.with_value(|f| f.stop());
            refresh();
            state.set(RunState::Paused);
        }
        RunState::Paused => {
            let sim = sim_now.get_value();
            clock.update_value(|c| c.rebase(now_ms(), sim));
            state.set(RunState::Running);
            frames.with_value(FrameLoop::start);
        }
        RunState::Stopped => {}
    };
    let stop = move || {
        frames.with_value(|f| f.stop());
        refresh();
        engine.set_value(None);
        state.set(RunState::Stopped);
    };
    on_cleanup(move || {
        let _ = frames.try_with_value(|f| f.stop());
    });
    if options.autostart {
        start();
    }

    let stopped = move || state.get() == RunState::Stopped;
    view! {
        <header class="top">
            <h1>"Fleet"</h1>
            <div class="controls">
                <label>
                    "Devices "
                    <input
                        type="number"
                        min="1"
                        max=MAX_DEVICES.to_string()
                        data-testid="device-count"
                        prop:value=move || device_count.get().to_string()
                        on:change=move |ev| {
                            if let Ok(n) = event_target_value(&ev).trim().parse::<usize>() {
                                device_count.set(n.clamp(1, MAX_DEVICES));
                            }
                        }
                    />
                </label>
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
                <Show when=move || { options.speed > 1 }>
                    <span class="speed" data-testid="speed">{format!("×{}", options.speed)}</span>
                </Show>
            </div>
            <Legend />
        </header>
        <Show when=move || error.get().is_some()>
            <p class="error" data-testid="error">{move || error.get().unwrap_or_default()}</p>
        </Show>
        <Overview snapshot=snapshot />
        <main class="layout">
            <section class="cards" data-testid="device-cards">
                <For
                    each=move || 0..snapshot.with(|s| s.devices.len().min(MAX_CARDS))
                    key=|i| *i
                    children=move |i| view! { <DeviceCard index=i snapshot=snapshot /> }
                />
                <Show when=move || snapshot.with(|s| s.devices.len() > MAX_CARDS)>
                    <p class="more">
                        {move || {
                            snapshot
                                .with(|s| {
                                    format!("Showing {MAX_CARDS} of {} devices.", s.devices.len())
                                })
                        }}
                    </p>
                </Show>
            </section>
            <CloudPanel snapshot=snapshot />
        </main>
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

/// One tile per device, coloured by its latest temperature against the band.
#[component]
fn Overview(snapshot: RwSignal<Snapshot>) -> impl IntoView {
    view! {
        <section class="overview" data-testid="overview">
            <For
                each=move || 0..snapshot.with(|s| s.devices.len())
                key=|i| *i
                children=move |i| {
                    let level = move || {
                        snapshot
                            .with(|s| {
                                s.devices
                                    .get(i)
                                    .map_or(
                                        Level::Unknown,
                                        |d| Level::of(d.temperature, s.band_min, s.band_max),
                                    )
                            })
                    };
                    let title = move || {
                        snapshot
                            .with(|s| {
                                s.devices
                                    .get(i)
                                    .map(|d| match d.temperature {
                                        Some(t) => format!("{}: {t:.2} °C", d.id),
                                        None => d.id.clone(),
                                    })
                                    .unwrap_or_default()
                            })
                    };
                    view! { <span class=move || level().class() title=title data-testid="device-tile"></span> }
                }
            />
        </section>
    }
}

/// A device's card: id, latest temperature, command count and chart.
#[component]
fn DeviceCard(index: usize, snapshot: RwSignal<Snapshot>) -> impl IntoView {
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
    view! {
        <article class="card" data-testid="device-card">
            <header>
                <span class="id" data-testid="device-id">{field(|d| d.id.clone())}</span>
                <span class="temp">
                    {field(|d| d.temperature.map(|t| format!("{t:.2} °C")).unwrap_or_default())}
                </span>
                <span class="cmds" data-testid="device-commands">
                    {field(|d| format!("{} cmds", d.commands))}
                </span>
            </header>
            <canvas node_ref=canvas width="320" height="140"></canvas>
        </article>
    }
}

/// The cloud's counters and its latest decisions and alarm changes.
#[component]
fn CloudPanel(snapshot: RwSignal<Snapshot>) -> impl IntoView {
    let stat = move |f: fn(&Snapshot) -> u64| move || snapshot.with(|s| f(s).to_string());
    view! {
        <aside class="cloud" data-testid="cloud">
            <h2>"Cloud"</h2>
            <dl class="stats">
                <dt>"published"</dt>
                <dd data-testid="stats-published">{stat(|s| s.stats.published)}</dd>
                <dt>"stored"</dt>
                <dd data-testid="stats-stored">{stat(|s| s.stats.stored)}</dd>
                <dt>"commands"</dt>
                <dd data-testid="stats-commands">{stat(|s| s.stats.commands)}</dd>
                <dt>"alarm changes"</dt>
                <dd data-testid="stats-alarm-changes">{stat(|s| s.stats.alarm_changes)}</dd>
                <dt>"rejected"</dt>
                <dd data-testid="stats-rejected">{stat(|s| s.stats.rejected)}</dd>
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
    fn options_autostart_by_default_and_clamp_what_they_read() {
        let defaults = Options::parse(None, None, None, None);
        assert_eq!(
            defaults,
            Options {
                autostart: true,
                devices: DEFAULT_DEVICES,
                speed: 1,
                warmup_s: DEFAULT_WARMUP_S,
            }
        );
        let o = Options::parse(Some("0"), Some("0"), Some("1000"), Some("99999"));
        assert_eq!(
            (o.autostart, o.devices, o.speed, o.warmup_s),
            (false, 1, MAX_SPEED, MAX_WARMUP_S)
        );
        let o = Options::parse(Some("false"), Some("99999"), Some("x"), Some("0"));
        assert_eq!(
            (o.autostart, o.devices, o.speed, o.warmup_s),
            (false, MAX_DEVICES, 1, 0)
        );
        assert_eq!(
            Options::parse(Some("1"), Some(" 40 "), None, None).devices,
            40
        );
    }

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
    fn a_warmed_up_engine_starts_with_history() {
        const T0: u64 = 1_764_230_400_000;
        let engine = warmed_up_engine(EngineConfig::default(), T0, 60).unwrap();
        // 12 devices, one reading every 2 s for 60 s.
        assert!(
            engine.stats().published >= 12 * 30,
            "{}",
            engine.stats().published
        );
        let cold = warmed_up_engine(EngineConfig::default(), T0, 0).unwrap();
        assert!(cold.stats().published <= 1);
    }
}
