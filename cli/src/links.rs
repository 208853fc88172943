//! `fleet sim`'s connections: one per device, or gateways that each publish for whole
//! buildings (the page's gateway mode, ARCHITECTURE §4.7–4.8), and what the process can
//! hold.
//!
//! A process can hold only as many sockets as its file limit (RLIMIT_NOFILE) allows, and
//! only as many connections to one broker as a local address has ephemeral ports
//! (`net.ipv4.ip_local_port_range`, about 28,000). Past that, connecting would fail with a
//! pile of EMFILE or EADDRNOTAVAIL errors; instead [`plan`] either fits the fleet in (with
//! `auto`, through gateways) or says what was asked, the limit, and the flag to use.

use std::fmt;
use std::str::FromStr;

use fleet_core::BuildingId;
use fleet_core::access::Buildings;

/// Most connections `--connections N` asks for.
pub const MAX_GATEWAYS: usize = 10_000;

/// Publishes per second one gateway carries in `auto` against a broker of our own (the
/// page's `LOCAL_GATEWAY_PUBLISH_RATE`).
pub const LOCAL_GATEWAY_PUBLISH_RATE: f64 = 1000.0;

/// Publishes per second one gateway carries in `auto` against IoT Core, which allows 100
/// per connection (the page's `GATEWAY_PUBLISH_RATE`).
pub const IOT_CORE_GATEWAY_PUBLISH_RATE: f64 = 90.0;

/// File descriptors kept free for what is not a connection: the runtime's, logs, the
/// acked file, TLS files read at reconnect, DNS.
pub const FILE_HEADROOM: u64 = 64;

/// Linux's default ephemeral port range, 32768–60999, when it cannot be read.
const DEFAULT_EPHEMERAL_PORTS: u64 = 28_232;

/// `--connections`: how devices reach the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionSetting {
    /// One connection per device, with the device's client id.
    PerDevice,
    /// This many gateways (fewer if there are fewer buildings).
    Gateways(usize),
    /// Per device while the process can hold that many connections, gateways beyond.
    Auto,
}

impl FromStr for ConnectionSetting {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "per-device" => Ok(ConnectionSetting::PerDevice),
            "auto" => Ok(ConnectionSetting::Auto),
            n => match n.parse::<usize>() {
                Ok(n) if (1..=MAX_GATEWAYS).contains(&n) => Ok(ConnectionSetting::Gateways(n)),
                _ => Err(format!(
                    "{s:?}: say per-device, auto, or a number of gateway connections from 1 to {MAX_GATEWAYS}"
                )),
            },
        }
    }
}

impl fmt::Display for ConnectionSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionSetting::PerDevice => f.write_str("per-device"),
            ConnectionSetting::Gateways(n) => write!(f, "{n}"),
            ConnectionSetting::Auto => f.write_str("auto"),
        }
    }
}

/// What the process can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// RLIMIT_NOFILE (soft, after raising it to the hard limit).
    pub file_limit: u64,
    /// Files open before the first connection.
    pub files_open: u64,
    /// Ephemeral ports of one local address.
    pub ports_per_address: u64,
    /// Local addresses connections are spread over (`--bind`; 1 without).
    pub addresses: u64,
}

impl Limits {
    /// This process's: raises the soft file limit to the hard one (as Go's runtime does),
    /// then reads it, the files open and the ephemeral port range.
    pub fn of_process(addresses: usize) -> Limits {
        // Raising is best effort: the limit read below is what counts.
        let _ = rlimit::increase_nofile_limit(u64::MAX);
        let file_limit = rlimit::getrlimit(rlimit::Resource::NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(1024);
        let files_open = std::fs::read_dir("/proc/self/fd").map_or(16, |d| d.count() as u64);
        let ports_per_address = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| {
                let mut it = s.split_whitespace().map(str::parse::<u64>);
                match (it.next(), it.next()) {
                    (Some(Ok(lo)), Some(Ok(hi))) if hi >= lo => Some(hi - lo + 1),
                    _ => None,
                }
            })
            .unwrap_or(DEFAULT_EPHEMERAL_PORTS);
        Limits {
            file_limit,
            files_open,
            ports_per_address,
            addresses: addresses.max(1) as u64,
        }
    }

    /// Connections the file limit leaves room for.
    pub fn files_free(&self) -> u64 {
        self.file_limit
            .saturating_sub(self.files_open)
            .saturating_sub(FILE_HEADROOM)
    }

    /// Connections the local addresses' ephemeral ports leave room for.
    pub fn ports_free(&self) -> u64 {
        self.ports_per_address.saturating_mul(self.addresses)
    }

    /// Connections this process can hold to one broker.
    pub fn connections(&self) -> u64 {
        self.files_free().min(self.ports_free())
    }
}

/// Which connection each device uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Device `i` on connection `i`.
    PerDevice,
    /// Device `i` on gateway `device_link[i]`; gateway `g` speaks for `gateways[g]`.
    Gateways {
        /// Each device's gateway.
        device_link: Vec<u32>,
        /// Each gateway's buildings (its client id is `gateway:{buildings}`).
        gateways: Vec<Buildings>,
    },
}

impl Plan {
    /// How many connections.
    pub fn connections(&self, devices: usize) -> usize {
        match self {
            Plan::PerDevice => devices,
            Plan::Gateways { gateways, .. } => gateways.len(),
        }
    }

    /// Device `i`'s connection.
    pub fn link(&self, device: usize) -> usize {
        match self {
            Plan::PerDevice => device,
            Plan::Gateways { device_link, .. } => device_link[device] as usize,
        }
    }
}

/// Why the fleet cannot be connected as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// More per-device connections than the file limit allows.
    #[error(
        "--connections per-device needs {devices} connections, but this process may open {free} more files \
         (RLIMIT_NOFILE {limit}, {open} open, {FILE_HEADROOM} kept free): use --connections auto \
         (gateways past the limit) or --connections N (N gateway connections), or raise the limit (ulimit -n)"
    )]
    FileLimit {
        /// Devices asked for.
        devices: usize,
        /// Connections the limit leaves room for.
        free: u64,
        /// The limit.
        limit: u64,
        /// Files already open.
        open: u64,
    },
    /// More per-device connections than the local addresses have ephemeral ports.
    #[error(
        "--connections per-device needs {devices} connections, but {addresses} local address(es) have \
         {ports} ephemeral ports to one broker: add local addresses with --bind 127.0.0.2,127.0.0.3,… \
         (loopback brokers) or use --connections auto or --connections N (gateways)"
    )]
    Ports {
        /// Devices asked for.
        devices: usize,
        /// Local addresses.
        addresses: u64,
        /// Their ports.
        ports: u64,
    },
    /// A gateway would speak for more buildings than one connection may subscribe to.
    #[error(
        "{gateways} gateway connection(s) for {buildings} buildings is more than {max} buildings each \
         (one command subscription per building): use --connections {needed} or more",
        max = Buildings::MAX
    )]
    TooManyBuildings {
        /// Gateways.
        gateways: usize,
        /// Buildings.
        buildings: usize,
        /// Gateways needed.
        needed: usize,
    },
    /// More gateways than the process can hold.
    #[error(
        "--connections {asked} is more connections than this process can hold ({free}: file limit and ephemeral ports)"
    )]
    TooManyGateways {
        /// Asked.
        asked: usize,
        /// Room.
        free: u64,
    },
}

/// Decides the connections of a fleet whose device `i` is in `buildings[i]`, publishing
/// `messages_per_s` in all, each gateway carrying `per_gateway` a second in `auto`.
///
/// Gateways follow the page's semantics: buildings in order of first appearance are dealt
/// round-robin to the gateways, so the devices of a building always share one connection,
/// which subscribes to that building's command wildcard. So there are never more gateways
/// than buildings.
pub fn plan(
    setting: ConnectionSetting,
    buildings: &[BuildingId],
    limits: &Limits,
    messages_per_s: f64,
    per_gateway: f64,
) -> Result<Plan, PlanError> {
    let devices = buildings.len();
    let room = limits.connections();
    let fits = devices as u64 <= room;
    let gateways = match setting {
        ConnectionSetting::PerDevice if fits => return Ok(Plan::PerDevice),
        ConnectionSetting::PerDevice if devices as u64 > limits.files_free() => {
            return Err(PlanError::FileLimit {
                devices,
                free: limits.files_free(),
                limit: limits.file_limit,
                open: limits.files_open,
            });
        }
        ConnectionSetting::PerDevice => {
            return Err(PlanError::Ports {
                devices,
                addresses: limits.addresses,
                ports: limits.ports_free(),
            });
        }
        ConnectionSetting::Auto if fits => return Ok(Plan::PerDevice),
        ConnectionSetting::Auto => {
            let wanted = (messages_per_s / per_gateway.max(1.0)).ceil().max(1.0) as usize;
            wanted.min(room.max(1) as usize)
        }
        ConnectionSetting::Gateways(n) => {
            if n as u64 > room {
                return Err(PlanError::TooManyGateways {
                    asked: n,
                    free: room,
                });
            }
            n
        }
    };
    gateways_for(buildings, gateways, setting == ConnectionSetting::Auto)
}

/// `n` gateways (fewer if fewer buildings) for devices in `buildings`; `grow`: more than
/// `n` if a gateway would otherwise hold more than [`Buildings::MAX`] buildings.
fn gateways_for(buildings: &[BuildingId], n: usize, grow: bool) -> Result<Plan, PlanError> {
    let mut known: Vec<&BuildingId> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let mut device_building = Vec::with_capacity(buildings.len());
    for building in buildings {
        let b = *index.entry(building).or_insert_with(|| {
            known.push(building);
            known.len() - 1
        });
        device_building.push(b);
    }
    let needed = known.len().div_ceil(Buildings::MAX);
    let n = match n.min(known.len()).max(1) {
        n if n >= needed => n,
        _ if grow => needed,
        n => {
            return Err(PlanError::TooManyBuildings {
                gateways: n,
                buildings: known.len(),
                needed,
            });
        }
    };
    let mut gateways = Vec::with_capacity(n);
    for g in 0..n {
        let own = known
            .iter()
            .enumerate()
            .filter(|(b, _)| b % n == g)
            .map(|(_, building)| (*building).clone());
        // Non-empty (n ≤ buildings) and within MAX (n ≥ needed).
        let own = Buildings::new(own).map_err(|_| PlanError::TooManyBuildings {
            gateways: n,
            buildings: known.len(),
            needed,
        })?;
        gateways.push(own);
    }
    let device_link = device_building.iter().map(|b| (b % n) as u32).collect();
    Ok(Plan::Gateways {
        device_link,
        gateways,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(file_limit: u64, addresses: u64) -> Limits {
        Limits {
            file_limit,
            files_open: 36,
            ports_per_address: 28_232,
            addresses,
        }
    }

    /// `devices` devices spread over `buildings` buildings in blocks.
    fn fleet(devices: usize, buildings: usize) -> Vec<BuildingId> {
        (0..devices)
            .map(|i| BuildingId::try_from((i * buildings / devices + 1).to_string()).unwrap())
            .collect()
    }

    #[test]
    fn the_setting_parses_and_bad_values_say_what_is_expected() {
        assert_eq!("per-device".parse(), Ok(ConnectionSetting::PerDevice));
        assert_eq!("auto".parse(), Ok(ConnectionSetting::Auto));
        assert_eq!("20".parse(), Ok(ConnectionSetting::Gateways(20)));
        for bad in ["0", "-1", "10001", "many", ""] {
            let e = bad.parse::<ConnectionSetting>().unwrap_err();
            assert!(e.contains("per-device, auto, or a number"), "{e}");
        }
        for s in ["per-device", "auto", "7"] {
            assert_eq!(s.parse::<ConnectionSetting>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn auto_is_per_device_while_the_process_can_hold_it_then_gateways() {
        let l = limits(20_000, 1);
        assert_eq!(l.files_free(), 20_000 - 36 - FILE_HEADROOM);
        let small = fleet(15_000, 10);
        assert_eq!(
            plan(ConnectionSetting::Auto, &small, &l, 7_500.0, 1000.0),
            Ok(Plan::PerDevice)
        );
        // 100,000 devices every 2 s: 50,000 publishes/s, 1,000 per gateway.
        let big = fleet(100_000, 100);
        let p = plan(ConnectionSetting::Auto, &big, &l, 50_000.0, 1000.0).unwrap();
        assert_eq!(p.connections(big.len()), 50);
        // Devices of a building share their gateway.
        for (i, b) in big.iter().enumerate() {
            let g = p.link(i);
            let Plan::Gateways { gateways, .. } = &p else {
                panic!("gateways");
            };
            assert!(gateways[g].contains(b.as_str()), "{i}");
        }
        // Never more gateways than buildings.
        let one = fleet(100_000, 1);
        let p = plan(ConnectionSetting::Auto, &one, &l, 50_000.0, 1000.0).unwrap();
        assert_eq!(p.connections(one.len()), 1);
        // Past the ephemeral ports of one address, though the file limit allows it.
        let l = limits(100_000, 1);
        let p = plan(
            ConnectionSetting::Auto,
            &fleet(30_000, 30),
            &l,
            15_000.0,
            1000.0,
        );
        assert_eq!(p.unwrap().connections(30_000), 15);
        // Two local addresses double the ports.
        let l = limits(100_000, 2);
        let p = plan(
            ConnectionSetting::Auto,
            &fleet(30_000, 30),
            &l,
            15_000.0,
            1000.0,
        );
        assert_eq!(p, Ok(Plan::PerDevice));
    }

    #[test]
    fn gateways_deal_buildings_round_robin_and_never_split_one() {
        let devices = fleet(20_000, 20);
        let p = plan(
            ConnectionSetting::Gateways(20),
            &devices,
            &limits(20_000, 1),
            0.0,
            1.0,
        )
        .unwrap();
        let Plan::Gateways {
            device_link,
            gateways,
        } = &p
        else {
            panic!("gateways");
        };
        assert_eq!(gateways.len(), 20);
        assert_eq!(gateways[0].client_id(), "gateway:1");
        assert_eq!(device_link[0], 0);
        assert_eq!(device_link[19_999], 19);
        // 3 gateways for 20 buildings: 7, 7 and 6 buildings.
        let p = plan(
            ConnectionSetting::Gateways(3),
            &devices,
            &limits(20_000, 1),
            0.0,
            1.0,
        )
        .unwrap();
        let Plan::Gateways { gateways, .. } = &p else {
            panic!("gateways");
        };
        assert_eq!(gateways[0].to_string(), "1,10,13,16,19,4,7");
        assert_eq!(gateways[2].iter().count(), 6);
        // More gateways than buildings: one per building.
        let p = plan(
            ConnectionSetting::Gateways(50),
            &fleet(100, 4),
            &limits(20_000, 1),
            0.0,
            1.0,
        );
        assert_eq!(p.unwrap().connections(100), 4);
    }

    #[test]
    fn past_the_limits_the_error_says_what_was_asked_the_limit_and_the_flag() {
        let e = plan(
            ConnectionSetting::PerDevice,
            &fleet(25_000, 1),
            &limits(20_000, 1),
            0.0,
            1.0,
        )
        .unwrap_err();
        let text = e.to_string();
        for part in [
            "needs 25000 connections",
            "may open 19900 more files",
            "RLIMIT_NOFILE 20000",
            "--connections auto",
            "--connections N",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        let e = plan(
            ConnectionSetting::PerDevice,
            &fleet(30_000, 1),
            &limits(100_000, 1),
            0.0,
            1.0,
        )
        .unwrap_err();
        assert!(e.to_string().contains("--bind 127.0.0.2"), "{e}");
        // 120 buildings cannot go through 2 gateways of at most 50 each.
        let e = plan(
            ConnectionSetting::Gateways(2),
            &fleet(1200, 120),
            &limits(20_000, 1),
            0.0,
            1.0,
        )
        .unwrap_err();
        assert!(e.to_string().contains("--connections 3 or more"), "{e}");
        // auto grows instead.
        let p = plan(
            ConnectionSetting::Auto,
            &fleet(30_000, 120),
            &limits(20_000, 1),
            1.0,
            1000.0,
        );
        assert_eq!(p.unwrap().connections(30_000), 3);
        let e = plan(
            ConnectionSetting::Gateways(500),
            &fleet(1000, 1000),
            &limits(300, 1),
            0.0,
            1.0,
        )
        .unwrap_err();
        assert!(e.to_string().contains("--connections 500"), "{e}");
    }
}
