//! Who the page is to a broker (ARCHITECTURE §4.8: only a device speaks for itself): the
//! namespace its devices are named in, the base of its client ids, the credential it
//! connects with, and the one building a cloud may confine it to.
//!
//! Brokers bind a page to its namespace `NS`: it connects only with client ids `NS.…` and
//! publishes only for devices `NS-…`. Where the namespace comes from:
//! - **`fleet local`**: its `config.json` issues one, with a credential for it (readable
//!   by a same-origin page only: the file has no CORS headers);
//! - **AWS, Cognito guest**: the identity id. IoT Core binds the guest's client ids to it
//!   (`{identity id}.{suffix}`), and the worker takes its readings only for devices of
//!   [`Namespace::of_cognito_identity`] (`g{32 hex}-0001`), all in the template's browser
//!   building;
//! - **anything else** (another broker given as `?broker=`, pasted AWS credentials): the
//!   page makes one up, `w` and 10 hex digits, and sends no credential.

use fleet_core::BuildingId;
use fleet_core::access::Namespace;

use crate::engine::EngineConfig;
use crate::transport::mqtt::MqttConfig;

/// The building a Cognito guest's devices report in when `config.json` names none: the
/// template's `BrowserBuilding` default.
pub const GUEST_BUILDING: &str = "browser";

/// A user name and password for the broker's CONNECT.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    /// The user name (`fleet local`: `page:{namespace}`).
    pub username: String,
    /// The password: a secret, never shown.
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Who the page is to a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageIdentity {
    namespace: Namespace,
    client_base: String,
    login: Option<Login>,
    building: Option<BuildingId>,
}

impl PageIdentity {
    /// A namespace made up by the page from 40 random bits: `w` and 10 hex digits. No
    /// credential: for brokers that let such a page in (another broker, pasted AWS keys).
    pub fn generated(random: u64) -> PageIdentity {
        let name = format!("w{:010x}", random & 0xff_ffff_ffff);
        PageIdentity {
            // `w` and hex digits: always a valid namespace.
            namespace: Namespace::new(&name).unwrap_or_else(|_| unreachable!()),
            client_base: name,
            login: None,
            building: None,
        }
    }

    /// The namespace and credential `fleet local`'s `config.json` issued.
    pub fn issued(namespace: &str, login: Option<Login>) -> Result<PageIdentity, String> {
        let ns = Namespace::new(namespace)
            .map_err(|e| format!("config.json: namespace {namespace:?}: {e}"))?;
        Ok(PageIdentity {
            client_base: ns.as_str().to_owned(),
            namespace: ns,
            login,
            building: None,
        })
    }

    /// A Cognito guest: client ids `{identity id}.…`, devices `g{uuid hex}-…`, all in
    /// `building`.
    pub fn cognito(identity_id: &str, building: BuildingId) -> Result<PageIdentity, String> {
        let namespace = Namespace::of_cognito_identity(identity_id).ok_or_else(|| {
            format!("Cognito gave an identity id that is not REGION:UUID: {identity_id:?}")
        })?;
        Ok(PageIdentity {
            namespace,
            client_base: identity_id.to_owned(),
            login: None,
            building: Some(building),
        })
    }

    /// The same identity, with every device in `building` (`None`: spread over the
    /// buildings setting).
    pub fn in_building(self, building: Option<BuildingId>) -> PageIdentity {
        PageIdentity { building, ..self }
    }

    /// The namespace: device ids are `{namespace}-0001`, ….
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// Client ids are `{client base}.{suffix}`.
    pub fn client_base(&self) -> &str {
        &self.client_base
    }

    /// The credential sent in every CONNECT, if any.
    pub fn login(&self) -> Option<&Login> {
        self.login.as_ref()
    }

    /// The building every device reports in, if the broker confines the page to one.
    pub fn building(&self) -> Option<&BuildingId> {
        self.building.as_ref()
    }

    /// `config` with this identity's device ids (and building).
    pub fn engine_config(&self, config: EngineConfig) -> EngineConfig {
        EngineConfig {
            id_prefix: format!("{}-", self.namespace),
            building: self.building.clone().or(config.building),
            ..config
        }
    }

    /// MQTT settings for `url` with this identity's client ids and credential.
    pub fn mqtt_config(&self, url: impl Into<String>) -> MqttConfig {
        let mut mqtt = MqttConfig::new(url, self.client_base.clone());
        mqtt.login = self.login.clone();
        mqtt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_namespace_is_w_and_ten_hex_digits_and_sends_no_credential() {
        let a = PageIdentity::generated(0x12_3456_789a);
        assert_eq!(a.namespace().as_str(), "w123456789a");
        assert_eq!(a.client_base(), "w123456789a");
        assert_eq!(a.login(), None);
        // Only 40 bits are used, and small numbers keep their digits.
        assert_eq!(
            PageIdentity::generated(u64::MAX).namespace().as_str(),
            "wffffffffff"
        );
        assert_eq!(
            PageIdentity::generated(1).namespace().as_str(),
            "w0000000001"
        );
        let config = a.engine_config(EngineConfig::default());
        assert_eq!(config.id_prefix, "w123456789a-");
        assert_eq!(config.building, None);
        let mqtt = a.mqtt_config("ws://127.0.0.1:1/mqtt");
        assert_eq!(mqtt.client_base, "w123456789a");
        assert_eq!(mqtt.login, None);
    }

    #[test]
    fn an_issued_namespace_brings_its_credential_and_a_bad_one_is_said() {
        let login = Login {
            username: "page:w0a1b2c3d4".into(),
            password: "secret-token".into(),
        };
        let p = PageIdentity::issued("w0a1b2c3d4", Some(login.clone())).unwrap();
        assert_eq!(p.mqtt_config("ws://h/mqtt").login, Some(login.clone()));
        assert_eq!(
            p.engine_config(EngineConfig::default()).id_prefix,
            "w0a1b2c3d4-"
        );
        // The password never shows in debug output (logs, panics).
        assert!(!format!("{p:?}").contains("secret-token"), "{p:?}");
        for bad in ["w-1", "", "a b", "w.1"] {
            let err = PageIdentity::issued(bad, None).unwrap_err();
            assert!(err.starts_with("config.json: namespace"), "{err}");
        }
    }

    #[test]
    fn a_cognito_guest_uses_its_identity_id_for_client_ids_and_its_uuid_for_devices() {
        let building = BuildingId::try_from(GUEST_BUILDING).unwrap();
        let guest = PageIdentity::cognito(
            "us-east-1:7D7C5D4E-0A1B-4C2D-8E3F-1234567890AB",
            building.clone(),
        )
        .unwrap();
        assert_eq!(
            guest.client_base(),
            "us-east-1:7D7C5D4E-0A1B-4C2D-8E3F-1234567890AB"
        );
        let config = guest.engine_config(EngineConfig {
            buildings: 5,
            ..EngineConfig::default()
        });
        assert_eq!(config.id_prefix, "g7d7c5d4e0a1b4c2d8e3f1234567890ab-");
        assert_eq!(config.building, Some(building));
        assert!(
            PageIdentity::cognito("us-east-1:id-for-good", BuildingId::try_from("b").unwrap())
                .unwrap_err()
                .contains("REGION:UUID")
        );
        // Pasted credentials: a made-up namespace, in the config's building if it names one.
        let pasted = PageIdentity::generated(7).in_building(BuildingId::try_from("b7").ok());
        assert_eq!(
            pasted
                .engine_config(EngineConfig::default())
                .building
                .map(|b| b.to_string()),
            Some("b7".to_owned())
        );
    }
}
