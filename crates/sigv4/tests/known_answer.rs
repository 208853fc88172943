//! Known answer for the IoT Core presign: the URLs that an independent implementation,
//! botocore's `SigV4QueryAuth`, gives for the same inputs. `tests/reference.py` prints
//! them (botocore 1.43.11); run it again if the inputs here change.

use fleet_sigv4::{Credentials, presign_iot_websocket};

/// 2013-05-24T00:00:00Z.
const MAY_24_2013_MS: u64 = 1_369_353_600_000;
const HOST: &str = "a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com";
const TOKEN: &str = "FwoGZXIvYXdzEXAMPLE/token+with=padding";

/// AWS's documented example key.
fn example_key(session_token: Option<&str>) -> Credentials {
    Credentials {
        access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        session_token: session_token.map(str::to_owned),
    }
}

/// `tests/reference.py`, "long-term keys".
const BOTOCORE_LONG_TERM: &str = "wss://a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Feu-west-1%2Fiotdevicegateway%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=0e0855bd0d4e27339851bdbe724b4726c24372d3f6b9e93aabae3c34d14da030";

/// `tests/reference.py`, "temporary credentials (IoT: the token appended after signing)".
const BOTOCORE_TEMPORARY: &str = "wss://a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Feu-west-1%2Fiotdevicegateway%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=0e0855bd0d4e27339851bdbe724b4726c24372d3f6b9e93aabae3c34d14da030&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLE%2Ftoken%2Bwith%3Dpadding";

/// `tests/reference.py`, the signature botocore gives with the token signed in (its S3 rule).
const BOTOCORE_TOKEN_SIGNED: &str =
    "772c1d045388b86e6e4390a8f2adfebffed831f55eb32a0af4fb6be0afe490ea";

#[test]
fn the_iot_presign_of_long_term_keys_is_botocores() {
    let url =
        presign_iot_websocket(&example_key(None), "eu-west-1", HOST, MAY_24_2013_MS, 3600).unwrap();
    assert_eq!(url, BOTOCORE_LONG_TERM);
}

#[test]
fn the_iot_presign_of_temporary_credentials_appends_the_token_after_signing() {
    // AWS IoT Developer Guide, "IAM users, groups, and roles": the token is not in the
    // canonical query; it is appended once the signature is computed.
    let url = presign_iot_websocket(
        &example_key(Some(TOKEN)),
        "eu-west-1",
        HOST,
        MAY_24_2013_MS,
        3600,
    )
    .unwrap();
    assert_eq!(url, BOTOCORE_TEMPORARY);
    assert!(!url.contains(BOTOCORE_TOKEN_SIGNED));
}
