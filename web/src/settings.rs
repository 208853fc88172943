//! The page's settings and their one text form, a query string: the shareable URL and the
//! copy kept in `localStorage` are the same thing. Precedence: defaults, then the stored
//! copy, then the URL. A value that cannot be used is reported in plain words and the
//! previous one is kept.
//!
//! Nothing secret is ever a setting: the AWS mode's credentials live in memory only
//! (`aws.rs`); its endpoint, region and pool id are not secrets.

use fleet_core::DeviceParams;

/// The largest fleet the page runs (in gateway mode against a broker; past 200 devices
/// `connections=auto` uses gateways). Memory stays bounded: big fleets keep fewer chart
/// points per device and warm up for less (`engine::series_capacity`, `engine::warmup_s`).
/// 100,000 in page and 50,000 through gateways keep up with real time at the default 2 s
/// period (`e2e/bench/longtasks.mjs`, BENCHMARKS.md).
pub const MAX_DEVICES: usize = 100_000;

/// The largest speed-up (in-page mode only).
pub const MAX_SPEED: u64 = 100;

/// The longest history simulated at start, seconds (in-page mode only).
pub const MAX_WARMUP_S: u64 = 3600;

/// Where the cloud is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Use the local stack if the page's host serves `config.json`, otherwise in-page.
    Auto,
    /// The cloud runs in the page.
    InPage,
    /// `fleet local`'s broker over WebSocket.
    Local,
    /// AWS IoT Core over a presigned `wss://` URL.
    Aws,
}

impl Mode {
    /// The query-string value.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::InPage => "in-page",
            Mode::Local => "local",
            Mode::Aws => "aws",
        }
    }

    fn parse(s: &str) -> Option<Mode> {
        match s {
            "auto" => Some(Mode::Auto),
            "in-page" | "inpage" => Some(Mode::InPage),
            "local" => Some(Mode::Local),
            "aws" => Some(Mode::Aws),
            _ => None,
        }
    }
}

/// How the devices connect to a broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionSetting {
    /// Per device up to [`PER_DEVICE_CAP`] devices, gateways beyond.
    Auto,
    /// One connection per device.
    PerDevice,
    /// This many gateway connections.
    Gateways(usize),
}

/// The most devices `auto` gives their own connection: Chrome allows about 255 WebSockets
/// per profile, and the page needs a few more (alarms, the page's host).
pub const PER_DEVICE_CAP: usize = 200;

/// Publishes per second one gateway carries in `auto` against IoT Core (which allows 100
/// per connection).
pub const GATEWAY_PUBLISH_RATE: f64 = 90.0;

/// Publishes per second one gateway carries in `auto` against `fleet local`, which has no
/// such limit: fewer, busier sockets cost the page less (25,000 devices at 1 reading/s on
/// 250 gateways gave long tasks, on 25 none; see BENCHMARKS.md).
pub const LOCAL_GATEWAY_PUBLISH_RATE: f64 = 1000.0;

/// The most connections the page opens.
pub const MAX_CONNECTIONS: usize = 250;

impl ConnectionSetting {
    /// The query-string value.
    pub fn to_query(self) -> String {
        match self {
            ConnectionSetting::Auto => "auto".to_owned(),
            ConnectionSetting::PerDevice => "per-device".to_owned(),
            ConnectionSetting::Gateways(n) => n.to_string(),
        }
    }

    /// What to open for `devices` devices each publishing every `period_s` seconds, `auto`
    /// giving each gateway `per_gateway` publishes a second: `None` for one connection per
    /// device, `Some(n)` for `n` gateways.
    pub fn gateways(self, devices: usize, period_s: f64, per_gateway: f64) -> Option<usize> {
        match self {
            ConnectionSetting::PerDevice => None,
            ConnectionSetting::Gateways(n) => Some(n),
            ConnectionSetting::Auto if devices <= PER_DEVICE_CAP => None,
            ConnectionSetting::Auto => {
                let rate = devices as f64 / period_s.max(0.001);
                let n = (rate / per_gateway.max(1.0)).ceil() as usize;
                Some(n.clamp(1, MAX_CONNECTIONS))
            }
        }
    }
}

/// Everything the controls set.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Where the cloud is.
    pub mode: Mode,
    /// Broker WebSocket URL for local mode; `None` takes it from `config.json`.
    pub broker: Option<String>,
    /// AWS mode: the IoT Core data endpoint (`xxxx-ats.iot.REGION.amazonaws.com`). The
    /// AWS fields are read from the URL only in builds with the `aws` feature.
    pub endpoint: Option<String>,
    /// AWS mode: the region.
    pub region: String,
    /// AWS mode: the Cognito Identity Pool id (none: pasted credentials).
    pub pool: Option<String>,
    /// AWS mode: where Cognito is, when not AWS's endpoint for the region (a stand-in).
    pub cognito: Option<String>,
    /// AWS mode: publish telemetry through this IoT rule's Basic Ingest topics
    /// (`$aws/rules/<rule>/dt/monitoring/…`), which IoT Core does not charge as messages.
    pub rule: Option<String>,
    /// AWS mode: the building every device reports in: the template's
    /// `browser_building`, to which a Cognito guest is confined (`None`: `browser` for a
    /// guest; with pasted credentials, the buildings setting).
    pub building: Option<String>,
    /// Number of devices.
    pub devices: usize,
    /// Buildings.
    pub buildings: usize,
    /// Devices started per second (0: all at once).
    pub ramp_per_s: u32,
    /// Connections to a broker.
    pub connections: ConnectionSetting,
    /// Seed of phases and noise.
    pub seed: u64,
    /// Fleet-wide device parameters.
    pub params: DeviceParams,
    /// Simulated ms per real ms (in-page mode).
    pub speed: u64,
    /// Simulated seconds run at start (in-page mode).
    pub warmup_s: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mode: Mode::Auto,
            broker: None,
            endpoint: None,
            region: "us-east-1".to_owned(),
            pool: None,
            cognito: None,
            rule: None,
            building: None,
            devices: 12,
            buildings: 3,
            ramp_per_s: 50,
            connections: ConnectionSetting::Auto,
            seed: 1,
            params: DeviceParams::default(),
            speed: 1,
            warmup_s: 300,
        }
    }
}

impl Settings {
    /// Applies `key=value` pairs over `self`. Unknown keys are ignored (the URL may carry
    /// other things); bad values are reported and leave the setting as it was.
    pub fn apply<'a>(
        &mut self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        warnings: &mut Vec<String>,
    ) {
        for (key, value) in pairs {
            let value = value.trim();
            let mut bad = |what: &str| warnings.push(format!("{key}={value:?}: {what}; ignored"));
            match key {
                "mode" => match Mode::parse(value) {
                    Some(m) => self.mode = m,
                    None => bad("use auto, in-page or local"),
                },
                "broker" if value.is_empty() => self.broker = None,
                "broker" => {
                    if value.starts_with("ws://") || value.starts_with("wss://") {
                        self.broker = Some(value.to_owned());
                    } else {
                        bad("a broker URL starts with ws:// or wss://");
                    }
                }
                #[cfg(feature = "aws")]
                "endpoint" if value.is_empty() => self.endpoint = None,
                #[cfg(feature = "aws")]
                "endpoint" => {
                    // A host name, as `aws iot describe-endpoint` prints it.
                    let host = value
                        .strip_prefix("wss://")
                        .or_else(|| value.strip_prefix("https://"))
                        .unwrap_or(value);
                    let host = host.strip_suffix("/mqtt").unwrap_or(host);
                    let host = host.strip_suffix('/').unwrap_or(host);
                    if !host.is_empty()
                        && host
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-.:".contains(c))
                    {
                        self.endpoint = Some(host.to_owned());
                    } else {
                        bad(
                            "an IoT Core endpoint host, e.g. abc123-ats.iot.us-east-1.amazonaws.com",
                        );
                    }
                }
                #[cfg(feature = "aws")]
                "region" => {
                    if !value.is_empty()
                        && value
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    {
                        self.region = value.to_owned();
                    } else {
                        bad("a region such as us-east-1");
                    }
                }
                #[cfg(feature = "aws")]
                "pool" if value.is_empty() => self.pool = None,
                #[cfg(feature = "aws")]
                "pool" => {
                    if value
                        .split_once(':')
                        .is_some_and(|(r, id)| !r.is_empty() && !id.is_empty())
                    {
                        self.pool = Some(value.to_owned());
                    } else {
                        bad("an Identity Pool id, REGION:GUID");
                    }
                }
                #[cfg(feature = "aws")]
                "cognito" if value.is_empty() => self.cognito = None,
                #[cfg(feature = "aws")]
                "cognito" => {
                    if value.starts_with("https://") || value.starts_with("http://") {
                        self.cognito = Some(value.to_owned());
                    } else {
                        bad("an http(s) URL");
                    }
                }
                #[cfg(feature = "aws")]
                "rule" if value.is_empty() => self.rule = None,
                #[cfg(feature = "aws")]
                "rule" => {
                    // IoT rule names: letters, digits and _ only, up to 128.
                    if value.len() <= 128
                        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        self.rule = Some(value.to_owned());
                    } else {
                        bad("an IoT rule name: up to 128 letters, digits or _");
                    }
                }
                #[cfg(feature = "aws")]
                "building" if value.is_empty() => self.building = None,
                #[cfg(feature = "aws")]
                "building" => match fleet_core::BuildingId::try_from(value) {
                    Ok(_) => self.building = Some(value.to_owned()),
                    Err(_) => bad("a building id: up to 64 letters, digits, - or _"),
                },
                // Client ids follow the page's namespace now (`identity.rs`): brokers bind
                // them to it, so a prefix of the user's choosing can only be refused.
                // Old links still load.
                "prefix" => bad("no longer used: client ids follow the page's namespace"),
                "devices" => match value.parse::<usize>() {
                    Ok(n) if (1..=MAX_DEVICES).contains(&n) => self.devices = n,
                    _ => bad(&format!("a whole number from 1 to {MAX_DEVICES}")),
                },
                "buildings" => match value.parse::<usize>() {
                    Ok(n) if (1..=1000).contains(&n) => self.buildings = n,
                    _ => bad("a whole number from 1 to 1000"),
                },
                "ramp" => match value.parse::<u32>() {
                    Ok(n) if n <= 10_000 => self.ramp_per_s = n,
                    _ => bad("devices per second, 0 to 10000 (0: all at once)"),
                },
                "connections" => match value {
                    "auto" => self.connections = ConnectionSetting::Auto,
                    "per-device" => self.connections = ConnectionSetting::PerDevice,
                    n => match n.parse::<usize>() {
                        Ok(n) if (1..=MAX_CONNECTIONS).contains(&n) => {
                            self.connections = ConnectionSetting::Gateways(n)
                        }
                        _ => bad(&format!(
                            "auto, per-device, or a number of gateways from 1 to {MAX_CONNECTIONS}"
                        )),
                    },
                },
                "seed" => match value.parse::<u64>() {
                    Ok(n) => self.seed = n,
                    _ => bad("a whole number"),
                },
                "speed" => match value.parse::<u64>() {
                    Ok(n) if (1..=MAX_SPEED).contains(&n) => self.speed = n,
                    _ => bad(&format!("a whole number from 1 to {MAX_SPEED}")),
                },
                "warmup" => match value.parse::<u64>() {
                    Ok(n) if n <= MAX_WARMUP_S => self.warmup_s = n,
                    _ => bad(&format!("seconds, 0 to {MAX_WARMUP_S}")),
                },
                "velocity" | "frequency" | "factor" | "min_temp" | "min_hum" => {
                    let Some(v) = fleet_core::number::parse_f64(value) else {
                        bad("a number");
                        continue;
                    };
                    let mut params = self.params;
                    *param_mut(&mut params, key) = v;
                    match params.validate() {
                        Ok(()) => self.params = params,
                        Err(e) => bad(&e.to_string()),
                    }
                }
                _ => {}
            }
        }
    }

    /// The settings that differ from the defaults, as a query string (without `?`), in a
    /// fixed order.
    pub fn to_query(&self) -> String {
        let d = Settings::default();
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if self.mode != d.mode {
            pairs.push(("mode", self.mode.as_str().to_owned()));
        }
        if let Some(b) = &self.broker {
            pairs.push(("broker", b.clone()));
        }
        #[cfg(feature = "aws")]
        {
            for (key, value, default) in [
                ("endpoint", &self.endpoint, &d.endpoint),
                ("pool", &self.pool, &d.pool),
                ("cognito", &self.cognito, &d.cognito),
                ("rule", &self.rule, &d.rule),
                ("building", &self.building, &d.building),
            ] {
                if let Some(v) = value.as_ref().filter(|v| Some(*v) != default.as_ref()) {
                    pairs.push((key, v.clone()));
                }
            }
            if self.region != d.region {
                pairs.push(("region", self.region.clone()));
            }
        }
        if self.connections != d.connections {
            pairs.push(("connections", self.connections.to_query()));
        }
        let numbers = [
            ("devices", self.devices as u64, d.devices as u64),
            ("buildings", self.buildings as u64, d.buildings as u64),
            ("ramp", u64::from(self.ramp_per_s), u64::from(d.ramp_per_s)),
            ("seed", self.seed, d.seed),
            ("speed", self.speed, d.speed),
            ("warmup", self.warmup_s, d.warmup_s),
        ];
        for (key, v, default) in numbers {
            if v != default {
                pairs.push((key, v.to_string()));
            }
        }
        for key in PARAM_KEYS {
            let mut p = self.params;
            let v = *param_mut(&mut p, key);
            let mut dp = d.params;
            if v != *param_mut(&mut dp, key) {
                pairs.push((key, v.to_string()));
            }
        }
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// The device parameters' query keys, in display order.
pub const PARAM_KEYS: [&str; 5] = ["velocity", "frequency", "factor", "min_temp", "min_hum"];

/// The parameter behind a query key. Keys come from [`PARAM_KEYS`].
pub fn param_mut<'a>(params: &'a mut DeviceParams, key: &str) -> &'a mut f64 {
    match key {
        "velocity" => &mut params.velocity,
        "frequency" => &mut params.update_frequency_s,
        "factor" => &mut params.remediation_factor,
        "min_temp" => &mut params.min_temp,
        _ => &mut params.min_hum,
    }
}

/// Percent-encodes what a query value cannot hold as is.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b':' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(&str, &str)> {
        q.split('&').filter_map(|kv| kv.split_once('=')).collect()
    }

    #[test]
    fn defaults_give_an_empty_query_and_changes_round_trip() {
        assert_eq!(Settings::default().to_query(), "");
        let mut s = Settings::default();
        let mut warnings = Vec::new();
        s.apply(
            pairs("mode=local&broker=ws://127.0.0.1:8083/mqtt&devices=200&ramp=0&velocity=2.5&frequency=1"),
            &mut warnings,
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(s.mode, Mode::Local);
        assert_eq!(s.devices, 200);
        assert_eq!(s.params.velocity, 2.5);
        let q = s.to_query();
        assert_eq!(
            q,
            "mode=local&broker=ws://127.0.0.1:8083/mqtt&devices=200&ramp=0&velocity=2.5&frequency=1"
        );
        let mut back = Settings::default();
        back.apply(pairs(&q), &mut warnings);
        assert_eq!(back, s);
    }

    #[test]
    fn connections_are_per_device_up_to_the_cap_then_gateways_at_the_publish_rate() {
        let auto = ConnectionSetting::Auto;
        let iot = GATEWAY_PUBLISH_RATE;
        assert_eq!(auto.gateways(200, 1.0, iot), None);
        // 25,000 devices every 2 s: 12,500 publishes/s, 90 per gateway.
        assert_eq!(auto.gateways(25_000, 2.0, iot), Some(139));
        assert_eq!(auto.gateways(1000, 0.001, iot), Some(MAX_CONNECTIONS));
        // Against `fleet local`: 1,000 per gateway, 25 for 25,000 devices at 1 reading/s.
        assert_eq!(
            auto.gateways(25_000, 1.0, LOCAL_GATEWAY_PUBLISH_RATE),
            Some(25)
        );
        assert_eq!(auto.gateways(201, 1.0, LOCAL_GATEWAY_PUBLISH_RATE), Some(1));
        assert_eq!(ConnectionSetting::PerDevice.gateways(1000, 1.0, iot), None);
        assert_eq!(
            ConnectionSetting::Gateways(10).gateways(5000, 1.0, iot),
            Some(10)
        );
        let mut s = Settings::default();
        let mut warnings = Vec::new();
        s.apply(pairs("connections=10"), &mut warnings);
        assert_eq!(s.connections, ConnectionSetting::Gateways(10));
        assert_eq!(s.to_query(), "connections=10");
        s.apply(pairs("connections=0&connections=many"), &mut warnings);
        assert_eq!(warnings.len(), 2);
        s.apply(pairs("connections=per-device"), &mut warnings);
        assert_eq!(s.connections, ConnectionSetting::PerDevice);
    }

    #[cfg(feature = "aws")]
    #[test]
    fn aws_settings_round_trip_and_hold_no_secret() {
        let mut s = Settings::default();
        let mut warnings = Vec::new();
        s.apply(
            pairs("mode=aws&endpoint=wss://abc-ats.iot.eu-west-1.amazonaws.com/mqtt&region=eu-west-1&pool=eu-west-1:1f2e&rule=fleet_telemetry&building=browser"),
            &mut warnings,
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(s.mode, Mode::Aws);
        assert_eq!(
            s.endpoint.as_deref(),
            Some("abc-ats.iot.eu-west-1.amazonaws.com")
        );
        let q = s.to_query();
        assert_eq!(
            q,
            "mode=aws&endpoint=abc-ats.iot.eu-west-1.amazonaws.com&pool=eu-west-1:1f2e&rule=fleet_telemetry&building=browser&region=eu-west-1"
        );
        let mut back = Settings::default();
        back.apply(pairs(&q), &mut warnings);
        assert_eq!(back, s);
        s.apply(
            pairs(
                "endpoint=a b&region=EU&pool=nope&cognito=ftp://x&building=a/b&rule=a-b&secret=x",
            ),
            &mut warnings,
        );
        assert_eq!(warnings.len(), 6, "{warnings:?}");
        assert_eq!(back, s);
    }

    #[test]
    fn bad_values_are_reported_and_leave_the_setting_as_it_was() {
        let mut s = Settings::default();
        let mut warnings = Vec::new();
        s.apply(
            pairs("devices=0&devices=abc&speed=1000&mode=cloud&broker=http://x&frequency=NaN&frequency=-1&other=1"),
            &mut warnings,
        );
        assert_eq!(s, Settings::default());
        assert_eq!(warnings.len(), 7, "{warnings:?}");
        assert!(warnings[0].starts_with("devices=\"0\""), "{}", warnings[0]);
        assert!(warnings[4].contains("ws://"), "{}", warnings[4]);
    }

    #[test]
    fn an_old_link_with_a_client_prefix_loads_with_a_warning_and_drops_it() {
        let mut s = Settings::default();
        let mut warnings = Vec::new();
        s.apply(pairs("devices=20&prefix=fleet-web-"), &mut warnings);
        assert_eq!(s.devices, 20);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("prefix=\"fleet-web-\": no longer used"),
            "{}",
            warnings[0]
        );
        // The next saved copy and shared link no longer carry it.
        assert_eq!(s.to_query(), "devices=20");
    }
}
