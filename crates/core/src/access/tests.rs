//! One table per row of ARCHITECTURE §4.8: each identity against every kind of topic.

use super::*;

const OWN: &str = "dt/monitoring/1/d-0001/telemetry";
const OTHER: &str = "dt/monitoring/1/d-0002/telemetry";
const OWN_CMD: &str = "cmd/monitoring/1/d-0001/remediation";
const OTHER_CMD: &str = "cmd/monitoring/1/d-0002/remediation";
const ALARMS: &str = "dt/monitoring/alarms";
const LEGACY_IN: &str = "monitoring-device/building-1";
const LEGACY_OUT: &str = "monitoring-device/remediation-1";

fn device(id: &str) -> Identity {
    Identity::Device(DeviceId::try_from(id).unwrap())
}

fn page(ns: &str) -> Identity {
    Identity::Page(Namespace::new(ns).unwrap())
}

/// `(topic, expected)` publish rows for a grant.
fn check_publish(grant: &Grant, rows: &[(&str, Result<(), Reason>)]) {
    for (topic, expected) in rows {
        assert_eq!(grant.publish(topic), *expected, "publish {topic}");
    }
}

fn check_subscribe(grant: &Grant, rows: &[(&str, Result<Receive, Reason>)]) {
    for (filter, expected) in rows {
        assert_eq!(grant.subscribe(filter), *expected, "subscribe {filter}");
    }
}

#[test]
fn row_device_with_a_certificate_or_credential() {
    let d = device("d-0001");
    assert_eq!(
        connect(&d, "d-0002", None).unwrap_err(),
        Reason::ClientIdNotAllowed
    );
    assert_eq!(
        connect(&d, "anything", None).unwrap_err(),
        Reason::ClientIdNotAllowed
    );
    for client_id in ["d-0001", LEGACY_CLIENT_ID] {
        let g = connect(&d, client_id, None).unwrap();
        assert_eq!(
            g.publisher(),
            &Publisher::Device(DeviceId::try_from("d-0001").unwrap())
        );
        check_publish(
            &g,
            &[
                (OWN, Ok(())),
                ("dt/monitoring/7/d-0001/telemetry", Ok(())),
                (OTHER, Err(Reason::OtherDevice)),
                (OWN_CMD, Err(Reason::CommandTopic)),
                (LEGACY_OUT, Err(Reason::CommandTopic)),
                (ALARMS, Err(Reason::AlarmTopic)),
                (LEGACY_IN, Ok(())),
                ("a/b", Err(Reason::UnknownTopic)),
                (
                    "dt/monitoring/1/d$0001/telemetry",
                    Err(Reason::UnknownTopic),
                ),
            ],
        );
        check_subscribe(
            &g,
            &[
                (OWN_CMD, Ok(Receive::All)),
                ("cmd/monitoring/+/d-0001/remediation", Ok(Receive::All)),
                (LEGACY_OUT, Ok(Receive::All)),
                (OTHER_CMD, Err(Reason::NotOwnTopic)),
                ("cmd/monitoring/+/+/remediation", Err(Reason::NotOwnTopic)),
                ("#", Err(Reason::NotOwnTopic)),
                (ALARMS, Err(Reason::NotOwnTopic)),
                (OWN, Err(Reason::NotOwnTopic)),
                ("monitoring-device/+", Err(Reason::NotOwnTopic)),
            ],
        );
    }
}

#[test]
fn row_fleet_token() {
    let g = connect(&Identity::Fleet, "d-0001", None).unwrap();
    check_publish(
        &g,
        &[
            (OWN, Ok(())),
            (OTHER, Err(Reason::OtherDevice)),
            (OWN_CMD, Err(Reason::CommandTopic)),
            (ALARMS, Err(Reason::AlarmTopic)),
        ],
    );
    check_subscribe(
        &g,
        &[
            (OWN_CMD, Ok(Receive::All)),
            (OTHER_CMD, Err(Reason::NotOwnTopic)),
        ],
    );
    // The legacy client id names no device: its readings are taken at their word.
    let legacy = connect(&Identity::Fleet, LEGACY_CLIENT_ID, None).unwrap();
    assert_eq!(legacy.publisher(), &Publisher::Unbound);
    check_publish(
        &legacy,
        &[(LEGACY_IN, Ok(())), (LEGACY_OUT, Err(Reason::CommandTopic))],
    );
    check_subscribe(&legacy, &[(LEGACY_OUT, Ok(Receive::All))]);
    assert_eq!(
        connect(&Identity::Fleet, "not an id", None).unwrap_err(),
        Reason::ClientIdNotAllowed
    );
}

#[test]
fn row_browser_page() {
    let p = page("w1a2");
    for bad in ["d-0001", "w1a2-0001", "w1a2.", "w1a20.gw0", "x.w1a2.gw0"] {
        assert_eq!(
            connect(&p, bad, None).unwrap_err(),
            Reason::ClientIdNotAllowed,
            "{bad}"
        );
    }
    let g = connect(&p, "w1a2.gw0", None).unwrap();
    check_publish(
        &g,
        &[
            ("dt/monitoring/3/w1a2-0001/telemetry", Ok(())),
            (OWN, Err(Reason::OtherDevice)),
            (
                "dt/monitoring/3/w1a2x-0001/telemetry",
                Err(Reason::OtherDevice),
            ),
            (LEGACY_IN, Err(Reason::OtherDevice)),
            (
                "cmd/monitoring/3/w1a2-0001/remediation",
                Err(Reason::CommandTopic),
            ),
            (ALARMS, Err(Reason::AlarmTopic)),
        ],
    );
    check_subscribe(
        &g,
        &[
            ("cmd/monitoring/3/w1a2-0001/remediation", Ok(Receive::All)),
            ("cmd/monitoring/3/+/remediation", Ok(Receive::Checked)),
            ("cmd/monitoring/+/+/remediation", Ok(Receive::Checked)),
            (ALARMS, Ok(Receive::All)),
            (OWN_CMD, Err(Reason::NotOwnTopic)),
            ("#", Err(Reason::NotOwnTopic)),
            ("dt/monitoring/+/+/telemetry", Err(Reason::NotOwnTopic)),
            (LEGACY_OUT, Err(Reason::NotOwnTopic)),
        ],
    );
    // Through a `+` it receives its own devices' commands and nobody else's.
    assert!(g.receive("cmd/monitoring/3/w1a2-0001/remediation"));
    assert!(g.receive(ALARMS));
    assert!(!g.receive(OWN_CMD));
    assert!(!g.receive("cmd/monitoring/3/w1a2x-0001/remediation"));
}

#[test]
fn row_observer() {
    let g = connect(&Identity::Observer, "grafana", None).unwrap();
    check_publish(
        &g,
        &[
            (OWN, Err(Reason::ReadOnly)),
            ("a/b", Err(Reason::ReadOnly)),
            (OWN_CMD, Err(Reason::CommandTopic)),
            (ALARMS, Err(Reason::AlarmTopic)),
        ],
    );
    check_subscribe(
        &g,
        &[
            ("#", Ok(Receive::All)),
            (OTHER_CMD, Ok(Receive::All)),
            ("dt/monitoring/+/+/telemetry", Ok(Receive::All)),
        ],
    );
}

#[test]
fn row_development_mode_on_loopback() {
    // A client id that is a device id speaks for that device, and only for it.
    let g = connect(&Identity::Development, "d-0001", None).unwrap();
    check_publish(
        &g,
        &[
            (OWN, Ok(())),
            (OTHER, Err(Reason::OtherDevice)),
            (OWN_CMD, Err(Reason::CommandTopic)),
            (ALARMS, Err(Reason::AlarmTopic)),
        ],
    );
    // Loopback is where observers live: reading is open.
    check_subscribe(&g, &[("#", Ok(Receive::All))]);
    // mosquitto_sub's generated ids like "mosqsub|17-host" name no device.
    let observer = connect(&Identity::Development, "mosqsub|17-host", None).unwrap();
    assert_eq!(observer.publisher(), &Publisher::Nobody);
    check_publish(&observer, &[(OWN, Err(Reason::ReadOnly))]);
    let legacy = connect(&Identity::Development, LEGACY_CLIENT_ID, None).unwrap();
    check_publish(&legacy, &[(LEGACY_IN, Ok(())), (OWN, Ok(()))]);
}

fn gateway(buildings: &str) -> Identity {
    Identity::Gateway(Buildings::parse(buildings).unwrap())
}

#[test]
fn row_gateway_for_named_buildings() {
    let gw = gateway("1,2");
    // Its client id names the buildings of that connection, some of its credential's.
    for bad in [
        "d-0001",
        "gateway:3",
        "gateway:1,3",
        "gateway:",
        "gateway-1",
        LEGACY_CLIENT_ID,
        "w1a2.gw0",
    ] {
        assert_eq!(
            connect(&gw, bad, None).unwrap_err(),
            Reason::ClientIdNotAllowed,
            "{bad}"
        );
    }
    let both = connect(&gw, "gateway:1,2", None).unwrap();
    // A shard's connection for the same buildings adds its suffix, and is no wider.
    let shard = connect(&gw, "gateway:1,2.s3", None).unwrap();
    assert_eq!(shard.publisher(), both.publisher());
    assert_eq!(
        connect(&gw, "gateway:1,3.s3", None).unwrap_err(),
        Reason::ClientIdNotAllowed
    );
    assert_eq!(
        both.publisher(),
        &Publisher::Buildings(Buildings::parse("1,2").unwrap())
    );
    check_publish(
        &both,
        &[
            (OWN, Ok(())),
            (OTHER, Ok(())),
            ("dt/monitoring/2/x-7/telemetry", Ok(())),
            ("dt/monitoring/3/d-0001/telemetry", Err(Reason::OtherDevice)),
            (
                "dt/monitoring/+/d-0001/telemetry",
                Err(Reason::UnknownTopic),
            ),
            (OWN_CMD, Err(Reason::CommandTopic)),
            (
                "cmd/monitoring/3/d-0001/remediation",
                Err(Reason::CommandTopic),
            ),
            (LEGACY_IN, Err(Reason::OtherDevice)),
            (LEGACY_OUT, Err(Reason::CommandTopic)),
            (ALARMS, Err(Reason::AlarmTopic)),
            ("a/b", Err(Reason::UnknownTopic)),
        ],
    );
    check_subscribe(
        &both,
        &[
            ("cmd/monitoring/1/+/remediation", Ok(Receive::All)),
            ("cmd/monitoring/2/+/remediation", Ok(Receive::All)),
            (OWN_CMD, Ok(Receive::All)),
            ("cmd/monitoring/3/+/remediation", Err(Reason::NotOwnTopic)),
            ("cmd/monitoring/+/+/remediation", Err(Reason::NotOwnTopic)),
            (
                "cmd/monitoring/+/d-0001/remediation",
                Err(Reason::NotOwnTopic),
            ),
            (LEGACY_OUT, Err(Reason::NotOwnTopic)),
            (ALARMS, Err(Reason::NotOwnTopic)),
            (OWN, Err(Reason::NotOwnTopic)),
            ("#", Err(Reason::NotOwnTopic)),
        ],
    );
    // A connection for building 2 only cannot speak for building 1, though its credential
    // could: its client id bounds it.
    let two = connect(&gw, "gateway:2", None).unwrap();
    check_publish(
        &two,
        &[
            ("dt/monitoring/2/d-0001/telemetry", Ok(())),
            (OWN, Err(Reason::OtherDevice)),
        ],
    );
    check_subscribe(
        &two,
        &[("cmd/monitoring/1/+/remediation", Err(Reason::NotOwnTopic))],
    );
    // What the worker checks: readings of its buildings only.
    assert!(two.publisher().may_report("2", "d-0001"));
    assert!(!two.publisher().may_report("1", "d-0001"));
    // In development mode a gateway's client id is taken at its word, as a device's is.
    let dev = connect(&Identity::Development, "gateway:5", None).unwrap();
    check_publish(
        &dev,
        &[
            ("dt/monitoring/5/d-0001/telemetry", Ok(())),
            (OWN, Err(Reason::OtherDevice)),
            (
                "cmd/monitoring/5/d-0001/remediation",
                Err(Reason::CommandTopic),
            ),
        ],
    );
}

#[test]
fn row_pipeline_no_client_identity_may_command_or_alarm() {
    // The pipeline publishes through the broker's own handle; every client identity, on
    // every client id it may use, is refused commands and alarms.
    let identities = [
        (device("d-0001"), "d-0001"),
        (device("d-0001"), LEGACY_CLIENT_ID),
        (Identity::Fleet, "d-0001"),
        (Identity::Fleet, LEGACY_CLIENT_ID),
        (page("w1a2"), "w1a2.gw0"),
        (gateway("1"), "gateway:1"),
        (Identity::Development, "gateway:1"),
        (Identity::Observer, "o"),
        (Identity::Development, "d-0001"),
        (Identity::Development, LEGACY_CLIENT_ID),
    ];
    for (identity, client_id) in identities {
        let g = connect(&identity, client_id, None).unwrap();
        for topic in [
            OWN_CMD,
            OTHER_CMD,
            LEGACY_OUT,
            "cmd/monitoring/1/w1a2-0001/remediation",
        ] {
            assert_eq!(
                g.publish(topic),
                Err(Reason::CommandTopic),
                "{identity} {topic}"
            );
        }
        assert_eq!(g.publish(ALARMS), Err(Reason::AlarmTopic), "{identity}");
        // Nor through a will.
        assert_eq!(
            connect(&identity, client_id, Some(OWN_CMD)).unwrap_err(),
            Reason::WillNotAllowed
        );
    }
}

#[test]
fn a_will_on_an_own_topic_is_accepted() {
    assert!(connect(&device("d-0001"), "d-0001", Some(OWN)).is_ok());
    assert_eq!(
        connect(&device("d-0001"), "d-0001", Some(OTHER)).unwrap_err(),
        Reason::WillNotAllowed
    );
}

#[test]
fn takeover_only_by_the_same_identity_or_a_stronger_proof() {
    let holder = |identity: &Identity, client_id: &str| {
        connect(identity, client_id, None).unwrap().holder().clone()
    };
    let cert = holder(&device("d-0001"), "d-0001");
    let legacy_cert = holder(&device("d-0001"), LEGACY_CLIENT_ID);
    let other_legacy_cert = holder(&device("d-0002"), LEGACY_CLIENT_ID);
    let fleet = holder(&Identity::Fleet, "d-0001");
    let dev = holder(&Identity::Development, "d-0001");
    let observer = holder(&Identity::Observer, "d-0001");
    let gateway_1 = holder(&gateway("1"), "gateway:1");
    let gateway_12 = holder(&gateway("1,2"), "gateway:1");
    let dev_gateway = holder(&Identity::Development, "gateway:1");
    // The same identity reconnecting (a half-open connection) takes over.
    assert!(cert.may_take_over(&cert));
    assert!(dev.may_take_over(&dev));
    // A device's certificate evicts weaker claims on its client id...
    assert!(cert.may_take_over(&dev));
    assert!(cert.may_take_over(&fleet));
    // ...and nothing weaker or different evicts it.
    assert!(!dev.may_take_over(&cert));
    assert!(!fleet.may_take_over(&cert));
    assert!(!observer.may_take_over(&dev));
    // A gateway's credential evicts a development-mode claim on its client id; another
    // gateway's credential (other buildings) does not evict it.
    assert!(gateway_1.may_take_over(&dev_gateway));
    assert!(gateway_1.may_take_over(&gateway_1));
    assert!(!gateway_12.may_take_over(&gateway_1));
    assert!(!dev_gateway.may_take_over(&gateway_1));
    // Two certificates sharing the legacy client id cannot evict each other.
    assert!(!other_legacy_cert.may_take_over(&legacy_cert));
    assert!(legacy_cert.may_take_over(&legacy_cert));
}
