//! Feeds arbitrary bytes, in arbitrary chunks, to a connected client session. It must never
//! panic, whatever the broker sends.
#![no_main]

use fleet_mqtt::codec::encode;
use fleet_mqtt::packet::{ConnAck, Packet};
use fleet_mqtt::{ConnectReturnCode, Options, QoS, Session};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut s) = Session::new(Options::new("fuzz"), 0) else { return };
    s.poll_transport(0);
    s.transport_opened(0);
    let mut connack = Vec::new();
    let ack = ConnAck { session_present: false, code: ConnectReturnCode::Accepted };
    let _ = encode(&Packet::ConnAck(ack), &mut connack);
    s.handle_input(0, &connack);
    let _ = s.publish(0, "t", b"x", QoS::AtLeastOnce, false);
    let _ = s.subscribe(0, &[("a/#", QoS::AtLeastOnce)]);
    // The first byte of each chunk gives the chunk length, so splits are fuzzed too.
    let mut rest = data;
    let mut now = 1;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        s.handle_input(now, &tail[..n]);
        s.handle_timeout(now);
        s.poll_transport(now);
        let sent = s.transmit().len();
        s.consume_transmit(sent);
        while s.poll_event().is_some() {}
        rest = &tail[n..];
        now += 1_000;
    }
});
