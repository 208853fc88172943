//! Decodes arbitrary bytes as a stream of MQTT packets. The decoder must never panic or
//! read past its input, and whatever it decodes must re-encode and decode to the same packet.
#![no_main]

use fleet_mqtt::codec::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((packet, used))) = decode(rest, 1 << 20) {
        assert!(used > 0 && used <= rest.len());
        let mut again = Vec::new();
        if encode(&packet, &mut again).is_ok() {
            let (decoded, n) = decode(&again, usize::MAX)
                .expect("re-encoded packet decodes")
                .expect("re-encoded packet is complete");
            assert_eq!(n, again.len());
            assert_eq!(decoded, packet);
        }
        rest = &rest[used..];
    }
});
